// ---- pane.js: one pane: its subscription, rows (in chunks), pause, filter, highlights ----

const BACKLOG = 1000;            // lines asked for when a pane opens
const FILTERED_BACKLOG = 100000; // a filtered pane searches the whole ring (the server caps it)
const isGlob = (p) => /[*?[{\\]/.test(p);
const fmt = (n) => n.toLocaleString("en-US");

let panes = []; let nextId = 1; let activePane = null;
class Pane {
  constructor(s) {
    this.id = "p" + (nextId++);
    this.pattern = s.c; this.filterText = s.f || ""; this.paused = !!s.p; this.weight = s.w || 1;
    this.caseSensitive = !!s.cs; this.wrap = s.wr !== 0;
    this.lastSeq = {};       // category → last seq accounted for (resume point)
    this.incoming = [];      // records waiting for the next frame
    this.pending = [];       // records held while paused
    this.notKept = 0;        // lines not kept while paused (past MAX_PAUSED)
    this.rows = []; this.chunks = [];
    this.newCount = 0; this.pinned = true;
    this.matches = 0; this.total = 0;
    this.fromSeq = {};       // category → first seq this pane's subscription accounted for
    this.awaiting = false;   // a subscribe is in flight: lines of the one it replaces are ignored
    this.terms = []; this.sent = {};
    this.target = null;      // {cat, seq} of a permalink to show
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
    bar.append(this.nameEl, this.countEl, f, this.caseEl, this.wrapEl, this.pauseEl, clear, dl, close);
    const body = el("div", "body");
    const l = this.linesEl = el("div", "lines");
    l.addEventListener("scroll", () => {
      this.pinned = l.scrollTop + l.clientHeight >= l.scrollHeight - 24;
      if (this.pinned && !this.paused && this.newCount) { this.newCount = 0; this.updateNewbar(); }
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
    this.linesEl.classList.toggle("nowrap", !this.wrap);
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
    if (changed) { this.clear(); this.lastSeq = {}; this.fromSeq = {}; this.matches = 0; if (ready) this.subscribe(false); }
    else this.rehighlight();
  }
  rehighlight() {
    for (const r of this.rows) if (r.el && !r.notice) fillRow(r.el, r, this.ranges(r));
    for (let i = 0; i < this.rows.length; i += FRAME_ROWS) this.regexHighlight(this.rows.slice(i, i + FRAME_ROWS));
  }
  ranges(r) { return this.hlTerms.length ? substringRanges(r.plain, this.hlTerms, this.caseSensitive) : null; }
  regexHighlight(recs) {
    this.hl.run(recs.filter(r => !r.notice), (r, ranges) => {
      if (!r.el || !ranges.length) return;
      fillRow(r.el, r, (this.ranges(r) || []).concat(ranges));
    });
  }
  subscribe(resume) {
    const m = { type: "subscribe", id: this.id, category: this.pattern, backlog: this.filtered ? FILTERED_BACKLOG : BACKLOG };
    if (this.sent.filter) m.filter = this.sent.filter;
    if (this.sent.exclude) m.exclude = this.sent.exclude;
    if (resume && Object.keys(this.lastSeq).length) m.since_seq = isGlob(this.pattern) ? this.lastSeq : Object.values(this.lastSeq)[0];
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
    this.linesEl.scrollTop = 1e9;
  }
  clear() {
    this.linesEl.replaceChildren(); this.rows = []; this.chunks = []; this.incoming = []; this.pending = [];
    this.newCount = 0; this.notKept = 0; this.total = 0; this.updateNewbar(); this.updateCount();
  }
  noticeRec(text) { return { notice: true, text: "— " + text + " —", at: Date.now() }; }
  notice(text) { this.add([this.noticeRec(text)], true); }
  // A `lines` message → records (decoded and parsed once; DOM comes at the next frame).
  onLines(m) {
    if (this.awaiting) return;
    this.lastSeq[m.category] = m.last_seq;
    this.fromSeq[m.category] ??= m.seq;
    const showCat = isGlob(this.pattern), at = Date.now(), seqs = Array.isArray(m.seqs) ? m.seqs : null;
    const recs = m.lines.map((l, i) => {
      const d = decodeLine(l); const segs = ansi(d.text); const plain = segs.map(s => s.t).join("");
      const seq = seqs ? seqs[i] : (this.filtered ? (i === 0 ? m.seq : null) : m.seq + i);
      return { seq, cat: m.category, segs, plain, bin: d.bin, at, showCat, level: detectLevel(plain), own: lineTime(plain) };
    });
    this.matches += recs.length;
    this.add(recs, false);
  }
  onProgress(m) {
    this.lastSeq[m.category] = Math.max(this.lastSeq[m.category] || 0, m.last_seq);
    this.updateCount();
  }
  onSubscribed(m) {
    this.awaiting = false;
    // A resume point for every matched category, even one that stays quiet: without it a
    // reconnect would ask that category for its backlog again.
    for (const [c, s] of Object.entries(m.last_seq || {})) if (!(c in this.lastSeq)) this.lastSeq[c] = s;
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
    // Past a pane's worth, older records would be trimmed right after being drawn.
    if (this.incoming.length > MAX_ROWS) this.incoming.splice(0, this.incoming.length - MAX_ROWS);
    schedule(this);
  }
  // Once per animation frame: the queued records become rows, appended chunk by chunk; whole
  // chunks are trimmed from the top; one scroll write when pinned. Nothing here reads layout.
  flush() {
    let batch = this.incoming;
    if (!batch.length) return;
    if (batch.length > FRAME_ROWS) { this.incoming = batch.slice(FRAME_ROWS); batch = batch.slice(0, FRAME_ROWS); schedule(this); }
    else this.incoming = [];
    let chunk = this.chunks[this.chunks.length - 1], frag = null;
    for (const r of batch) {
      if (!chunk || chunk.n >= CHUNK) {
        if (frag) chunk.el.append(frag);
        chunk = { el: el("div", "chunk"), n: 0 }; this.chunks.push(chunk); this.linesEl.append(chunk.el);
        frag = null;
      }
      frag ??= document.createDocumentFragment();
      const row = rowElement(r); r.el = row;
      if (!r.notice) fillRow(row, r, this.ranges(r));
      if (this.target && r.cat === this.target.cat && r.seq === this.target.seq) { row.classList.add("target"); this.targetEl = row; }
      frag.append(row); chunk.n++; this.rows.push(r);
    }
    if (frag) chunk.el.append(frag);
    let drop = 0;
    while (this.rows.length - drop - this.chunks[0].n >= MAX_ROWS) { const c = this.chunks.shift(); drop += c.n; c.el.remove(); }
    if (drop) this.rows.splice(0, drop);
    this.regexHighlight(batch);
    if (this.targetEl) { this.targetEl.scrollIntoView({ block: "center" }); this.targetEl = null; this.target = null; this.pinned = false; }
    else if (this.pinned) this.linesEl.scrollTop = 1e9;
  }
  copyLink(row) {
    const r = this.rows.find(x => x.el === row); if (!r || r.seq == null) return;
    const link = location.href.split("#")[0] + "#" + viewHash() + "&at=" + encodeURIComponent(r.cat + ":" + r.seq);
    window.tailgate.lastPermalink = link;
    if (navigator.clipboard) navigator.clipboard.writeText(link).then(() => toast("link to the line copied"), () => toast(link));
    else toast(link);
  }
  download() {
    const text = this.rows.filter(r => !r.notice).map(r => r.plain).join("\n") + "\n";
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
