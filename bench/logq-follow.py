#!/usr/bin/env python3
"""Follow-mode latency: from a line's append to a file until it appears on a follower's stdout.

    bench/logq-follow.py [LOGQ] [N]

Compares `logq where --follow FILE` and `logq grep --follow`, with `tail -F FILE | grep
--line-buffered` as the reference, N appends each (default 100, 20 ms apart), and prints the
median, p90 and max latency in milliseconds. Not part of the test suite; results in
docs/benchmarks.md.
"""

import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

LOGQ = sys.argv[1] if len(sys.argv) > 1 else "target/release/logq"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100


def measure(cmd, path, shell=False):
    # A session of its own, so that the whole pipeline (the shell, tail and grep) is stopped
    # at the end, not only the shell.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, shell=shell, bufsize=0, start_new_session=True)
    out = p.stdout.fileno()
    buf = b""
    # Wait until the follower prints a probe: it is reading from the end of the file.
    ready = False
    deadline = time.time() + 20
    while not ready and time.time() < deadline:
        with open(path, "a") as f:
            f.write("probe MATCH 0\n")
        r, _, _ = select.select([out], [], [], 0.2)
        if r:
            buf += os.read(out, 65536)
            ready = b"probe" in buf
    time.sleep(0.3)
    while select.select([out], [], [], 0.1)[0]:
        os.read(out, 65536)
    lat = []
    for i in range(N):
        token = b"tok%d" % i
        t0 = time.monotonic()
        with open(path, "a") as f:
            f.write("line MATCH %s\n" % token.decode())
        buf = b""
        while token not in buf:
            r, _, _ = select.select([out], [], [], 5)
            if not r:
                raise SystemExit("no output within 5 s for %r" % cmd)
            buf += os.read(out, 65536)
        lat.append((time.monotonic() - t0) * 1000)
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.9) - 1], lat[-1]


def main():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "app.log")
        open(path, "w").close()
        cases = [
            ("logq where --follow", [LOGQ, "where", '$2 == "MATCH"', "--follow", path], False),
            ("logq grep --follow", [LOGQ, "grep", "--follow", "MATCH", path], False),
            ("tail -F | grep --line-buffered",
             "tail -n0 -F %s | grep --line-buffered MATCH" % path, True),
        ]
        for name, cmd, shell in cases:
            med, p90, mx = measure(cmd, path, shell)
            print("%-34s median %6.1f ms  p90 %6.1f ms  max %6.1f ms" % (name, med, p90, mx))


if __name__ == "__main__":
    main()
