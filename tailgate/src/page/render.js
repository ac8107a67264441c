// ---- render.js: one row's DOM, highlighting, and the per-frame scheduler ----

const MAX_ROWS = 5000;     // rows a pane keeps
const MAX_PAUSED = 5000;   // lines held while paused (older ones are counted, not kept)
const MAX_HISTORY = 20000; // lines read back from the archive a pane keeps on top
const LH = 16;             // px per row (the CSS --lh)
const MAX_MARKS = 50;      // most highlighted ranges per term and line
const HL_TIMEOUT = 150;    // ms a batch of regex highlighting may take before it is turned off

// Half-open [start, end, colour] ranges of substring terms in `plain` (linear: indexOf).
function substringRanges(plain, terms, caseSensitive) {
  const out = []; let lower = null;
  terms.forEach((t) => {
    if (t.text == null) return;
    const needle = caseSensitive ? t.text : t.text.toLowerCase();
    const hay = caseSensitive ? plain : (lower ??= plain.toLowerCase());
    // Lower-casing can change lengths outside ASCII; then offsets would not line up.
    if (!caseSensitive && hay.length !== plain.length) return;
    let at = 0, n = 0;
    while (n++ < MAX_MARKS && (at = hay.indexOf(needle, at)) !== -1) { out.push([at, at + needle.length, t.colour]); at += needle.length; }
  });
  return out;
}

function styledNode(s, text, mark) {
  const plain = !s.b && !s.d && !s.i && !s.u && s.f == null && s.g == null && !s.fx && !s.gx;
  if (plain && mark == null) return document.createTextNode(text);
  const e = document.createElement(mark != null ? "mark" : "span");
  const cls = [];
  if (mark != null) cls.push("h" + (mark % 6));
  if (s.b) cls.push("b"); if (s.d) cls.push("d"); if (s.i) cls.push("i"); if (s.u) cls.push("u");
  if (s.f != null) cls.push("f" + s.f); if (s.g != null) cls.push("g" + s.g);
  if (cls.length) e.className = cls.join(" ");
  if (s.fx) e.style.color = s.fx; if (s.gx) e.style.background = s.gx;
  e.textContent = text;  // text only: a "<script>" line stays text
  return e;
}

// Fills `row` (a .line element) from record `r`: time gutter, category, text with marks.
function fillRow(row, r, ranges) {
  row.replaceChildren();
  row.append(el("span", "t", r.own || hms(r.at)));
  if (r.showCat) row.append(el("span", "cat", r.cat));
  if (!ranges || !ranges.length) { for (const seg of r.segs) row.append(styledNode(seg.s, seg.t)); return; }
  ranges.sort((a, b) => a[0] - b[0]);
  let pos = 0, ri = 0;
  for (const seg of r.segs) {
    const end = pos + seg.t.length; let off = 0;
    while (off < seg.t.length) {
      const at = pos + off;
      while (ri < ranges.length && ranges[ri][1] <= at) ri++;
      const m = ranges[ri];
      if (m && m[0] <= at) { const stop = Math.min(m[1], end) - pos; row.append(styledNode(seg.s, seg.t.slice(off, stop), m[2])); off = stop; }
      else { const stop = (m ? Math.min(m[0], end) : end) - pos; row.append(styledNode(seg.s, seg.t.slice(off, stop))); off = stop; }
    }
    pos = end;
  }
}

function rowElement(r) {
  const row = document.createElement("div");
  if (r.notice) { row.className = "line notice"; row.textContent = r.text; return row; }
  row.className = "line" + (r.level ? " lv-" + r.level : "") + (r.bin ? " bin" : "") + (r.ctx ? " ctx" : "") + (r.sep ? " sep" : "");
  row.title = (r.seq != null ? `seq ${r.seq} · ` : "") + r.cat + ` · received ${hms(r.at)}` + (r.bin ? " · not UTF-8: shown with replacement characters" : "");
  return row;
}

