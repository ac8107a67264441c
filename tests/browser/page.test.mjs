// Drives tailgate's page in headless Chromium (/usr/bin/chromium) with playwright-core:
// token handling, panes, escapes, levels, server-side filters with highlighting, pause,
// reconnect, the view in the URL, layout and keys, permalinks, download, the category list;
// saves screenshots.
//
// Run by tailgate/tests/browser.rs (cargo test), which passes TAILGATE_BIN and SCREENSHOT.
// Exits non-zero on the first failed check. Every wait is bounded.
import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const bin = process.env.TAILGATE_BIN;
const shot = process.env.SCREENSHOT || "tailgate-browser.png";
if (!bin) throw new Error("TAILGATE_BIN not set");

const dir = mkdtempSync(join(tmpdir(), "tailgate-browser-"));
const appLog = join(dir, "app.log");
const webLog = join(dir, "web.log");
const busyLog = join(dir, "busy.log");
const token = "browser-test-token";
// Lines present at start seed the ring: a page opened after a restart is not empty.
writeFileSync(appLog, "hello 1\nINFO starting\n");
writeFileSync(busyLog, "");
const tg = spawn(bin, ["--listen", "127.0.0.1:0", "--token", token, "--poll-interval", "20ms",
  "--file", `${appLog}=app`, "--file", `${webLog}=web.access`, "--file", `${busyLog}=busy`],
{ stdio: ["ignore", "pipe", "inherit"] });
// A second tailgate on a data dir whose archive goes back further than its ring (3 lines):
// history from the archive files (one gzipped) and "go to time".
const arch = join(dir, "data", "arch");
mkdirSync(arch, { recursive: true });
const at = (t, w) => `2026-12-04T${t} ${w}\n`;
writeFileSync(join(arch, "arch_00000.gz"), gzipSync(at("14:00:01", "a") + at("14:00:02", "b") + at("14:00:03", "c")));
writeFileSync(join(arch, "arch_00001"), at("14:05:00", "d") + at("14:06:00", "e"));
writeFileSync(join(arch, "arch_00002"), at("14:10:00", "f") + at("14:11:00", "g") + at("14:12:00", "h"));
symlinkSync("arch_00002", join(arch, "arch_current"));
const tg2 = spawn(bin, ["--listen", "127.0.0.1:0", "--ring-lines", "3", "--data-dir", join(dir, "data")],
  { stdio: ["ignore", "pipe", "inherit"] });
let browser;
const cleanup = () => { for (const p of [tg, tg2]) try { p.kill("SIGTERM"); } catch {} try { rmSync(dir, { recursive: true, force: true }); } catch {} };
process.on("exit", cleanup);
const fail = (msg) => { console.error("browser test FAILED: " + msg); process.exitCode = 1; throw new Error(msg); };
const check = (cond, msg) => { if (!cond) fail(msg); };
const T = { timeout: 10000 };

const address = (proc) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("tailgate did not print its address")), 10000);
  createInterface({ input: proc.stdout }).on("line", (l) => {
    const m = /^tailgate listening on (http:\/\/\S+)$/.exec(l);
    if (m) { clearTimeout(t); resolve(m[1]); }
  });
});
const addr = await address(tg), addr2 = await address(tg2);

// A pane's lines as text (the records' plain text: escapes removed, no gutter).
const texts = (page, i) => page.evaluate((i) => window.tailgate.panes()[i].texts(), i);
const notices = (page, i) => page.evaluate((i) => window.tailgate.panes()[i].rows.filter(r => r.notice).map(r => r.text), i);
async function until(what, f, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) fail("timed out waiting for " + what + (process.env.DEBUG ? ": " + JSON.stringify(await f.debug?.()) : ""));
    await new Promise(r => setTimeout(r, 50));
  }
}
// How long the page's main thread takes to answer: a frozen tab cannot.
const responsive = (page) => page.evaluate(() => new Promise(r => { const t = performance.now(); setTimeout(() => r(performance.now() - t), 0); }));

