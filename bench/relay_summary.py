#!/usr/bin/env python3
"""Summary of bench/relay.sh's results.tsv (one row per phase, round and leaf variant).

    relay_summary.py RESULTS_TSV IN_BYTES IN_LINES CLK_TCK RSS_LIMIT_MB

Prints the per-round rows, a table per leaf variant (median wall time over rounds; CPU and
RSS from the median round), live relaying against replay side by side (throughput and the
leaf's CPU seconds per GB), and, when the run had a base leaf (RELAY_BASE_SCRIBED), base
against now for the leaf's phases.
"""

import csv
import statistics
import sys

path, in_bytes, in_lines, tck, rss_limit = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
GB = in_bytes / 1e9
rows = list(csv.DictReader(open(path), delimiter="\t"))
for r in rows:
    r["x"] = dict(kv.split("=", 1) for kv in r["extra"].split(",")) if r["extra"] != "-" else {}
variants = [v for v in ("base", "now") if any(r["variant"] == v for r in rows)]
print(f"input: {in_bytes} bytes ({in_bytes / 1e6:.0f} MB), {in_lines} lines\n")

NAMES = {"direct": "ship -> central", "relayed": "ship -> leaf -> central",
         "spool": "ship -> leaf spool", "replay": "leaf spool -> central"}
PHASES = ("direct", "relayed", "spool", "replay")


def ticks(v):
    return None if v == "-" else int(v) / tck


def ours(r):
    """CPU seconds of ship, the leaf, the central and the harness in a row."""
    t = float(r["harness_s"])
    if r["ship_user_s"] != "-":
        t += float(r["ship_user_s"]) + float(r["ship_sys_s"])
    for p in ("leaf", "central"):
        if r[f"{p}_user_ticks"] != "-":
            t += (int(r[f"{p}_user_ticks"]) + int(r[f"{p}_sys_ticks"])) / tck
    return t


def other(r):
    return int(r["all_busy_ticks"]) / tck - ours(r)


def leaf_cpu(r):
    return None if r["leaf_user_ticks"] == "-" else ticks(r["leaf_user_ticks"]) + ticks(r["leaf_sys_ticks"])


print("per round:")
print(f"{'leaf':4} {'phase':8} {'round':>5} {'wall s':>8} {'MB/s':>8} {'leaf CPU s/GB':>13} {'busy%':>5} "
      f"{'other CPU s':>11} ok  note")
for r in rows:
    w = int(r["wall_ns"]) / 1e9
    lc = leaf_cpu(r)
    print(f"{r['variant']:4} {r['phase']:8} {r['round']:>5} {w:8.3f} {in_bytes / w / 1e6:8.1f} "
          f"{'-' if lc is None else format(lc / GB, '.2f'):>13} {r['busy_pct']:>5} {other(r):11.2f} "
          f"{'yes' if r['ok'] == '1' else 'NO':3} {r['note']}")
print("(busy%: other load in the second before the measurement; other CPU s: CPU time used during it\n"
      " by everything but ship, the leaf, the central and the harness, kernel writeback included)")

summary = {}
for v in variants:
    for phase in PHASES:
        rs = [r for r in rows if r["phase"] == phase and r["variant"] == v]
        if not rs:
            continue
        walls = sorted(int(r["wall_ns"]) / 1e9 for r in rs)
        med = statistics.median(walls)
        mr = min(rs, key=lambda r: abs(int(r["wall_ns"]) / 1e9 - med))
        pair = lambda p: None if mr[f"{p}_user_ticks"] == "-" else (
            ticks(mr[f"{p}_user_ticks"]), ticks(mr[f"{p}_sys_ticks"]))
        ship = None if mr["ship_user_s"] == "-" else (float(mr["ship_user_s"]), float(mr["ship_sys_s"]))
        leaf_gb = [leaf_cpu(r) / GB for r in rs if leaf_cpu(r) is not None]
        summary[v, phase] = dict(
            med=med, best=walls[0], worst=walls[-1], ship=ship, leaf=pair("leaf"),
            central=pair("central"), mr=mr, rs=rs, ok=all(r["ok"] == "1" for r in rs), n=len(rs),
            leaf_gb=statistics.median(leaf_gb) if leaf_gb else None,
            leaf_gb_range=(min(leaf_gb), max(leaf_gb)) if leaf_gb else None)


