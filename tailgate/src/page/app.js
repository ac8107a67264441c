// ---- app.js: the token, the view in the URL, layout, the websocket, categories, keys ----

const $ = (s, root = document) => root.querySelector(s);
const base = location.pathname.endsWith("/") ? location.pathname : location.pathname.replace(/[^/]*$/, "");

// ---- the token: read once from ?token=, then kept in this tab's sessionStorage and sent
// only in headers (Authorization on fetches, a subprotocol on the websocket), never in a URL.
const TOKEN_KEY = "tailgate.token";
const store = { get() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } },
  set(t) { try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ } } };
let token = store.get();
{
  const q = new URLSearchParams(location.search);
  if (q.has("token")) {
    token = q.get("token") || ""; store.set(token); q.delete("token");
    const rest = q.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
}
const authHeaders = () => token ? { Authorization: "Bearer " + token } : {};
const b64url = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
function showAuth(message) {
  $("#auth").hidden = false; $("#auth-msg").textContent = message || "";
  setConn("down", "token required");
  $("#auth-input").focus();
}
$("#auth-btn").onclick = () => {
  token = $("#auth-input").value.trim(); store.set(token); $("#auth-input").value = "";
  $("#auth").hidden = true; retry = 0; clearTimeout(reconnectTimer); connect(); refreshCats();
};
$("#auth-input").onkeydown = (e) => { if (e.key === "Enter") $("#auth-btn").click(); };

// ---- view state, kept in the URL hash so a view can be shared ----
let state = { panes: [], layout: "cols", theme: null, time: false };
let permalink = null;
try {
  const h = new URLSearchParams(location.hash.slice(1));
  const v = h.get("v"); if (v) state = Object.assign(state, JSON.parse(v));
  const at = h.get("at"); const m = at && /^(.+):(\d+)$/.exec(at);
  if (m) permalink = { cat: m[1], seq: Number(m[2]) };
} catch (e) { /* a broken hash just means the default view */ }
if (!Array.isArray(state.panes)) state.panes = [];
function viewHash() {
  state.panes = panes.map(p => ({ c: p.pattern, f: p.filterText, p: p.paused, w: p.weight, cs: p.caseSensitive ? 1 : 0, wr: p.wrap ? 1 : 0, cx: p.context }));
  return "v=" + encodeURIComponent(JSON.stringify(state));
}
function saveState() { history.replaceState(null, "", location.pathname + location.search + "#" + viewHash()); updateTitle(); }
function updateTitle() {
  const names = panes.map(p => p.pattern + (p.filterText ? ` (${p.filterText})` : ""));
  document.title = names.length ? "tailgate — " + names.join(", ") : "tailgate";
}

// ---- theme, layout, time gutter ----
function applyTheme() {
  const t = state.theme || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark");
  document.documentElement.dataset.theme = t;
}
$("#theme-btn").onclick = () => { state.theme = document.documentElement.dataset.theme === "dark" ? "light" : "dark"; applyTheme(); saveState(); };
function applyLayout() {
  const c = $("#panes"), grid = panes.length >= 4;
  c.classList.toggle("grid", grid); c.classList.toggle("rows", !grid && state.layout === "rows");
  c.style.gridTemplateColumns = grid ? `repeat(${Math.ceil(Math.sqrt(panes.length))}, minmax(0, 1fr))` : "";
  $("#layout-btn").textContent = grid ? "▦ grid" : state.layout === "rows" ? "⇅ rows" : "⇆ columns";
}
$("#layout-btn").onclick = () => { state.layout = state.layout === "rows" ? "cols" : "rows"; applyLayout(); saveState(); };
function applyTime() {
  $("#panes").classList.toggle("showtime", !!state.time); $("#time-btn").classList.toggle("on", !!state.time);
  for (const p of panes) { p.heights(); schedule(p, true); }
}
$("#time-btn").onclick = () => { state.time = !state.time; applyTime(); saveState(); };
$("#goto").onkeydown = async (e) => {
  if (e.key === "Escape") { e.target.blur(); return; }
  if (e.key !== "Enter") return;
  const p = activePane || panes[0];
  const ok = p && await p.goTo(e.target.value);
  e.target.classList.toggle("bad", !ok);
};
$("#help-btn").onclick = () => { $("#help").hidden = !$("#help").hidden; };

function layoutPanes() {
  const c = $("#panes"); c.replaceChildren();
  panes.forEach((p, i) => { if (i > 0) c.append(splitter(panes[i - 1], p)); c.append(p.root); });
  applyLayout();
}
// Dragging a splitter moves weight between its two neighbours.
function splitter(a, b) {
  const s = el("div", "split");
  s.onpointerdown = (ev) => {
    s.setPointerCapture(ev.pointerId);
    const rows = state.layout === "rows";
    const start = rows ? ev.clientY : ev.clientX;
    const sa = rows ? a.root.offsetHeight : a.root.offsetWidth, sb = rows ? b.root.offsetHeight : b.root.offsetWidth;
    const total = a.weight + b.weight;
    s.onpointermove = (e) => {
      const d = (rows ? e.clientY : e.clientX) - start;
      const na = Math.max(60, Math.min(sa + sb - 60, sa + d));
      a.weight = total * na / (sa + sb); b.weight = total - a.weight;
      a.root.style.flexGrow = a.weight; b.root.style.flexGrow = b.weight;
    };
    s.onpointerup = () => { s.onpointermove = null; saveState(); };
  };
  return s;
}
function addPane(pattern, s = {}) {
  pattern = (pattern || "").trim();
  if (!pattern) return;
  const p = new Pane(Object.assign({}, s, { c: pattern }));
  panes.push(p); layoutPanes(); setActive(p); saveState();
  if (ready) p.subscribe(false); // else the hello handler subscribes it
  return p;
}
function removePane(p) {
  p.hl.stop();
  panes = panes.filter(x => x !== p); layoutPanes(); saveState();
  if (activePane === p) setActive(panes[0] || null);
  if (ready) send({ type: "unsubscribe", id: p.id });
}
$("#add-btn").onclick = () => { addPane($("#add-input").value); $("#add-input").value = ""; };
$("#add-input").onkeydown = (e) => { if (e.key === "Enter") $("#add-btn").click(); };

// ---- the websocket: reconnects and resumes each pane where it was ----
// `ready`: the socket is open and its hello was handled (every pane is subscribed on it).
let ws = null, ready = false, instance = null, retry = 0, lastMsg = 0, reconnectTimer = null;
function setConn(s, label) { const c = $("#conn"); c.dataset.state = s; $(".label", c).textContent = label; }
function send(m) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(m)); }
function connect() {
  setConn("connecting", retry ? `reconnecting (${retry})` : "connecting");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "ws";
  const protocols = token ? ["tailgate.v1", "bearer." + b64url(token)] : ["tailgate.v1"];
  const sock = ws = new WebSocket(url, protocols); ready = false;
  let hello = false;
  sock.onmessage = (ev) => {
    lastMsg = Date.now(); let m; try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.type === "hello") hello = true;
    onMessage(m);
  };
  sock.onclose = async () => {
    if (ws !== sock) return;
    ws = null; ready = false;
    // A refused upgrade looks like any failed connection; ask the API whether it was the token.
    if (!hello) {
      try {
        const r = await fetch(base + "api/categories", { cache: "no-store", headers: authHeaders() });
        if (r.status === 401) { showAuth(token ? "that token was refused" : ""); return; }
      } catch (e) { /* down: retry below */ }
    }
    setConn("down", "disconnected");
    const wait = Math.min(5000, 300 * 2 ** Math.min(retry++, 5));
    reconnectTimer = setTimeout(connect, wait);
  };
}
function onMessage(m) {
  const p = m.id ? panes.find(x => x.id === m.id) : null;
  switch (m.type) {
    case "hello": {
      retry = 0; setConn("live", "live"); $("#auth").hidden = true;
      // Sequence numbers restart with the server: resume only on the same instance.
      const same = instance === m.instance; instance = m.instance;
      ready = true;
      for (const q of panes) {
        // Kafka categories resume by offsets, which outlive the restart; others start over.
        const bySeq = Object.keys(q.lastSeq).filter(c => !(c in q.offsets));
        if (!same && bySeq.length) q.notice("tailgate restarted");
        if (!same) q.lastSeq = {};
        q.subscribe(same);
      }
      renderCats((m.categories || []).map(name => ({ name })));
      break;
    }
    case "lines": if (p) p.onLines(m); break;
    case "subscribed": if (p) p.onSubscribed(m); break;
    case "progress": if (p && !p.awaiting) p.onProgress(m); break;
    case "dropped":
      if (!p || p.awaiting) return;
      p.lastSeq[m.category] = Math.max(p.lastSeq[m.category] || 0, m.from_seq + m.count - 1);
      p.notice(`${fmt(m.count)} lines of ${m.category} dropped: this page fell behind`);
      break;
    case "gap":
      // Never sent: gone from the ring, or lost before tailgate could read them.
      if (!p || p.awaiting) return;
      p.lastSeq[m.category] = Math.max(p.lastSeq[m.category] || 0, m.to_seq);
      p.notice(`lines ${m.from_seq}–${m.to_seq} of ${m.category} were not sent: no longer held, or lost before tailgate could read them`);
      break;
    case "error":
      if (!p) { console.warn("tailgate:", m.reason); break; }
      p.awaiting = false;
      if (/filter|exclude/.test(m.reason)) { p.filterEl.classList.add("bad"); p.filterEl.title = m.reason; }
      p.notice("error: " + m.reason);
      break;
    case "categories": refreshCats(); break;
  }
}
setInterval(() => {
  if (ws && ws.readyState === 1) {
    send({ type: "ping" });
    if (Date.now() - lastMsg > 45000) ws.close(); // silent server: reconnect
  }
}, 15000);

