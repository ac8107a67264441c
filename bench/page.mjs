// The page benchmark's driver (run by bench/page.sh): tailgate follows PANES files, a writer
// appends RATE lines/s to each, headless Chromium shows one pane per file; once every pane
// holds its 5,000 rows, the page is measured over SECONDS through the DevTools protocol:
//   busy    main-thread task time per second (Performance.getMetrics TaskDuration delta)
//   frame   the longest gap between two animation frames, and the long animation frames
//           (PerformanceObserver "long-animation-frame", Chrome's own >50 ms frame record)
// PAGE_HTML, when set, is served instead of tailgate's page (the same server behind it), to
// measure an older page against the same stream.
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const env = (k, d) => process.env[k] || d;
const require = createRequire(env("PW_DIR", process.cwd()) + "/");
const { chromium } = require("playwright-core");
const BIN = env("TAILGATE_BIN", "");
const PANES = Number(env("PANES", 3)), RATE = Number(env("RATE", 1000)), SECONDS = Number(env("SECONDS", 10));
const ROWS = 5000;
if (!BIN) throw new Error("TAILGATE_BIN not set");

const dir = mkdtempSync(join(tmpdir(), "tailgate-pagebench-"));
const files = Array.from({ length: PANES }, (_, i) => join(dir, `cat${i}.log`));
for (const f of files) writeFileSync(f, "");
const tg = spawn(BIN, ["--listen", "127.0.0.1:0", "--poll-interval", "20ms",
  ...files.flatMap((f, i) => ["--file", `${f}=cat${i}`])], { stdio: ["ignore", "pipe", "inherit"] });
let browser, writer;
const cleanup = () => { clearInterval(writer); try { tg.kill("SIGTERM"); } catch {} try { rmSync(dir, { recursive: true, force: true }); } catch {} };
process.on("exit", cleanup);
const addr = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("tailgate did not print its address")), 10000);
  createInterface({ input: tg.stdout }).on("line", (l) => {
    const m = /^tailgate listening on (http:\/\/\S+)$/.exec(l);
    if (m) { clearTimeout(t); resolve(m[1]); }
  });
});

// Apache-like lines with a level word now and then, ~120 bytes.
let n = 0;
const LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"];
const line = () => { n++; return `10.0.${n % 256}.${n % 97} - - [04/Dec/2026:14:05:${String(n % 60).padStart(2, "0")} +0000] "GET /api/v1/items/${n} HTTP/1.1" 200 ${n % 5000} ${LEVELS[n % 6]} req=${n}\n`; };
const TICK = 50; let carry = 0;
const write = (count) => { for (const f of files) { let s = ""; for (let i = 0; i < count; i++) s += line(); appendFileSync(f, s); } };

