// Drives tailgate's page in headless Chromium (/usr/bin/chromium) with playwright-core:
// open a pane, see lines arrive, filter with highlighting, pause and jump to live, survive a
// reconnect without gap or duplicate, show a <script> line as text; save a screenshot.
//
// Run by tailgate/tests/browser.rs (cargo test), which passes TAILGATE_BIN and SCREENSHOT.
// Exits non-zero on the first failed check.
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
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
const token = "browser-test-token";
const tg = spawn(bin, ["--listen", "127.0.0.1:0", "--token", token, "--poll-interval", "20ms",
  "--file", `${appLog}=app`, "--file", `${webLog}=web.access`], { stdio: ["ignore", "pipe", "inherit"] });
let browser;
const cleanup = () => { try { tg.kill("SIGTERM"); } catch {} try { rmSync(dir, { recursive: true, force: true }); } catch {} };
process.on("exit", cleanup);
const fail = (msg) => { console.error("browser test FAILED: " + msg); process.exitCode = 1; throw new Error(msg); };
const check = (cond, msg) => { if (!cond) fail(msg); };

const addr = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("tailgate did not print its address")), 10000);
  createInterface({ input: tg.stdout }).on("line", (l) => {
    const m = /^tailgate listening on (http:\/\/\S+)$/.exec(l);
    if (m) { clearTimeout(t); resolve(m[1]); }
  });
});

try {
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 }, colorScheme: "dark" });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${addr}?token=${token}`);
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });

  // Lines exist before the pane opens: the backlog shows them.
  appendFileSync(appLog, "hello 1\nINFO starting\n");
  appendFileSync(webLog, '127.0.0.1 - - "GET / HTTP/1.1" 200\n');
  await page.waitForSelector('#cats li[data-category="app"]', { timeout: 10000 });
  await page.click('#cats li[data-category="app"]');
  const pane = page.locator(".pane").first();
  await pane.locator(".line", { hasText: "hello 1" }).waitFor({ timeout: 10000 });

  // A second pane on a glob, opened from the input.
  await page.fill("#add-input", "web.*");
  await page.press("#add-input", "Enter");
  const webPane = page.locator(".pane").nth(1);
  await webPane.locator(".line", { hasText: "GET / HTTP/1.1" }).waitFor({ timeout: 10000 });

  // Live lines, hostile markup, ANSI colours, a non-UTF-8 line.
  appendFileSync(appLog, "<script>window.__xss = 1</script><img src=x onerror=window.__xss=2>\n" +
    "\x1b[31mERROR\x1b[0m disk \x1b[1;32mfull\x1b[0m\n" + "WARN slow request\n");
  appendFileSync(appLog, Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe, 0x0a]));
  await pane.locator(".line", { hasText: "slow request" }).waitFor({ timeout: 10000 });
  await pane.locator(".line.bin").waitFor({ timeout: 10000 });
  const xss = await page.evaluate(() => ({
    flag: window.__xss,
    scripts: document.querySelectorAll(".lines script, .lines img").length,
    text: [...document.querySelectorAll(".pane .line")].map((e) => e.textContent).find((t) => t.includes("<script>")),
  }));
  check(xss.flag === undefined && xss.scripts === 0, `log text was interpreted as HTML: ${JSON.stringify(xss)}`);
  check(xss.text && xss.text.startsWith("<script>window.__xss = 1</script>"), `the <script> line is not shown as text: ${xss.text}`);
  const red = await pane.locator(".line", { hasText: "disk" }).locator("span.f1").first().textContent();
  check(red === "ERROR", `ANSI red not rendered: ${red}`);

  // Filter with highlighting: only matching lines visible, matches marked.
  await pane.locator(".filter").fill("/ERROR|WARN/");
  const visible = await pane.locator(".line:not(.hidden)").allTextContents();
  check(visible.length === 2 && visible.every((t) => /ERROR|WARN/.test(t)), `filter shows ${JSON.stringify(visible)}`);
  const marks = await pane.locator("mark").allTextContents();
  check(marks.includes("ERROR") && marks.includes("WARN"), `no highlighting: ${JSON.stringify(marks)}`);
  check(page.url().includes("ERROR"), "the filter is not in the URL");
  await pane.locator(".filter").fill("");

  // Pause: lines keep arriving but are held, with a "N new" button; jump to live shows them.
  await pane.locator(".pause").click();
  appendFileSync(appLog, "held 1\nheld 2\nheld 3\n");
  await pane.locator(".newbar.show", { hasText: "3 new" }).waitFor({ timeout: 10000 });
  check(await pane.locator(".line", { hasText: "held" }).count() === 0, "paused pane still appended lines");
  await pane.locator(".newbar").click();
  check(await pane.locator(".line", { hasText: "held" }).count() === 3, "jump to live did not show the held lines");

  // Reconnect: lines written while disconnected arrive once, none twice.
  await page.evaluate(() => window.tailgate.disconnect());
  appendFileSync(appLog, "while away 1\nwhile away 2\n");
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 15000 });
  appendFileSync(appLog, "after reconnect\n");
  await pane.locator(".line", { hasText: "after reconnect" }).waitFor({ timeout: 10000 });
  const texts = await pane.locator(".line:not(.notice)").allTextContents();
  const dup = texts.filter((t, i) => texts.indexOf(t) !== i);
  check(dup.length === 0, `duplicated after reconnect: ${JSON.stringify(dup)}`);
  check(texts.includes("while away 1") && texts.includes("while away 2"), `gap after reconnect: ${JSON.stringify(texts)}`);

  // The view is in the URL: a fresh page from it has the same panes.
  const url = page.url();
  const page2 = await browser.newPage({ viewport: { width: 900, height: 500 } });
  await page2.goto(url);
  await page2.locator(".pane").nth(1).waitFor({ timeout: 10000 });
  const patterns = await page2.locator(".pane").evaluateAll((ps) => ps.map((p) => p.dataset.pattern));
  check(JSON.stringify(patterns) === JSON.stringify(["app", "web.*"]), `view from URL: ${patterns}`);
  await page2.close();

  appendFileSync(webLog, '10.0.0.7 - - "POST /api/login HTTP/1.1" 302\n10.0.0.9 - - "GET /missing HTTP/1.1" 404\n');
  await webPane.locator(".line", { hasText: "missing" }).waitFor({ timeout: 10000 });
  await pane.locator(".filter").fill("error");
  await page.screenshot({ path: shot });
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  console.log(`browser test passed; screenshot at ${shot}`);
} finally {
  if (browser) await browser.close();
  cleanup();
}