def cpu(t):
    return "-" if t is None else f"{t[0] + t[1]:.2f} ({t[0]:.2f}+{t[1]:.2f})"


def mib(v):
    return "-" if v in ("-", "", None) else f"{int(v) / 1024:.1f}"


def mbps(s):
    return in_bytes / s["med"] / 1e6


for v in variants:
    print(f"\nsummary, leaf {v} (median wall time over rounds; CPU and RSS from the median round; "
          "CPU s = user+sys; leaf CPU s/GB: median over rounds):")
    hdr = (f"| {'phase':24} | {'wall s (min-max)':22} | {'MB/s':>7} | {'lines/s':>9} | {'ship CPU s':>17} | "
           f"{'leaf CPU s':>17} | {'leaf CPU s/GB':>13} | {'central CPU s':>17} | {'leaf peak RSS MiB':>17} | "
           f"{'central peak RSS MiB':>20} | correct |")
    print(hdr)
    print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:-1]) + "|")
    for (sv, phase), s in summary.items():
        if sv != v and not (phase == "direct" and v == "base"):
            continue
        mr = s["mr"]
        wall = f"{s['med']:.3f} ({s['best']:.3f}-{s['worst']:.3f})"
        gb = "-" if s["leaf_gb"] is None else f"{s['leaf_gb']:.2f}"
        print(f"| {NAMES[phase]:24} | {wall:22} | {mbps(s):7.1f} | {in_lines / s['med']:9.0f} | "
              f"{cpu(s['ship']):>17} | {cpu(s['leaf']):>17} | {gb:>13} | {cpu(s['central']):>17} | "
              f"{mib(mr['leaf_hwm_kb']):>17} | {mib(mr['central_hwm_kb']):>20} | {'yes' if s['ok'] else 'NO':7} |")
print("(spool: the central is down, every batch is fsynced into the leaf's spool before its OK;\n"
      " replay: from the central's start until the leaf is drained and the central has every byte;\n"
      " leaf peak RSS in the replay row is the VmHWM since just before the replay)")


def ratio(v, a, b, what):
    sa, sb = summary.get((v, a)), summary.get(("now", b) if b == "direct" else (v, b))
    if sa and sb:
        r = sb["med"] / sa["med"]
        print(f"  {what:44} {r:5.2f}x  ({r * 100:.0f}% of the throughput; wall {sa['med'] / sb['med']:.2f}x)")


for v in variants:
    print(f"\nratios, leaf {v} (throughput of the first / the second):")
    ratio(v, "relayed", "direct", "relayed / direct (relay overhead)")
    ratio(v, "spool", "direct", "spool ingest / direct")
    ratio(v, "replay", "direct", "replay / direct")
    ratio(v, "replay", "relayed", "replay / relayed")

for v in variants:
    live, rep = summary.get((v, "relayed")), summary.get((v, "replay"))
    if not (live and rep):
        continue
    print(f"\nlive relaying vs replay, leaf {v} (MB/s from the median wall; leaf CPU s/GB median, min-max):")
    for name, s in (("live (relayed)", live), ("replay", rep)):
        lo, hi = s["leaf_gb_range"]
        print(f"  {name:15} {mbps(s):7.1f} MB/s   leaf {s['leaf_gb']:.2f} CPU-s/GB ({lo:.2f}-{hi:.2f})")
    after = [in_bytes / (int(r["wall_ns"]) / 1e9 - int(r["x"]["first_byte_ns"]) / 1e9) / 1e6
             for r in rep["rs"] if int(r["wall_ns"]) > int(r["x"]["first_byte_ns"]) > 0]
    if after:
        print(f"  replay after its first byte reached the central (no retry wait): "
              f"{statistics.median(after):.1f} MB/s (median; {min(after):.1f}-{max(after):.1f})")
    print(f"  replay / live: {mbps(rep) / mbps(live):.2f}x the throughput"
          + (f" ({statistics.median(after) / mbps(live):.2f}x after the first byte)" if after else "")
          + f", {rep['leaf_gb'] / live['leaf_gb']:.2f}x the leaf CPU per GB")

