// ---- pane.js: one pane: its subscription, rows (only those in view drawn), pause, filter, highlights ----

const BACKLOG = 1000;            // lines asked for when a pane opens
const FILTERED_BACKLOG = 100000; // a filtered pane searches the whole ring (the server caps it)
const AUTO_PAGES = 3;            // archive pages read by themselves into a pane not yet full
const isGlob = (p) => /[*?[{\\]/.test(p);
const fmt = (n) => n.toLocaleString("en-US");

let panes = []; let nextId = 1; let activePane = null;
class Pane {
  constructor(s) {
    this.id = "p" + (nextId++);
    this.pattern = s.c; this.filterText = s.f || ""; this.paused = !!s.p; this.weight = s.w || 1;
    this.caseSensitive = !!s.cs; this.wrap = s.wr !== 0; this.context = Math.min(10, s.cx | 0);
    this.lastSeq = {};       // category → last seq accounted for (resume point)
    this.offsets = {};       // Kafka category → partition → next offset (a resume point that outlives restarts)
    this.incoming = [];      // records waiting for the next frame
    this.pending = [];       // records held while paused
    this.notKept = 0;        // lines not kept while paused (past MAX_PAUSED)
    this.rows = []; this.totalH = 0;
    this.newCount = 0; this.pinned = true;
    this.matches = 0; this.total = 0;
    this.fromSeq = {};       // category → first seq this pane's subscription accounted for
    this.awaiting = false;   // a subscribe is in flight: lines of the one it replaces are ignored
    this.terms = []; this.sent = {};
    this.target = null;      // {cat, seq} of a permalink to show
    this.hist = { next: null, more: true, loading: false, rows: 0, auto: 0 };  // archive pages above the ring
    this.hl = new RegexHighlighter((why) => { this.filterEl.title = why; this.hlNote = why; });
    this.build();
    this.setFilter(this.filterText, true);
  }
  build() {
    const root = this.root = el("div", "pane"); root.dataset.pattern = this.pattern; root.style.flexGrow = this.weight;
    root.addEventListener("pointerdown", () => setActive(this));
    const bar = el("div", "bar");
    this.nameEl = el("span", "name", this.pattern);
    this.countEl = el("span", "count", "0 lines");
    const f = this.filterEl = el("input", "filter"); f.placeholder = "filter: words, /re/, !exclude, ~highlight"; f.value = this.filterText; f.setAttribute("aria-label", "filter");
    f.oninput = () => { clearTimeout(this.debounce); this.debounce = setTimeout(() => { this.setFilter(f.value); saveState(); }, 300); };
    f.onkeydown = (e) => { if (e.key === "Escape") { if (f.value) { f.value = ""; this.setFilter(""); saveState(); } else f.blur(); } };
    const button = (cls, text, title, fn) => { const b = el("button", cls, text); b.title = title; b.onclick = fn; return b; };
    this.caseEl = button("case", "Aa", "case-sensitive words", () => { this.caseSensitive = !this.caseSensitive; this.setFilter(this.filterText); saveState(); });
    this.wrapEl = button("wrap", "↩", "wrap long lines (w)", () => { this.wrap = !this.wrap; this.updateButtons(); saveState(); });
    this.pauseEl = button("pause", "❚❚ pause", "pause (space): lines are held, not shown", () => this.setPaused(!this.paused));
    const clear = button("clear", "clear", "clear the pane", () => this.clear());
    const dl = button("download", "⤓", "download this pane's lines", () => this.download());
    const close = button("close", "✕", "close pane", () => removePane(this));
    const cx = this.contextEl = el("select", "context"); cx.title = "context lines around matches (with a filter)";
    for (const n of [0, 1, 2, 3, 5, 10]) { const o = el("option", null, "±" + n); o.value = n; cx.append(o); }
    cx.value = this.context;
    cx.onchange = () => { this.context = Number(cx.value); if (this.filtered) this.refilter(); saveState(); };
    bar.append(this.nameEl, this.countEl, f, this.caseEl, cx, this.wrapEl, this.pauseEl, clear, dl, close);
    const body = el("div", "body");
    // Only the rows in view are in the DOM: a spacer as tall as all rows, and a window of
    // rows placed in it (at the bottom while following, else where the scroll position is).
    const l = this.linesEl = el("div", "lines");
    this.spacer = el("div", "spacer"); this.win = el("div", "win"); this.spacer.append(this.win); l.append(this.spacer);
    this.viewH = 600; this.viewW = 800; this.scrollTopCache = 0; this.selfScroll = false;
    new ResizeObserver(([e]) => { this.viewH = e.contentRect.height || this.viewH; this.viewW = e.contentRect.width || this.viewW; this.heights(); schedule(this, true); }).observe(l);
    l.addEventListener("scroll", () => {
      if (this.selfScroll) { this.selfScroll = false; this.scrollTopCache = l.scrollTop; return; }
      this.scrollTopCache = l.scrollTop;
      this.pinned = l.scrollTop + l.clientHeight >= l.scrollHeight - LH;
      if (this.pinned && !this.paused && this.newCount) { this.newCount = 0; this.updateNewbar(); }
      // Above the oldest line: older ones from the archive.
      if (!this.pinned && l.scrollTop < 3 * LH) this.loadOlder();
      schedule(this, true);
    }, { passive: true });
    // A click on a line's time, or on its left edge, copies a link to it.
    l.addEventListener("click", (e) => {
      const row = e.target.closest(".line"); if (!row || row.classList.contains("notice")) return;
      if (e.target.classList.contains("t") || e.offsetX < 10) this.copyLink(row);
    });
    this.newbar = el("button", "newbar"); this.newbar.onclick = () => this.jumpToLive();
    body.append(l, this.newbar);
    root.append(bar, body);
    this.updateButtons();
  }
  updateButtons() {
    this.pauseEl.textContent = this.paused ? "▶ resume" : "❚❚ pause"; this.pauseEl.classList.toggle("on", this.paused);
    this.caseEl.classList.toggle("on", this.caseSensitive); this.wrapEl.classList.toggle("on", this.wrap);
    if (this.linesEl.classList.contains("nowrap") === this.wrap) { this.linesEl.classList.toggle("nowrap", !this.wrap); this.heights(); schedule(this, true); }
    this.nameEl.textContent = this.pattern + (this.filterText ? `  ⟨${this.filterText}⟩` : "");
    this.nameEl.title = this.nameEl.textContent;
    this.updateNewbar(); updateTitle();
  }
  get filtered() { return !!(this.sent.filter || this.sent.exclude); }
  // Filter text → server filters (a resubscribe when they change) and page highlights.
  setFilter(text, initial) {
    this.filterText = text; this.filterEl.classList.remove("bad"); this.filterEl.title = "";
    this.terms = parseTerms(text);
    let colour = 0;
    for (const t of this.terms) if (t.mode !== "exclude") t.colour = colour++;
    this.hlTerms = this.terms.filter(t => t.mode !== "exclude");
    this.hl.setTerms(this.hlTerms.filter(t => t.regex != null).map(t => [t.regex, t.flags, t.colour]));
    this.hlNote = null;
    const f = serverFilters(this.terms, this.caseSensitive);
    const changed = f.filter !== this.sent.filter || f.exclude !== this.sent.exclude;
    this.sent = f;
    this.updateButtons();
    if (initial) return;
    if (changed) this.refilter();
    else this.rehighlight();
  }
  // Starts over with the server's lines for the current filters.
  refilter() { this.clear(); this.lastSeq = {}; this.offsets = {}; this.fromSeq = {}; this.prevSeq = {}; this.matches = 0; if (ready) this.subscribe(false); }
  // Highlights changed: rows are rebuilt when next drawn.
  rehighlight() { for (const r of this.rows) { r.el = null; r.marks = null; } schedule(this, true); }
  ranges(r) { return this.hlTerms.length ? substringRanges(parsed(r).plain, this.hlTerms, this.caseSensitive) : null; }
  // The pane's lines as text (tests, the console).
  texts() { return this.rows.filter(r => !r.notice).map(r => parsed(r).plain); }
  regexHighlight(recs) {
    this.hl.run(recs.filter(r => !r.notice), (r, ranges) => {
      if (!ranges.length) return;
      r.marks = ranges;
      if (r.el) fillRow(r.el, r, (this.ranges(r) || []).concat(ranges));
    });
  }
  subscribe(resume) {
    const m = { type: "subscribe", id: this.id, category: this.pattern, backlog: this.filtered ? FILTERED_BACKLOG : BACKLOG };
    if (this.sent.filter) m.filter = this.sent.filter;
    if (this.sent.exclude) m.exclude = this.sent.exclude;
    if (this.filtered && this.context) m.context = this.context;
    if (resume && Object.keys(this.lastSeq).length) m.since_seq = isGlob(this.pattern) ? this.lastSeq : Object.values(this.lastSeq)[0];
    // Offsets hold across restarts of tailgate: sent whenever the pane has some.
    if (Object.keys(this.offsets).length) m.since_offsets = this.offsets;
    this.awaiting = true;
    send(m);
  }
  setPaused(p) {
    this.paused = p; this.updateButtons(); saveState();
    if (!p) this.jumpToLive();
  }
  updateNewbar() {
    const kept = this.notKept ? ` (${fmt(this.notKept)} not kept)` : "";
    this.newbar.textContent = `${fmt(this.newCount)} new${kept} — jump to live`;
    this.newbar.classList.toggle("show", this.newCount > 0);
  }
  // Lines the server searched for this pane: every seq from the first its subscription
  // accounted for to the last it reported, per category.
  get scanned() {
    let n = 0;
    for (const [c, from] of Object.entries(this.fromSeq)) n += Math.max(0, (this.lastSeq[c] || 0) - from + 1);
    return n;
  }
  updateCount() {
    this.countEl.textContent = this.filtered
      ? `${fmt(this.matches)} of ${fmt(this.scanned)} match`
      : `${fmt(this.total)} lines`;
  }
  jumpToLive() {
    if (this.paused) { this.paused = false; this.updateButtons(); saveState(); }
    // The notice goes where the lines it counts would have been, and within a pane's worth.
    const held = this.notKept ? this.pending.slice(-(MAX_ROWS - 1)) : this.pending;
    if (this.notKept) held.unshift(this.noticeRec(`${fmt(this.notKept)} lines not kept while paused (the newest ${fmt(MAX_PAUSED)} were held)`));
    this.notKept = 0; this.pending = [];
    this.queue(held);
    this.newCount = 0; this.pinned = true; this.updateNewbar();
    schedule(this, true);
  }
  clear() {
    this.win.replaceChildren(); this.spacer.style.height = "0"; this.rows = []; this.totalH = 0; this.drawn = null;
    this.hist = { next: null, more: true, loading: false, rows: 0, auto: 0 }; this.incoming = []; this.pending = [];
    this.newCount = 0; this.notKept = 0; this.total = 0; this.updateNewbar(); this.updateCount();
  }
  noticeRec(text) { return { notice: true, text: "— " + text + " —", at: Date.now() }; }
  notice(text) { this.add([this.noticeRec(text)], true); }
  // A `lines` message → records (decoded and parsed once; DOM comes at the next frame).
  onLines(m) {
    if (this.awaiting) return;
    // Lines read back from Kafka carry seq 0 (they are not in the ring): they move the offsets,
    // never the seq resume point.
    this.lastSeq[m.category] = Math.max(this.lastSeq[m.category] || 0, m.last_seq);
    this.advance(m);
    if (m.seq > 0) this.fromSeq[m.category] ??= m.seq;
    const showCat = isGlob(this.pattern), at = Date.now(), seqs = Array.isArray(m.seqs) ? m.seqs : null;
    const ctx = new Set(Array.isArray(m.context) ? m.context : []);
    this.prevSeq ??= {};
    const recs = m.lines.map((l, i) => {
      const seq = seqs ? seqs[i] : (this.filtered ? (i === 0 ? m.seq : null) : m.seq + i);
      const r = { seq, cat: m.category, raw: l, at, showCat, ctx: ctx.has(i) };
      // With context lines, a dashed rule between groups that are not consecutive.
      const prev = this.prevSeq[m.category];
      if (this.context && this.filtered && seq != null && prev != null && seq > prev + 1) r.sep = true;
      if (seq != null) this.prevSeq[m.category] = seq;
      return r;
    });
    this.matches += recs.length - ctx.size;
    this.add(recs, false);
  }
  // A Kafka category's resume point moves with each message's offsets (they only grow).
  advance(m) {
    if (!m.offsets) return;
    const o = (this.offsets[m.category] ??= {});
    for (const [p, next] of Object.entries(m.offsets)) o[p] = Math.max(o[p] ?? 0, next);
  }
  onProgress(m) {
    this.lastSeq[m.category] = Math.max(this.lastSeq[m.category] || 0, m.last_seq);
    this.advance(m);
    this.updateCount();
  }
  onSubscribed(m) {
    this.awaiting = false;
    // A resume point for every matched category, even one that stays quiet: without it a
    // reconnect would ask that category for its backlog again.
    for (const [c, s] of Object.entries(m.last_seq || {})) if (!(c in this.lastSeq)) this.lastSeq[c] = s;
    // Where the subscription starts in each partition, for partitions without a point yet.
    for (const [c, parts] of Object.entries(m.offsets || {})) {
      const o = (this.offsets[c] ??= {});
      for (const [p, next] of Object.entries(parts)) if (!(p in o)) o[p] = next;
    }
    for (const [c, s] of Object.entries(m.from_seq || {})) if (!(c in this.fromSeq)) this.fromSeq[c] = s;
    this.updateCount();
  }
  add(recs, notice) {
    if (!notice) this.total += recs.length;
    this.updateCount();
    if (this.paused) {
      this.pending.push(...recs);
      const over = this.pending.length - MAX_PAUSED;
      if (over > 0) { this.pending.splice(0, over); this.notKept += over; }
      this.newCount += recs.length; this.updateNewbar();
      return;
    }
    this.queue(recs);
    if (!this.pinned) { this.newCount += recs.length; this.updateNewbar(); }
  }
  queue(recs) {
    if (!recs.length) return;
    for (const r of recs) this.incoming.push(r);
    countRows(recs.length);
    // Past a pane's worth, older records would be trimmed right after being drawn.
    if (this.incoming.length > MAX_ROWS) this.incoming.splice(0, this.incoming.length - MAX_ROWS);
    schedule(this);
  }
  // Row heights: one line each without wrapping; with it, the lines a monospace row of that
  // many characters takes at the pane's width (an estimate only for the scrollbar: rows in
  // view are drawn at their real height).
  heights() {
    this.cols = Math.max(10, Math.floor((this.viewW - 20) / charWidth()));
    this.totalH = 0;
    for (const r of this.rows) this.totalH += (r.h = this.heightOf(r));
  }
  heightOf(r) {
    if (!this.wrap) return LH;
    const len = rawLength(r) + (r.showCat ? r.cat.length + 1 : 0) + (state.time ? 9 : 0);
    return LH * Math.max(1, Math.ceil(len / this.cols));
  }
  // Once per frame (at most every FRAME_MS for new lines, at once for scrolling): queued
  // records join the rows (no DOM), the oldest past MAX_ROWS go, and only the rows in view
  // are drawn. Nothing here reads layout, and its cost follows the pane's height, not the
  // number of rows it holds or how fast they come.
  flush() {
    const batch = this.incoming; this.incoming = [];
    for (const r of batch) { this.totalH += (r.h = this.heightOf(r)); this.rows.push(r); }
    // Lines read back from the archive are kept on top of the pane's 5,000, up to MAX_HISTORY.
    const over = this.rows.length - MAX_ROWS - Math.min(this.hist.rows, MAX_HISTORY);
    if (over > 0) {
      let gone = 0; for (let i = 0; i < over; i++) { gone += this.rows[i].h; this.rows[i].el = null; if (this.rows[i].hist) this.hist.rows--; }
      this.rows.splice(0, over); this.totalH -= gone;
      // Keep what is on screen in place (not left to CSS scroll anchoring, which WebKit lacks).
      if (!this.pinned) { this.scrollTopCache = Math.max(0, this.scrollTopCache - gone); this.setScroll(this.scrollTopCache); }
    }
    this.draw();
  }
  // A scroll the page makes itself: its event (if it moves at all) comes before the next
  // frame's callbacks, so the flag ends there. Left set, it would swallow the next real scroll
  // (g, the wheel) and leave the rows drawn where the view no longer is: an empty pane.
  setScroll(top) {
    this.selfScroll = true; this.linesEl.scrollTop = top;
    requestAnimationFrame(() => { this.selfScroll = false; });
  }
  draw() {
    // Rows drawn beyond the view: a quarter of it while following (nothing to scroll to),
    // half of it either way when scrolled.
    const rows = this.rows, H = this.viewH, over = this.pinned ? H / 4 : H / 2;
    this.spacer.style.height = this.totalH + "px";
    if (this.target) {
      const i = rows.findIndex(r => r.cat === this.target.cat && r.seq === this.target.seq);
      if (i >= 0) {
        let off = 0; for (let k = 0; k < i; k++) off += rows[k].h;
        this.scrollTopCache = Math.max(0, off - H / 2); this.pinned = false; this.target = null; this.targetRec = rows[i];
        this.setScroll(this.scrollTopCache);
      }
    }
    let first, last;
    if (this.pinned) {
      // The newest rows that fill the view (and some), at the bottom of the spacer (at its
      // top when they are all the rows: estimated heights may fall short when wrapping).
      let h = 0; last = rows.length; first = last;
      while (first > 0 && h < H + over) h += rows[--first].h;
      this.win.classList.toggle("bottom", first > 0); this.win.style.transform = "";
    } else {
      const top = this.scrollTopCache; let off = 0; first = 0;
      while (first < rows.length && off + rows[first].h <= top - over) off += rows[first++].h;
      let h = off; last = first;
      while (last < rows.length && h < top + H + over) h += rows[last++].h;
      this.win.classList.remove("bottom"); this.win.style.transform = `translateY(${off}px)`;
    }
    const els = [], fresh = [];
    for (let i = first; i < last; i++) {
      const r = rows[i];
      if (!r.el) {
        r.el = rowElement(parsed(r));
        if (!r.notice) { const m = this.ranges(r); fillRow(r.el, r, r.marks ? (m || []).concat(r.marks) : m); if (!r.marks) fresh.push(r); }
        if (r === this.targetRec) r.el.classList.add("target");
      }
      els.push(r.el);
    }
    // Rows that left the view give up their elements.
    if (this.drawn) for (const r of this.drawn) if (r.el && !els.includes(r.el)) r.el = null;
    this.drawn = rows.slice(first, last);
    // Rows still in view stay where they are (no style or layout work for them); others go,
    // new ones are put in order.
    const keep = new Set(els);
    for (const c of [...this.win.children]) if (!keep.has(c)) c.remove();
    let at = this.win.firstElementChild;
    for (const e of els) { if (e === at) at = at.nextElementSibling; else this.win.insertBefore(e, at); }
    if (this.pinned) this.setScroll(1e9);
    this.regexHighlight(fresh);
    // A pane its lines do not fill reads back from the archive by itself, a few pages.
    const h = this.hist;
    if (ready && h.more && !h.loading && h.auto < AUTO_PAGES && this.totalH < H && rows.some(r => r.seq != null)) { h.auto++; this.loadOlder(); }
  }
  // A page of older lines from the category's archive (single-category panes, with a data
  // dir), above the oldest line held; filtered like the pane, by the server.
  async loadOlder() {
    const h = this.hist;
    if (h.loading || !h.more || isGlob(this.pattern)) return;
    const oldest = this.rows.find(r => !r.notice && r.seq != null);
    const q = new URLSearchParams({ limit: 500 });
    if (h.next != null) q.set("skip", h.next); else if (oldest) q.set("before_seq", oldest.seq); else return;
    if (this.sent.filter) q.set("filter", this.sent.filter);
    if (this.sent.exclude) q.set("exclude", this.sent.exclude);
    h.loading = true;
    try {
      const r = await fetch(base + "api/history/" + encodeURIComponent(this.pattern) + "?" + q, { cache: "no-store", headers: authHeaders() });
      if (!r.ok) { h.more = false; if (r.status !== 404) this.prepend([this.noticeRec("older lines: " + (await r.text()).trim())]); return; }
      const j = await r.json();
      h.next = j.next_skip; h.more = !!j.more && j.scanned > 0;
      const at = Date.now();
      const recs = j.lines.map(l => ({ seq: null, cat: this.pattern, raw: l, at, showCat: false, hist: true }));
      if (!h.more) recs.unshift(this.noticeRec("the start of the archive"));
      this.prepend(recs);
    } catch (e) { /* offline: tried again on the next scroll */ } finally { h.loading = false; }
  }
  prepend(recs) {
    if (!recs.length) return;
    let add = 0; for (const r of recs) add += (r.h = this.heightOf(r));
    this.rows = recs.concat(this.rows); this.totalH += add; this.hist.rows += recs.length;
    // The lines on screen stay where they are.
    if (!this.pinned) { this.scrollTopCache += add; this.setScroll(this.scrollTopCache); }
    schedule(this, true);
  }
  // Scrolls to the first line at or after `hh:mm[:ss]` (the line's own time, else arrival),
  // reading older pages from the archive when the pane starts later. False: no such time.
  async goTo(text) {
    const m = /^(\d{1,2}):(\d\d)(?::(\d\d))?$/.exec(text.trim());
    if (!m) return false;
    const want = m[1].padStart(2, "0") + ":" + m[2] + ":" + (m[3] || "00");
    const time = (r) => r.notice ? null : parsed(r).own || hms(r.at);
    for (let page = 0; page <= 20; page++) {
      const i = this.rows.findIndex(r => { const t = time(r); return t != null && t >= want; });
      if (i < 0) { this.jumpToLive(); return true; }
      if (i > 0 || !this.hist.more || isGlob(this.pattern)) { this.scrollToRow(i); return true; }
      const before = this.rows.length;
      await this.loadOlder();
      if (this.rows.length === before && !this.hist.more) { this.scrollToRow(0); return true; }
    }
    return false;
  }
  scrollToRow(i) {
    let off = 0; for (let k = 0; k < i; k++) off += this.rows[k].h;
    if (this.targetRec) this.targetRec.el = null;
    this.targetRec = this.rows[i]; this.targetRec.el = null;
    this.pinned = false; this.scrollTopCache = Math.max(0, off - this.viewH / 3); this.setScroll(this.scrollTopCache);
    schedule(this, true);
  }
  copyLink(row) {
    const r = (this.drawn || []).find(x => x.el === row); if (!r || r.seq == null) return;
    const link = location.href.split("#")[0] + "#" + viewHash() + "&at=" + encodeURIComponent(r.cat + ":" + r.seq);
    window.tailgate.lastPermalink = link;
    if (navigator.clipboard) navigator.clipboard.writeText(link).then(() => toast("link to the line copied"), () => toast(link));
    else toast(link);
  }
  download() {
    const text = this.texts().join("\n") + "\n";
    const a = el("a"); a.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    a.download = this.pattern.replace(/[^\w.-]+/g, "_") + ".log";
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
}
function toast(text) {
  const t = el("div", "toast", text); document.body.append(t);
  setTimeout(() => t.remove(), 2500);
}
function setActive(p) {
  if (activePane === p) return;
  if (activePane) activePane.root.classList.remove("active");
  activePane = p; if (p) p.root.classList.add("active");
}
