// ---- text.js: what a line's bytes become on screen (no DOM state here) ----
// Every regex in this file is linear on any input (no nested quantifiers, bounded lengths):
// they run on every line, on the main thread.

const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; };

function decodeLine(l) {
  if (typeof l === "string") return { text: l, bin: false };
  // Not UTF-8: the server sent the exact bytes as base64; show them lossily (U+FFFD).
  const raw = atob(l && l.b64 || ""); const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return { text: new TextDecoder("utf-8").decode(bytes), bin: true };
}

// A line record's text, styles, level and time, worked out when first needed (most lines of
// a fast stream are never drawn: only the rows in view are).
function parsed(r) {
  if (r.segs || r.notice) return r;
  const d = decodeLine(r.raw); r.raw = null;
  r.segs = ansi(d.text); r.plain = r.segs.map(s => s.t).join(""); r.bin = d.bin;
  r.level = detectLevel(r.plain); r.own = lineTime(r.plain);
  return r;
}
// Its length in characters, without parsing it when it has not been (for row heights).
const rawLength = (r) => r.notice ? r.text.length : r.plain != null ? r.plain.length : typeof r.raw === "string" ? r.raw.length : ((r.raw && r.raw.b64 || "").length * 3) >> 2;

// ---- terminal escapes → styled segments ----
// CSI (ESC [ ... final): SGR ("m") is rendered, the rest dropped. OSC (ESC ] ... BEL or ST,
// e.g. window titles and OSC 8 hyperlinks) and DCS/SOS/PM/APC strings (ESC P/X/^/_ ... ST)
// are dropped with their payload, unterminated ones to the end of the line. Other ESC
// sequences are dropped, then every remaining C0/C1 control but tab.
const ESC = /\x1b\[([0-9;:?]*)[ -\/]*([@-~])|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\|$)|\x9d[^\x07\x1b\x9c]*(?:\x07|\x9c|$)|\x1b[ -\/]*[0-~]?/g;
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
function ansi(text) {
  const segs = []; let st = {}; let last = 0, m;
  const push = (t) => { t = t.replace(CONTROLS, ""); if (t) segs.push({ t, s: st }); };
  ESC.lastIndex = 0;
  while ((m = ESC.exec(text))) {
    if (m[0].length === 0) { ESC.lastIndex++; continue; }
    if (m.index > last) push(text.slice(last, m.index));
    last = ESC.lastIndex;
    if (m[2] !== "m") continue;
    const codes = (m[1] || "0").split(/[;:]/).map(Number);
    st = Object.assign({}, st);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) st = {};
      else if (c === 1) st.b = 1; else if (c === 2) st.d = 1; else if (c === 3) st.i = 1; else if (c === 4) st.u = 1;
      else if (c === 22) { delete st.b; delete st.d; } else if (c === 23) delete st.i; else if (c === 24) delete st.u;
      else if (c >= 30 && c <= 37) st.f = c - 30; else if (c >= 90 && c <= 97) st.f = c - 82;
      else if (c >= 40 && c <= 47) st.g = c - 40; else if (c >= 100 && c <= 107) st.g = c - 92;
      else if (c === 39) delete st.f; else if (c === 49) delete st.g;
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) { st[c === 38 ? "fx" : "gx"] = xterm(codes[i + 2] | 0); i += 2; }
      else if ((c === 38 || c === 48) && codes[i + 1] === 2) { st[c === 38 ? "fx" : "gx"] = `rgb(${codes[i + 2] | 0},${codes[i + 3] | 0},${codes[i + 4] | 0})`; i += 4; }
    }
  }
  if (last < text.length) push(text.slice(last));
  return segs;
}
function xterm(n) {
  n = Math.max(0, Math.min(255, n));
  if (n < 16) return `var(--c${n})`;
  if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
  n -= 16; const k = [0, 95, 135, 175, 215, 255];
  return `rgb(${k[Math.floor(n / 36)]},${k[Math.floor(n / 6) % 6]},${k[n % 6]})`;
}