// ---- category list: search, sort, rate, age of the last line, stale ones greyed ----
const STALE_MS = 5 * 60 * 1000;
const catInfo = new Map();
const age = (ms) => { const s = Math.max(0, Math.round(ms / 1000)); return s < 60 ? s + "s" : s < 3600 ? Math.round(s / 60) + "m" : s < 86400 ? Math.round(s / 3600) + "h" : Math.round(s / 86400) + "d"; };
function renderCats(list) {
  for (const c of list) if (!catInfo.has(c.name) || c.lines_per_sec != null) catInfo.set(c.name, c);
  const q = $("#cat-search").value.trim().toLowerCase(), sort = $("#cat-sort").value, now = Date.now();
  const items = [...catInfo.values()].filter(c => !q || c.name.toLowerCase().includes(q));
  const last = (c) => c.last_update_ms || 0;
  items.sort(sort === "rate" ? (a, b) => (b.lines_per_sec || 0) - (a.lines_per_sec || 0) || a.name.localeCompare(b.name)
    : sort === "age" ? (a, b) => last(b) - last(a) || a.name.localeCompare(b.name)
      : (a, b) => a.name.localeCompare(b.name));
  const ul = $("#cats"); ul.replaceChildren();
  for (const c of items) {
    const li = el("li"); li.dataset.category = c.name; li.title = "open a pane on " + c.name;
    const stale = c.lines_per_sec != null && (!c.last_update_ms || now - c.last_update_ms > STALE_MS);
    li.classList.toggle("stale", stale);
    li.append(el("span", "name", c.name), el("span", "rate", c.lines_per_sec != null ? c.lines_per_sec + "/s" : ""),
      el("span", "age", c.last_update_ms ? age(now - c.last_update_ms) : c.lines_per_sec != null ? "—" : ""));
    li.onclick = () => addPane(c.name);
    ul.append(li);
  }
}
$("#cat-search").oninput = () => renderCats([]);
$("#cat-search").onkeydown = (e) => { if (e.key === "Enter") { const li = $("#cats li"); if (li) li.click(); } if (e.key === "Escape") e.target.blur(); };
$("#cat-sort").onchange = () => renderCats([]);
async function refreshCats() {
  try {
    const r = await fetch(base + "api/categories", { cache: "no-store", headers: authHeaders() });
    if (r.ok) renderCats((await r.json()).categories);
  } catch (e) { /* the indicator shows the connection state */ }
}
setInterval(() => { if (ready) refreshCats(); }, 2000);