// ---- regex highlighting, off the main thread and bounded in time ----
// A JS regex can backtrack for seconds (/(a+)+$/ on "aaaa…!"). Regex highlight terms run in
// a worker; a batch that takes longer than HL_TIMEOUT ends the worker and turns regex
// highlighting off for that pane (substring terms, found by indexOf, stay on).
const HL_WORKER = `onmessage = (e) => {
  const { job, res, texts, max } = e.data; const rs = res.map(([src, flags, colour]) => {
    try { return [new RegExp(src, flags.replace(/[gy]/g, "") + "g"), colour]; } catch (_) { return null; } });
  const out = texts.map((t) => { const r = [];
    for (const x of rs) { if (!x) continue; const [re, colour] = x; re.lastIndex = 0; let m, n = 0;
      while (n++ < max && (m = re.exec(t))) { if (!m[0].length) { re.lastIndex++; continue; } r.push([m.index, m.index + m[0].length, colour]); } }
    return r; });
  postMessage({ job, out });
};`;
let hlWorkerUrl = null;
class RegexHighlighter {
  constructor(onSlow) { this.onSlow = onSlow; this.worker = null; this.jobs = new Map(); this.next = 1; this.res = []; }
  setTerms(res) { this.res = res; this.stop(); }
  stop() { if (this.worker) this.worker.terminate(); this.worker = null; for (const j of this.jobs.values()) clearTimeout(j.timer); this.jobs.clear(); }
  // Highlights `recs` (rows on screen); `done(rec, ranges)` is called per row.
  run(recs, done) {
    if (!this.res.length || !recs.length) return;
    try {
      if (!this.worker) {
        hlWorkerUrl ??= URL.createObjectURL(new Blob([HL_WORKER], { type: "text/javascript" }));
        this.worker = new Worker(hlWorkerUrl);
        this.worker.onmessage = (e) => {
          const j = this.jobs.get(e.data.job); if (!j) return;
          clearTimeout(j.timer); this.jobs.delete(e.data.job);
          e.data.out.forEach((ranges, i) => done(j.recs[i], ranges));
        };
      }
    } catch (e) { this.onSlow("highlighting with regexes is not available here"); this.res = []; return; }
    const job = this.next++;
    const timer = setTimeout(() => { this.stop(); this.res = []; this.onSlow(`regex highlighting off: took over ${HL_TIMEOUT} ms`); }, HL_TIMEOUT);
    this.jobs.set(job, { recs, timer });
    this.worker.postMessage({ job, res: this.res, texts: recs.map(r => r.plain), max: MAX_MARKS });
  }
}

// ---- one requestAnimationFrame for all panes, at most every frameMs() ----
// Layout, paint and commit of a pane cost about the same whether a frame adds 1 row or 300.
// So what arrived is drawn at most 10 times a second, all panes in the same frame, and at
// most 4 times a second while lines pour in (over 1,000/s over all panes: no one reads them
// one by one at that rate), which keeps that cost flat however fast lines come.
const FRAME_MS = 100, BUSY_FRAME_MS = 250, BUSY_RATE = 1000;
const dirty = new Set(); let frameQueued = false, lastFrame = 0, frameTimer = null;
let rowRate = 0, rowsSince = 0, rateAt = 0;
function countRows(n) { rowsSince += n; }
function frameMs(now) {
  if (now - rateAt >= 1000) { rowRate = rowsSince * 1000 / Math.max(1, now - rateAt); rowsSince = 0; rateAt = now; }
  return rowRate > BUSY_RATE ? BUSY_FRAME_MS : FRAME_MS;
}
// `now`: draw at the next frame (scrolling, a toggle), not after the frame interval (new lines).
function schedule(p, now) {
  dirty.add(p);
  if (frameQueued && !(now && frameTimer)) return;
  clearTimeout(frameTimer); frameTimer = null; frameQueued = true;
  const t = performance.now();
  const wait = now ? 0 : lastFrame + frameMs(t) - t;
  if (wait > 0) frameTimer = setTimeout(() => { frameTimer = null; requestAnimationFrame(runFrame); }, wait);
  else requestAnimationFrame(runFrame);
}
function runFrame(now) {
  frameQueued = false; lastFrame = now;
  const ps = [...dirty]; dirty.clear();
  for (const p of ps) p.flush();
}
let charW = 0;
function charWidth() {
  if (!charW) {
    const c = document.createElement("canvas").getContext("2d");
    c.font = "12px ui-monospace, Menlo, Consolas, monospace";
    charW = c.measureText("0".repeat(100)).width / 100 || 7.2;
  }
  return charW;
}
function runFrame(now) {
  frameQueued = false; lastFrame = now;
  const ps = [...dirty]; dirty.clear();
  for (const p of ps) p.flush();
}