// ---- levels and times ----
const LEVEL_WORD = /\b(FATAL|CRIT(?:ICAL)?|EMERG|ALERT|ERROR|ERR|WARN(?:ING)?|INFO|NOTICE|DEBUG|TRACE)\b/i;
const LEVEL_KV = /\blevel[=:]\s?"?([A-Za-z]{3,8})/i;
const LEVEL_JSON = /"(?:level|severity|lvl)"\s?:\s?"([A-Za-z]{3,8})"/i;
const SYSLOG = /^<(\d{1,3})>/;
const LEVELS = { fatal: "error", crit: "error", critical: "error", emerg: "error", alert: "error", error: "error", err: "error",
  warn: "warn", warning: "warn", info: "info", notice: "info", debug: "debug", trace: "debug" };
// The line's level: JSON "level", level=, a syslog <PRI> (severity = PRI mod 8), or a
// level word in its first 160 characters.
function detectLevel(plain) {
  const head = plain.length > 400 ? plain.slice(0, 400) : plain;
  let m = LEVEL_JSON.exec(head) || LEVEL_KV.exec(head);
  if (m) return LEVELS[m[1].toLowerCase()] || null;
  if ((m = SYSLOG.exec(head))) { const s = Number(m[1]) % 8; return s <= 3 ? "error" : s === 4 ? "warn" : s <= 6 ? "info" : "debug"; }
  m = LEVEL_WORD.exec(head.length > 160 ? head.slice(0, 160) : head);
  return m ? LEVELS[m[1].toLowerCase()] || null : null;
}
const ISO_TIME = /\b\d{4}-\d\d-\d\d[T ](\d\d:\d\d:\d\d)/;
const CLF_TIME = /\[\d\d\/\w{3}\/\d{4}:(\d\d:\d\d:\d\d) /;
const SYSLOG_TIME = /^(?:<\d{1,3}>)?\w{3} [ \d]\d (\d\d:\d\d:\d\d) /;
// The line's own time of day (HH:MM:SS) when it has one in a common format, else null.
function lineTime(plain) {
  const head = plain.length > 120 ? plain.slice(0, 120) : plain;
  const m = ISO_TIME.exec(head) || CLF_TIME.exec(head) || SYSLOG_TIME.exec(head);
  return m ? m[1] : null;
}
const hms = (ms) => new Date(ms).toTimeString().slice(0, 8);

// ---- filters ----
// A pane's filter text is a list of terms: words or "quoted phrases" (substrings), /regex/
// with flags; a leading ! or - excludes, a leading ~ only highlights. Include terms select
// lines (any of them), exclude terms drop them. They become one `filter` and one `exclude`
// regex for the server, whose engine is linear-time; the page only highlights.
function parseTerms(text) {
  const terms = []; const re = /\s*([!~-]?)(?:"((?:[^"\\]|\\.)*)"|\/((?:[^/\\]|\\.)+)\/([a-z]*)|(\S+))/g;
  let m;
  while ((m = re.exec(text)) && terms.length < 32) {
    if (m[0].length === 0) break;
    const mode = m[1] === "~" ? "hl" : m[1] ? "exclude" : "include";
    if (m[3] != null) terms.push({ mode, regex: m[3], flags: m[4] });
    else {
      let s = m[2] != null ? m[2].replace(/\\(.)/g, "$1") : m[5];
      if (s) terms.push({ mode, text: s });
    }
  }
  return terms;
}
const rustEscape = (s) => s.replace(/[\\.+*?()|\[\]{}^$#&\-~ ]/g, (c) => c === " " ? " " : "\\" + c);
function termRegex(t, caseSensitive) {
  if (t.regex != null) return (t.flags.includes("i") ? "(?i)" : "") + t.regex;
  return (caseSensitive ? "" : "(?i)") + rustEscape(t.text);
}
// {filter, exclude} for the server (undefined when none).
function serverFilters(terms, caseSensitive) {
  const join = (mode) => {
    const rs = terms.filter(t => t.mode === mode).map(t => "(?:" + termRegex(t, caseSensitive) + ")");
    return rs.length ? rs.join("|") : undefined;
  };
  return { filter: join("include"), exclude: join("exclude") };
}