// ---- keyboard ----
document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const p = activePane || panes[0];
  const keys = {
    " ": () => p && p.setPaused(!p.paused),
    "/": () => p && p.filterEl.focus(),
    "g": () => { if (p) { p.pinned = false; p.linesEl.scrollTop = 0; } },
    "G": () => p && p.jumpToLive(),
    "w": () => { if (p) { p.wrap = !p.wrap; p.updateButtons(); saveState(); } },
    "t": () => $("#cat-search").focus(),
    "[": () => panes.length && setActive(panes[(panes.indexOf(p) - 1 + panes.length) % panes.length]),
    "]": () => panes.length && setActive(panes[(panes.indexOf(p) + 1) % panes.length]),
    "?": () => $("#help-btn").click(),
  };
  const f = keys[e.key];
  if (f) { e.preventDefault(); f(); }
});

// ---- start ----
applyTheme(); applyTime();
for (const s of state.panes) if (s && typeof s.c === "string") addPane(s.c, s);
if (permalink) { const p = panes.find(x => x.pattern === permalink.cat) || panes.find(x => isGlob(x.pattern)); if (p) p.target = permalink; }
setActive(panes[0] || null);
refreshCats();
connect();
// For tests and the console: the panes, and dropping the connection (it reconnects).
window.tailgate = { panes: () => panes, disconnect: () => ws && ws.close(), lastPermalink: null };