if len(variants) == 2:
    print("\nbase leaf vs now (same run, rounds interleaved; ship and central the same):")
    print(f"  {'phase':24} {'base MB/s':>9} {'now MB/s':>9} {'now/base':>8} "
          f"{'base leaf s/GB':>14} {'now leaf s/GB':>13} {'base peak RSS':>13} {'now peak RSS':>12}")
    for phase in ("relayed", "spool", "replay"):
        b, n = summary.get(("base", phase)), summary.get(("now", phase))
        if not (b and n):
            continue
        print(f"  {NAMES[phase]:24} {mbps(b):9.1f} {mbps(n):9.1f} {mbps(n) / mbps(b):7.2f}x "
              f"{b['leaf_gb']:14.2f} {n['leaf_gb']:13.2f} {mib(b['mr']['leaf_hwm_kb']):>13} "
              f"{mib(n['mr']['leaf_hwm_kb']):>12}")

for v in variants:
    if (v, "relayed") in summary:
        print(f"\nrelayed, leaf {v}, ship's exit vs the central holding every byte (per round):")
        for r in summary[v, "relayed"]["rs"]:
            print(f"  round {r['round']}: ship exited after {int(r['x'].get('ship_ns', 0)) / 1e9:.3f} s, "
                  f"end-to-end {int(r['wall_ns']) / 1e9:.3f} s; {r['x'].get('spooled', '?')} messages spooled")

    if (v, "spool") in summary:
        print(f"\nspool size after ingest, leaf {v} (per round):")
        for r in summary[v, "spool"]["rs"]:
            sb, sd = int(r["x"]["spool_bytes"]), int(r["x"]["spool_disk"])
            print(f"  round {r['round']}: spool_bytes {sb} ({sb / in_bytes:.3f}x input), on disk {sd} bytes")

    if (v, "replay") in summary:
        print(f"\nleaf {v} memory during replay (limit {rss_limit} MiB), per round:")
        print(f"  {'round':>5} {'spool MB':>9} {'central up s':>12} {'first byte s':>12} {'RSS before MiB':>14} "
              f"{'sampled peak MiB':>16} {'VmHWM MiB':>9} {'RSS end MiB':>11} {'samples':>7}")
        for r in summary[v, "replay"]["rs"]:
            x = r["x"]
            print(f"  {r['round']:>5} {int(x['spool_bytes']) / 1e6:9.1f} {int(x['ready_ns']) / 1e9:12.3f} "
                  f"{int(x['first_byte_ns']) / 1e9:12.3f} {mib(x['rss_before_kb']):>14} {mib(x['rss_peak_kb']):>16} "
                  f"{mib(r['leaf_hwm_kb']):>9} {mib(x['rss_end_kb']):>11} {x['samples']:>7}")
        print("  (central up: when its ready file was written, from the file's mtime, so only to a few ms;\n"
              "   first byte: includes the wait for the leaf's next retry, retry_interval plus up to 50% jitter)")
        for r in summary[v, "replay"]["rs"]:
            x = r["x"]
            print(f"  round {r['round']}: spool directory after the replay: {int(x['spool_disk_after'])} bytes on disk"
                  " (the drained head segment stays until the next one is started)")
        for r in summary[v, "replay"]["rs"]:
            x = r["x"]
            first = int(x["first_byte_ns"]) / 1e9
            w = int(r["wall_ns"]) / 1e9
            if w > first > 0:
                print(f"  round {r['round']}: after the first byte reached the central: "
                      f"{in_bytes / (w - first) / 1e6:.1f} MB/s")

print("\nCPU seconds per phase (median round), all processes:")
for (v, phase), s in summary.items():
    parts = [(n, t) for n, t in (("ship", s["ship"]), ("leaf", s["leaf"]), ("central", s["central"])) if t]
    total = sum(t[0] + t[1] for _, t in parts)
    label = NAMES[phase] if phase == "direct" else f"{NAMES[phase]} ({v})"
    print(f"  {label:32} {total:5.2f} = " + " + ".join(f"{n} {t[0] + t[1]:.2f}" for n, t in parts))