try {
  browser = await chromium.launch({ executablePath: env("CHROMIUM", "/usr/bin/chromium"), args: ["--no-sandbox",
    // A page served by the route below counts as a public one; let it reach 127.0.0.1.
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"] });
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  page.on("pageerror", (e) => console.error("page error:", String(e)));
  if (process.env.PAGE_HTML) {
    const html = readFileSync(process.env.PAGE_HTML, "utf8");
    await page.route(addr, (r) => r.fulfill({ contentType: "text/html", body: html }));
  }
  const view = { panes: files.map((_, i) => ({ c: `cat${i}` })), layout: "cols" };
  await page.goto(`${addr}#v=${encodeURIComponent(JSON.stringify(view))}`);
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });
  await new Promise(r => setTimeout(r, 500));
  // The panes' 5,000 rows at once, then the steady rate.
  write(ROWS);
  writer = setInterval(() => { carry += RATE * TICK / 1000; const k = Math.floor(carry); carry -= k; if (k) write(k); }, TICK);
  // Full panes: both pages keep at most 5,000 line elements per pane.
  // (The page of this tree draws only the rows in view: count the rows it holds.)
  const held = () => page.evaluate(() => window.tailgate.panes().map(p => p.rows ? p.rows.length : p.linesEl.querySelectorAll(".line").length));
  const full = async () => (await held()).every(n => n >= ROWS * 0.98);
  const deadline = Date.now() + 60000;
  while (!(await full())) { if (Date.now() > deadline) throw new Error("the panes did not fill within 60 s"); await new Promise(r => setTimeout(r, 200)); }
  // Frames over 50 ms as Chrome records them, in both phases.
  await page.evaluate(() => {
    window.__bench = { gaps: [], loaf: [] };
    try { new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__bench.loaf.push(e.duration); }).observe({ type: "long-animation-frame" }); } catch (e) { /* older Chrome */ }
  });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable", { timeDomain: "timeTicks" });
  const metric = async () => Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map(m => [m.name, m.value]));
  // CPU time of the renderer processes: unlike task durations (wall clock), not inflated when
  // other processes take the CPU away mid-task.
  const bcdp = await browser.newBrowserCDPSession();
  const rendererCpu = async () => (await bcdp.send("SystemInfo.getProcessInfo")).processInfo
    .filter(p => p.type === "renderer").reduce((t, p) => t + p.cpuTime, 0);
  await new Promise(r => setTimeout(r, 1000));
  const a = await metric(), cpu0 = await rendererCpu(), t0 = Date.now(), lines0 = n;
  if (process.env.PROFILE) { await cdp.send("Profiler.enable"); await cdp.send("Profiler.start"); }
  if (process.env.TRACE) await browser.startTracing(page, { categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8"] });
  await new Promise(r => setTimeout(r, SECONDS * 1000));
  if (process.env.TRACE) {
    // Self time per event name on the renderer's main thread: where the busy time goes.
    const ev = JSON.parse((await browser.stopTracing()).toString()).traceEvents;
    const main = ev.find(e => e.name === "thread_name" && e.args && e.args.name === "CrRendererMain");
    const xs = ev.filter(e => main && e.pid === main.pid && e.tid === main.tid && e.ph === "X" && e.dur).sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    const self = new Map(), stack = [];
    for (const e of xs) {
      while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts) stack.pop();
      if (stack.length) { const p = stack[stack.length - 1]; self.set(p.name, (self.get(p.name) || 0) - e.dur); }
      self.set(e.name, (self.get(e.name) || 0) + e.dur); stack.push(e);
    }
    console.error([...self].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => `${k}: ${Math.round(v / 1000 / SECONDS)} ms/s`).join("\n"));
  }
  if (process.env.PROFILE) {
    // JS self time per function: where the script time goes.
    const { profile } = await cdp.send("Profiler.stop");
    const dt = profile.timeDeltas, self = new Map(), byId = new Map(profile.nodes.map(x => [x.id, x]));
    profile.samples.forEach((id, i) => { const f = byId.get(id).callFrame; const k = `${f.functionName || "(anon)"}:${f.lineNumber}`; self.set(k, (self.get(k) || 0) + (dt[i] || 0)); });
    console.error([...self].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => `${k}: ${Math.round(v / 1000 / SECONDS)} ms/s`).join("\n"));
  }
  const b = await metric(), cpu1 = await rendererCpu(), secs = (Date.now() - t0) / 1000, written = n - lines0;
  // Second phase: every frame's length, from a requestAnimationFrame loop (which itself makes
  // the page render at 60 frames/s, so it is kept out of the busy time above).
  await page.evaluate(() => {
    let last = performance.now();
    const tick = (t) => { window.__bench.gaps.push(t - last); last = t; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  await new Promise(r => setTimeout(r, SECONDS * 1000));
  const res = await page.evaluate(() => window.__bench);
  const rows = await held();
  const dom = await page.evaluate(() => document.querySelectorAll(".pane .line").length);
  const gaps = res.gaps.slice(1).sort((x, y) => x - y);
  const out = {
    page: process.env.PAGE_HTML ? "override" : "tailgate",
    panes: PANES, rows_per_pane: rows, line_elements: dom, lines_per_sec_per_pane: Math.round(written / PANES / secs), seconds: Math.round(secs * 10) / 10,
    busy_ms_per_sec: Math.round((b.TaskDuration - a.TaskDuration) * 1000 / secs),
    renderer_cpu_ms_per_sec: Math.round((cpu1 - cpu0) * 1000 / secs),
    script_ms_per_sec: Math.round((b.ScriptDuration - a.ScriptDuration) * 1000 / secs),
    layout_ms_per_sec: Math.round((b.LayoutDuration - a.LayoutDuration) * 1000 / secs),
    style_ms_per_sec: Math.round((b.RecalcStyleDuration - a.RecalcStyleDuration) * 1000 / secs),
    frames: gaps.length, worst_frame_ms: Math.round(gaps[gaps.length - 1] || 0),
    p99_frame_ms: Math.round(gaps[Math.floor(gaps.length * 0.99)] || 0),
    long_frames_over_50ms: res.loaf.length, worst_long_frame_ms: Math.round(Math.max(0, ...res.loaf)),
  };
  console.log(JSON.stringify(out));
} finally {
  if (browser) await browser.close();
  cleanup();
}
