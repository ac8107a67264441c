#!/usr/bin/env python3
"""Watches a leaf scribed replay its spool into a central scribed (bench/relay.sh).

    relay_watch.py LEAF_PID LEAF_STATUS_ADDR CENTRAL_CATEGORY_DIR CATEGORY WANT_BYTES \
                   SYNC_DIR SAMPLE_MS TIMEOUT_S STALL_S SAMPLES_TSV

Start-up (Python's imports take a good 100 ms) stays out of the measurement: once ready, the
watcher creates SYNC_DIR/watch.ready and waits (up to TIMEOUT_S) for SYNC_DIR/watch.go, which
the caller creates right before it starts the central. Then it polls, every 10 ms, the size of the central's category files (CATEGORY_NNNNN in
CENTRAL_CATEGORY_DIR); every SAMPLE_MS, the leaf's VmRSS (/proc/PID/status) and its
/status JSON (state and spool_bytes of its buffer store), writing one row per sample to
SAMPLES_TSV (t_s counts from watch.go being seen). Done when the central holds WANT_BYTES and the leaf's buffer store is
"streaming" with spool_bytes 0. Gives up after TIMEOUT_S (counted from T0_NS), or when neither
the central's size nor the spool size changed for STALL_S.

Prints key=value lines (times in ns since the epoch, like `date +%s%N`):
  first_byte_ns   first time the central had any byte (0 if never)
  all_bytes_ns    first time the central had WANT_BYTES (0 if never)
  end_ns          first time both conditions held (0 if never)
  central_bytes, state, spool_bytes   last seen
  go_ns           when it saw watch.go
  rss_start_kb, rss_peak_kb, rss_end_kb, samples   the leaf's sampled VmRSS
  cpu_s           the watcher's own CPU time from go_ns on
  outcome         done | timeout | stalled | leaf-exited
"""

import json
import os
import re
import sys
import time
import urllib.request


def central_bytes(d, pattern):
    total = 0
    try:
        with os.scandir(d) as it:
            for e in it:
                if pattern.fullmatch(e.name) and e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass
    return total


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def buffer_status(addr):
    """(state, spool_bytes) of the first buffer store in the leaf's /status, or None."""
    try:
        with urllib.request.urlopen(f"http://{addr}/status", timeout=2) as r:
            body = json.load(r)
    except (OSError, ValueError):
        return None
    for s in body.get("stores", []):
        if s.get("kind") == "buffer":
            return s.get("state"), int(s.get("spool_bytes", -1))
    return None


def main():
    (pid, addr, cdir, cat, want, sync_dir, sample_ms, timeout_s, stall_s, samples_path) = sys.argv[1:11]
    pid, want = int(pid), int(want)
    sample_ns = int(sample_ms) * 1_000_000
    timeout_ns = int(float(timeout_s) * 1e9)
    go = os.path.join(sync_dir, "watch.go")
    open(os.path.join(sync_dir, "watch.ready"), "w").close()
    wait_until = time.time_ns() + timeout_ns
    while not os.path.exists(go):
        if time.time_ns() >= wait_until:
            print("outcome=no-go")
            return
        time.sleep(0.001)
    t0 = time.time_ns()
    cpu0 = os.times()
    deadline = t0 + timeout_ns
    stall_ns = int(float(stall_s) * 1e9)
    pattern = re.compile(re.escape(cat) + r"_[0-9]+")

    first = all_bytes = end = 0
    size = 0
    state, spool = "?", -1
    rss = []
    next_sample = 0
    last_change, last_key = time.time_ns(), None
    outcome = "timeout"
    with open(samples_path, "w") as out:
        out.write("t_s\trss_kb\tstate\tspool_bytes\tcentral_bytes\n")
        while True:
            now = time.time_ns()
            size = central_bytes(cdir, pattern)
            if size > 0 and not first:
                first = now
            if size >= want and not all_bytes:
                all_bytes = now
            # Once the central has everything, check the leaf's state at every turn, so the
            # end time has the 10 ms resolution of the size polling.
            if now >= next_sample or all_bytes:
                try:
                    kb = vm_rss_kb(pid)
                except OSError:
                    outcome = "leaf-exited"
                    break
                st = buffer_status(addr)
                if st:
                    state, spool = st
                if now >= next_sample:
                    rss.append(kb)
                    out.write(f"{(now - t0) / 1e9:.3f}\t{kb}\t{state}\t{spool}\t{size}\n")
                    next_sample = now + sample_ns
                if all_bytes and st and state == "streaming" and spool == 0:
                    end = now
                    rss.append(kb)
                    out.write(f"{(now - t0) / 1e9:.3f}\t{kb}\t{state}\t{spool}\t{size}\n")
                    outcome = "done"
                    break
            key = (size, spool)
            if key != last_key:
                last_key, last_change = key, now
            elif now - last_change >= stall_ns:
                outcome = "stalled"
                break
            if now >= deadline:
                outcome = "timeout"
                break
            time.sleep(0.01)

    cpu1 = os.times()
    print(f"go_ns={t0}")
    print(f"cpu_s={cpu1.user + cpu1.system - cpu0.user - cpu0.system:.3f}")
    print(f"first_byte_ns={first}")
    print(f"all_bytes_ns={all_bytes}")
    print(f"end_ns={end}")
    print(f"central_bytes={size}")
    print(f"state={state}")
    print(f"spool_bytes={spool}")
    print(f"rss_start_kb={rss[0] if rss else 0}")
    print(f"rss_peak_kb={max(rss) if rss else 0}")
    print(f"rss_end_kb={rss[-1] if rss else 0}")
    print(f"samples={len(rss)}")
    print(f"outcome={outcome}")


if __name__ == "__main__":
    main()
