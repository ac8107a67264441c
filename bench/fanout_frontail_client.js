// socket.io clients for frontail, the peer in bench/fanout.sh: the same measurement as
// `fanout_bench clients` (tailgate/examples/fanout_bench.rs) — lines received per second after
// a warm-up, and latency from the time written at the start of each line to its arrival.
//
//   node fanout_frontail_client.js URL NAMESPACE N SECONDS WARMUP
//
// frontail 4.9.2 runs socket.io 2.3, so this needs socket.io-client 2.x (NODE_PATH is set by
// bench/fanout.sh to its node_modules under bench/work/). Prints one JSON object.
"use strict";
const io = require("socket.io-client");
const { performance } = require("perf_hooks");

const [url, ns, nStr, secStr, warmStr] = process.argv.slice(2);
const n = Number(nStr), seconds = Number(secStr), warmup = Number(warmStr);
// 0.25 ms buckets up to 1 s, 10 ms buckets up to 60 s, one overflow bucket (as fanout_bench).
const FINE_US = 250, FINE = 4000, COARSE_US = 10000, BUCKETS = FINE + 5900;
const bucket = (us) => us < FINE * FINE_US ? Math.floor(us / FINE_US) : Math.min(BUCKETS, FINE + Math.floor((us - FINE * FINE_US) / COARSE_US));
const bucketMs = (i) => i < FINE ? (i + 0.5) * FINE_US / 1000 : (FINE * FINE_US + (i - FINE + 0.5) * COARSE_US) / 1000;
const hist = new Float64Array(BUCKETS + 1);
let lines = 0, maxUs = 0, connected = 0;
const perClient = new Array(n).fill(0);
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
const t0 = Date.now();
const warmUntil = t0 + warmup * 1000, end = warmUntil + seconds * 1000;
const sockets = [];
for (let i = 0; i < n; i++) {
  const s = io(`${url}/${ns}`, { transports: ["websocket"], forceNew: true, reconnection: true });
  s.on("connect", () => { connected++; });
  s.on("line", (line) => {
    const now = Date.now();
    if (now < warmUntil || now >= end) return;
    // The line starts with its write time in ns since the epoch: its first 16 digits are µs.
    const ts = Number(String(line).slice(0, 16));
    const lat = Math.max(0, nowUs() - ts);
    if (lat > maxUs) maxUs = lat;
    hist[bucket(lat)]++;
    lines++; perClient[i]++;
  });
  sockets.push(s);
}
function pct(p) {
  const want = Math.max(1, Math.ceil(lines * p));
  let seen = 0;
  for (let i = 0; i <= BUCKETS; i++) { seen += hist[i]; if (seen >= want) return bucketMs(i); }
  return null;
}
setTimeout(() => {
  perClient.sort((a, b) => a - b);
  console.log(JSON.stringify({
    clients: n, connected, seconds, lines, lines_per_sec: lines / seconds, dropped: null,
    min_client_lines: perClient[0], max_client_lines: perClient[n - 1],
    p50_ms: pct(0.5), p99_ms: pct(0.99), max_ms: maxUs / 1000,
  }));
  for (const s of sockets) s.close();
  process.exit(0);
}, end - t0 + 200);
