#!/usr/bin/env python3
"""Summary table of bench/follow.sh: per round, then medians side by side with ratios.

Usage: follow_summary.py RESULTS.tsv INPUT_BYTES INPUT_LINES CLK_TCK
"""
import csv
import statistics
import sys

path, in_bytes, in_lines, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(path), delimiter="\t"))
print(f"input: {in_bytes} bytes ({in_bytes / 1e6:.0f} MB), {in_lines} lines\n")

print("per round:")
print(f"{'mode':6} {'tool':8} {'round':>5} {'wall s':>8} {'MB/s':>8} {'append s':>8} {'busy%':>5} ok  note")
for r in rows:
    w = int(r["wall_ns"]) / 1e9
    append = int(r["append_ns"]) / 1e9
    print(f"{r['mode']:6} {r['tool']:8} {r['round']:>5} {w:8.3f} {in_bytes / w / 1e6:8.1f} "
          f"{append if append else float('nan'):8.3f} {r['busy_pct']:>5} "
          f"{'yes' if r['ok'] == '1' else 'NO':3} {r['note']}")

summary = {}
for mode, tool in [(m, t) for m in ("grow", "static") for t in ("ship", "stdin", "rsyslog")]:
    rs = [r for r in rows if r["tool"] == tool and r["mode"] == mode]
    if not rs:
        continue
    walls = sorted(int(r["wall_ns"]) / 1e9 for r in rs)
    med = statistics.median(walls)
    # CPU/RSS of the round whose wall time is closest to the median.
    mr = min(rs, key=lambda r: abs(int(r["wall_ns"]) / 1e9 - med))
    summary[(mode, tool)] = dict(
        med=med, best=walls[0], worst=walls[-1],
        f_cpu=int(mr["follower_cpu_ticks"]) / tck, f_rss=int(mr["follower_hwm_kb"]) / 1024,
        r_cpu=int(mr["receiver_cpu_ticks"]) / tck, r_rss=int(mr["receiver_hwm_kb"]) / 1024,
        wall=int(mr["wall_ns"]) / 1e9,
        # grow: how long after the writer's last append the last byte reached the output.
        lag=statistics.median((int(r["wall_ns"]) - int(r["append_ns"])) / 1e9 for r in rs
                              if int(r["append_ns"]) > 0) if mode == "grow" else None,
        ok=all(r["ok"] == "1" for r in rs))

names = {"ship": "ship --follow -> scribed", "stdin": "ship < file -> scribed",
         "rsyslog": "imfile -> omfwd -> rsyslogd"}
print("\nsummary (median wall time over rounds; CPU/RSS from the median round; "
      "CPU% = share of one core over the wall time):")
hdr = (f"| {'mode':6} | {'pipeline':27} | {'wall s (min-max)':22} | {'MB/s':>7} | {'lines/s':>10} | "
       f"{'follower CPU s':>14} | {'follower CPU%':>13} | {'follower RSS MiB':>16} | "
       f"{'receiver CPU s':>14} | {'receiver RSS MiB':>16} | correct |")
print(hdr)
print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:-1]) + "|")
for (mode, tool), s in summary.items():
    wall = f"{s['med']:.3f} ({s['best']:.3f}-{s['worst']:.3f})"
    print(f"| {mode:6} | {names[tool]:27} | {wall:22} | {in_bytes / s['med'] / 1e6:7.1f} | "
          f"{in_lines / s['med']:10.0f} | {s['f_cpu']:14.2f} | "
          f"{100 * s['f_cpu'] / s['wall']:13.0f} | {s['f_rss']:16.1f} | "
          f"{s['r_cpu']:14.2f} | {s['r_rss']:16.1f} | {'yes' if s['ok'] else 'NO':7} |")

stdin = summary.get(("static", "stdin"))
for mode in ("grow", "static"):
    if (mode, "ship") in summary and stdin:
        a = summary[(mode, "ship")]
        print(f"\n{mode}: ship --follow / ship < file throughput: {stdin['med'] / a['med']:.2f}x "
              f"(best rounds: {stdin['best'] / a['best']:.2f}x; goal >= 0.80x)")
        if a["lag"] is not None:
            bound = (": the writer, not the follower, bounds this rate"
                     if a["lag"] < 0.05 * a["med"] else "")
            print(f"{mode}: the last byte reached scribed {a['lag'] * 1000:.0f} ms (median) after "
                  f"the writer's last append{bound}")
    if (mode, "ship") not in summary or (mode, "rsyslog") not in summary:
        continue
    a, b = summary[(mode, "ship")], summary[(mode, "rsyslog")]
    print(f"\n{mode}: ship/rsyslog throughput: {b['med'] / a['med']:.2f}x")
    if a["f_cpu"] > 0:
        print(f"{mode}: follower CPU, rsyslog imfile / ship: {b['f_cpu'] / a['f_cpu']:.2f}x")
    if a["f_cpu"] + a["r_cpu"] > 0:
        print(f"{mode}: whole pipeline CPU (follower + receiver), rsyslog / ship: "
              f"{(b['f_cpu'] + b['r_cpu']) / (a['f_cpu'] + a['r_cpu']):.2f}x")