try {
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 800 }, colorScheme: "dark", acceptDownloads: true });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const wsUrls = [];
  page.on("websocket", (w) => wsUrls.push(w.url()));
  await page.goto(`${addr}?token=${token}`);
  await page.waitForSelector('#conn[data-state="live"]', T);

  // The token: read once, gone from the address bar, kept in this tab, never in a URL.
  check(!page.url().includes(token), `token still in the URL: ${page.url()}`);
  check(await page.evaluate(() => sessionStorage.getItem("tailgate.token")) === token, "token not kept in sessionStorage");
  check(wsUrls.length > 0 && wsUrls.every(u => !u.includes("token")), `websocket URL carries the token: ${wsUrls}`);

  // The ring was seeded from the file at start.
  appendFileSync(webLog, '127.0.0.1 - - "GET / HTTP/1.1" 200\n');
  await page.waitForSelector('#cats li[data-category="app"]', T);
  await page.click('#cats li[data-category="app"]');
  const pane = page.locator(".pane").first();
  await pane.locator(".line", { hasText: "hello 1" }).waitFor(T);

  // A second pane on a glob, opened from the input.
  await page.fill("#add-input", "web.*");
  await page.press("#add-input", "Enter");
  const webPane = page.locator(".pane").nth(1);
  await webPane.locator(".line", { hasText: "GET / HTTP/1.1" }).waitFor(T);

  // Hostile markup, ANSI colours, OSC (title, OSC 8 link), C0 controls, a non-UTF-8 line;
  // levels in their usual spellings.
  appendFileSync(appLog, "<script>window.__xss = 1</script><img src=x onerror=window.__xss=2>\n" +
    "\x1b[31mERROR\x1b[0m disk \x1b[1;32mfull\x1b[0m\n" +
    "\x1b]0;my title\x07osc \x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\ done\n" +
    "bell\x07 back\x08 tab\there\n" +
    "WARN slow request\n" +
    'ts=1 level=debug msg="cache"\n' + '{"level":"error","msg":"json"}\n' + "<11>Oct  1 12:00:00 host app: syslog crit\n");
  appendFileSync(appLog, Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe, 0x0a]));
  await pane.locator(".line", { hasText: "syslog crit" }).waitFor(T);
  await pane.locator(".line.bin").waitFor(T);
  const xss = await page.evaluate(() => ({ flag: window.__xss, scripts: document.querySelectorAll(".lines script, .lines img").length }));
  check(xss.flag === undefined && xss.scripts === 0, `log text was interpreted as HTML: ${JSON.stringify(xss)}`);
  const lines = await texts(page, 0);
  check(lines.includes("<script>window.__xss = 1</script><img src=x onerror=window.__xss=2>"), `the <script> line is not shown as text: ${lines}`);
  check(lines.includes("osc link done"), `OSC left text behind: ${JSON.stringify(lines.find(l => l.startsWith("osc")))}`);
  check(lines.includes("bell back tab\there"), `C0 controls (but tab) not stripped: ${JSON.stringify(lines.find(l => l.startsWith("bell")))}`);
  const red = await pane.locator(".line", { hasText: "disk" }).locator("span.f1").first().textContent();
  check(red === "ERROR", `ANSI red not rendered: ${red}`);
  const level = (t) => pane.locator(".line", { hasText: t }).first().getAttribute("class");
  check((await level("disk")).includes("lv-error"), "ERROR line has no error stripe");
  check((await level("slow request")).includes("lv-warn"), "WARN line has no warn stripe");
  check((await level("cache")).includes("lv-debug"), "level=debug not detected");
  check((await level("json")).includes("lv-error"), "JSON level not detected");
  check((await level("syslog crit")).includes("lv-error"), "syslog severity not detected");
  // Seq on hover; the time gutter.
  check(/^seq \d+ · app · received/.test(await pane.locator(".line", { hasText: "slow request" }).getAttribute("title")), "no seq on hover");
  await page.click("#time-btn");
  check(await pane.locator(".line .t").first().isVisible(), "time gutter not shown");
  check(await pane.locator(".line", { hasText: "syslog crit" }).locator(".t").textContent() === "12:00:00", "the line's own time not used");

  // Filters run on the server: only matching lines come, several terms in several colours,
  // a match counter, exclusion, case.
  appendFileSync(appLog, "GET /healthz error\nerror in db\n");
  await pane.locator(".line", { hasText: "error in db" }).waitFor(T);
  await pane.locator(".filter").fill("error warn -/healthz/");
  const filtered = async () => {
    const t = await texts(page, 0);
    return t.length === 5 && t.every(l => /error|warn/i.test(l) && !l.includes("healthz")) ? t : null;
  };
  filtered.debug = () => Promise.all([texts(page, 0), notices(page, 0)]);
  await until("filtered lines", filtered);
  const markClasses = await pane.locator("mark").evaluateAll(ms => [...new Set(ms.map(m => m.className))]);
  check(markClasses.includes("h0") && markClasses.includes("h1"), `terms not in several colours: ${markClasses}`);
  check(/^5 of \d+ match$/.test(await pane.locator(".count").textContent()), `match counter: ${await pane.locator(".count").textContent()}`);
  check((await page.title()).includes("app (error warn -/healthz/)"), `title without the filter: ${await page.title()}`);
  await pane.locator(".case").click();
  await until("case-sensitive filter", async () => (await texts(page, 0)).every(t => /error|warn/.test(t)) && (await texts(page, 0)).includes("error in db") && !(await texts(page, 0)).includes("ERROR disk full"));
  await pane.locator(".case").click();
  check(page.url().includes("healthz"), "the filter is not in the URL");
  // Context lines around matches, from the server, marked as such.
  await pane.locator(".filter").fill('"error in db"');
  await until("the one match", async () => JSON.stringify(await texts(page, 0)) === '["error in db"]');
  await pane.locator("select.context").selectOption("1");
  await until("context lines", async () => JSON.stringify(await texts(page, 0)) === '["GET /healthz error","error in db"]');
  check(await pane.locator(".line.ctx", { hasText: "healthz" }).count() === 1, "context line not marked");
  check(/^1 of \d+ match$/.test(await pane.locator(".count").textContent()), "context lines counted as matches");
  await pane.locator("select.context").selectOption("0");

  // A catastrophic regex: the server's engine is linear, and the page's highlighting gives up
  // instead of freezing the tab.
  appendFileSync(appLog, "a".repeat(27) + "!\n");
  await pane.locator(".filter").fill("/(a+)+$/");
  await until("the server's answer to a catastrophic regex", async () => /^0 of [1-9]/.test(await pane.locator(".count").textContent()));
  check(await responsive(page) < 500, "main thread blocked by a filter");
  await pane.locator(".filter").fill("aaaa ~/(a+)+$/");
  await until("the line the highlight runs on", async () => (await texts(page, 0)).length === 1);
  await until("regex highlighting turned off", async () => (await pane.locator(".filter").getAttribute("title") || "").includes("highlighting off"));
  const lag = await responsive(page);
  check(lag < 500, `main thread blocked for ${lag} ms`);
  await pane.locator(".filter").fill("/(/");
  await pane.locator(".filter.bad").waitFor(T);
  await pane.locator(".filter").fill("");
  await pane.locator(".line", { hasText: "hello 1" }).waitFor(T);

  // Pause: lines are held with a "N new" button; past 5,000 the oldest are not kept, and a
  // notice row says how many.
  await pane.locator(".pause").click();
  appendFileSync(appLog, "held 1\nheld 2\nheld 3\n");
  await pane.locator(".newbar.show", { hasText: "3 new" }).waitFor(T);
  check(await pane.locator(".line", { hasText: "held" }).count() === 0, "paused pane still appended lines");
  await pane.locator(".newbar").click();
  await until("held lines", async () => (await texts(page, 0)).filter(t => t.startsWith("held")).length === 3);
  await page.keyboard.press("Space");
  check(await pane.locator(".pause.on").count() === 1, "space did not pause");
  let many = ""; for (let i = 0; i < 5100; i++) many += `flood ${i}\n`;
  appendFileSync(appLog, many);
  await pane.locator(".newbar.show", { hasText: "5,100 new (100 not kept)" }).waitFor(T);
  await page.keyboard.press("Shift+G");
  await until("the not-kept notice", async () => (await notices(page, 0)).some(n => n.includes("100 lines not kept while paused")));
  // The pane holds 5,000 rows, but only those in view are in the DOM.
  const dom = await until("the held lines", () => page.evaluate(() => {
    const p = window.tailgate.panes()[0], rows = p.rows.length, els = p.root.querySelectorAll(".line").length;
    return rows >= 4999 && { rows, els };
  }));
  check(dom.rows <= 5000 && dom.els > 10 && dom.els < 150, `rows held / drawn: ${JSON.stringify(dom)}`);
  // Scrolled up, the view stays on the same lines while new ones come and old ones go.
  await pane.locator(".lines").evaluate((l) => { l.scrollTop = l.scrollHeight / 2; });
  await until("a line in the middle drawn", () => pane.locator(".line", { hasText: /flood 2\d{3}$/ }).count());
  const before = await pane.locator(".line").first().textContent();
  appendFileSync(appLog, "more 1\nmore 2\n");
  await pane.locator(".newbar.show").waitFor(T);
  const kept = await pane.locator(".line").first().textContent();
  check(kept === before, `scrolled view moved: ${before} → ${kept}`);
  await page.keyboard.press("Shift+G");

  // Reconnect: lines written while disconnected arrive once, none twice.
  await page.evaluate(() => window.tailgate.disconnect());
  appendFileSync(appLog, "while away 1\nwhile away 2\n");
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 15000 });
  appendFileSync(appLog, "after reconnect\n");
  await until("after reconnect", async () => (await texts(page, 0)).includes("after reconnect"));
  const after = (await texts(page, 0)).filter(t => !t.startsWith("flood"));
  const dup = after.filter((t, i) => after.indexOf(t) !== i);
  check(dup.length === 0, `duplicated after reconnect: ${JSON.stringify(dup)}`);
  check(after.includes("while away 1") && after.includes("while away 2"), `gap after reconnect: ${JSON.stringify(after)}`);

  // Permalink: a click on a line's time copies a link; opened, it marks that line.
  await pane.locator(".line", { hasText: "while away 1" }).locator(".t").click();
  const link = await page.evaluate(() => window.tailgate.lastPermalink);
  check(/#v=.*&at=app%3A\d+$/.test(link || ""), `permalink: ${link}`);

  // Wrap toggle and keyboard: w, /, g.
  await page.keyboard.press("w");
  check(await pane.locator(".lines.nowrap").count() === 1, "w did not turn wrapping off");
  await pane.locator(".wrap").click();
  check(await page.evaluate(() => getComputedStyle(document.querySelector(".pane .line")).overflowWrap) === "anywhere", "not overflow-wrap: anywhere");
  await page.keyboard.press("/");
  check(await page.evaluate(() => document.activeElement.classList.contains("filter")), "/ did not focus the filter");
  await page.keyboard.press("Escape");

  // Download a pane's lines.
  const [dl] = await Promise.all([page.waitForEvent("download", T), pane.locator(".download").click()]);
  const body = readFileSync(await dl.path(), "utf8");
  check(dl.suggestedFilename() === "app.log" && body.includes("after reconnect\n"), `download: ${dl.suggestedFilename()}`);

  // The category list: search, sort by activity, age of the last line.
  appendFileSync(busyLog, "x\n".repeat(50));
  await page.fill("#cat-search", "ap");
  await until("category search", async () => JSON.stringify(await page.locator("#cats li").evaluateAll(ls => ls.map(l => l.dataset.category))) === '["app"]');
  await page.fill("#cat-search", "");
  await until("ages", async () => /^\d+[smhd]$/.test(await page.locator('#cats li[data-category="app"] .age').textContent()));

  // A view from the URL, in a new tab with no token: it asks for one, then works; opened
  // from a permalink it marks the line.
  const page2 = await (await browser.newContext({ viewport: { width: 900, height: 500 } })).newPage();
  page2.on("pageerror", (e) => errors.push("page2: " + String(e)));
  await page2.goto(link);
  await page2.locator("#auth:not([hidden])").waitFor(T);
  check(await page2.locator("#conn .label").textContent() === "token required", "no 'token required' state");
  await page2.fill("#auth-input", "wrong");
  await page2.click("#auth-btn");
  await page2.locator("#auth-msg", { hasText: "refused" }).waitFor(T);
  await page2.fill("#auth-input", token);
  await page2.click("#auth-btn");
  await page2.waitForSelector('#conn[data-state="live"]', T);
  const patterns = await page2.locator(".pane").evaluateAll((ps) => ps.map((p) => p.dataset.pattern));
  check(JSON.stringify(patterns) === JSON.stringify(["app", "web.*"]), `view from URL: ${patterns}`);
  await page2.locator(".line.target", { hasText: "while away 1" }).waitFor(T);
  await page2.close();

  // A grid from four panes.
  for (const c of ["busy", "app"]) { await page.fill("#add-input", c); await page.press("#add-input", "Enter"); }
  check(await page.locator("#panes.grid").count() === 1, "no grid with 4 panes");
  // Rows in a pane's view (not just in the DOM): its count comes at once, rows at the next frame.
  const inView = (i) => page.evaluate((i) => {
    const p = window.tailgate.panes()[i], b = p.linesEl.getBoundingClientRect();
    return [...p.win.children].filter(e => { const r = e.getBoundingClientRect(); return r.bottom > b.top && r.top < b.bottom; }).length;
  }, i);
  await until("rows in view in the 4th pane", () => inView(3));
  await page.screenshot({ path: shot.replace(/\.png$/, "-grid.png") });
  // A redraw that leaves the scroll position as it was (the time gutter off and on), then g:
  // the pane shows its first rows, not an empty top of the spacer.
  await page.click("#time-btn"); await page.click("#time-btn");
  await new Promise(r => setTimeout(r, 300));
  await page.locator(".pane").nth(3).locator(".bar .count").click();
  await page.keyboard.press("g");
  await until("rows in view after g", async () => await inView(3) > 5 && (await page.locator(".pane").nth(3).locator(".line").first().textContent()).includes("flood"));
  for (let i = 0; i < 2; i++) await page.locator(".pane").nth(3 - i).locator(".close").click();

  // History: a pane whose ring holds 3 lines reads older ones from the archive (a plain and
  // a gzipped file); "go to 14:05" finds a line from before the ring.
  const page3 = await (await browser.newContext({ viewport: { width: 900, height: 500 } })).newPage();
  page3.on("pageerror", (e) => errors.push("page3: " + String(e)));
  await page3.goto(`${addr2}#v=${encodeURIComponent(JSON.stringify({ panes: [{ c: "arch" }] }))}`);
  await page3.locator(".line", { hasText: "14:12:00 h" }).waitFor(T);
  // The ring holds f, g, h; a pane they do not fill reads the older ones by itself.
  await until("history read by itself", async () => (await texts(page3, 0)).map(t => t.slice(-1)).join("") === "abcdefgh");
  await page3.fill("#goto", "14:05");
  await page3.press("#goto", "Enter");
  await page3.locator(".line.target", { hasText: "14:05:00 d" }).waitFor(T);
  const all = await texts(page3, 0);
  check(all.map(t => t.slice(-1)).join("") === "abcdefgh", `history + ring: ${JSON.stringify(all)}`);
  check((await notices(page3, 0)).some(n => n.includes("start of the archive")), "no start-of-archive notice");
  await page3.close();

  appendFileSync(webLog, '10.0.0.7 - - "POST /api/login HTTP/1.1" 302\n10.0.0.9 - - "GET /missing HTTP/1.1" 404\n');
  await webPane.locator(".line", { hasText: "missing" }).waitFor(T);
  await pane.locator(".filter").fill("error warn ~disk");
  await pane.locator("mark.h2", { hasText: "disk" }).waitFor(T);
  await page.screenshot({ path: shot });
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  console.log(`browser test passed; screenshot at ${shot}`);
} finally {
  if (browser) await browser.close();
  cleanup();
}
