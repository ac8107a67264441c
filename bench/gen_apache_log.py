#!/usr/bin/env python3
"""Writes realistic Apache "combined" access-log lines to a file, fast.

    gen_apache_log.py OUT BYTES [SEED]

Stops at the first line boundary at or past BYTES. Deterministic for a given SEED. Lines are
built from pools (client IPs, paths, query strings, referers, user agents) with weighted
choices, timestamps advance a few milliseconds per line, and the output is written in
multi-megabyte blocks, so 1 GB takes well under a minute.
"""

import random
import sys
import time

LINES_PER_BLOCK = 50_000


def ip_pool(rng, n):
    pool = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.7:
            pool.append("%d.%d.%d.%d" % (rng.randint(1, 223), rng.randint(0, 255),
                                         rng.randint(0, 255), rng.randint(1, 254)))
        elif kind < 0.85:
            pool.append("10.%d.%d.%d" % (rng.randint(0, 255), rng.randint(0, 255),
                                         rng.randint(1, 254)))
        else:
            pool.append("2001:db8:%x:%x::%x" % (rng.randint(0, 0xffff), rng.randint(0, 0xffff),
                                                rng.randint(1, 0xffff)))
    return pool


WORDS = ("about account admin api assets blog cart catalog category checkout css docs download "
         "events faq feed files help images img js login logout media news orders page "
         "products profile search settings static support tags uploads user users v1 v2 "
         "video wiki").split()
EXTS = ["", "", "", ".html", ".php", ".js", ".css", ".png", ".jpg", ".gif", ".svg", ".json",
        ".xml", ".ico", ".woff2", ".pdf", ".gz"]
QUERY_KEYS = "q id page sort lang ref utm_source utm_medium session token limit offset".split()


def path_pool(rng, n):
    pool = ["/", "/index.html", "/favicon.ico", "/robots.txt", "/sitemap.xml",
            "/wp-login.php", "/.env", "/server-status"]
    while len(pool) < n:
        depth = rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5))
        segs = []
        for _ in range(depth):
            r = rng.random()
            if r < 0.6:
                segs.append(rng.choice(WORDS))
            elif r < 0.85:
                segs.append(str(rng.randint(1, 999999)))
            else:
                segs.append("%08x" % rng.getrandbits(32))
        p = "/" + "/".join(segs) + rng.choice(EXTS)
        if rng.random() < 0.3:
            p += "?" + "&".join(
                "%s=%s" % (rng.choice(QUERY_KEYS),
                           rng.choice((str(rng.randint(0, 10000)), rng.choice(WORDS),
                                       "%016x" % rng.getrandbits(64))))
                for _ in range(rng.randint(1, 4)))
        pool.append(p)
    return pool


UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.199 Safari/537.36 Edg/119.0.2151.97",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "curl/7.88.1",
    "Wget/1.21.3",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "Prometheus/2.48.0",
    "-",
]
UA_WEIGHTS = [20, 6, 8, 5, 4, 9, 7, 3, 4, 2, 1, 3, 1, 2, 1, 1, 1, 1]

# {p}: a path from the pool, {w}: a word, {n}: a number, {h}: a short hex id.
REF_SITES = ["https://www.google.com/", "https://www.bing.com/search?q={w}+{w2}",
             "https://duckduckgo.com/", "https://t.co/{h}",
             "https://news.ycombinator.com/item?id={n}", "https://www.example.com{p}",
             "https://example.com{p}", "android-app://com.google.android.gm/"]

METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
METHOD_WEIGHTS = [880, 80, 20, 8, 5, 5, 2]
STATUSES = ["200", "304", "301", "302", "404", "403", "401", "206", "400", "500", "502", "503",
            "201", "204", "499"]
STATUS_WEIGHTS = [700, 80, 30, 40, 80, 10, 8, 5, 6, 5, 3, 2, 12, 8, 1]
PROTOS = ["HTTP/1.1", "HTTP/2.0", "HTTP/1.0"]
PROTO_WEIGHTS = [60, 35, 5]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
USERS = ["-"] * 30 + ["alice", "bob", "deploy", "admin"]


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: gen_apache_log.py OUT BYTES [SEED]")
    out, target = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1463
    rng = random.Random(seed)

    ips = ip_pool(rng, 50_000)
    paths = path_pool(rng, 20_000)
    refs = ["-"] * 8
    for _ in range(3000):
        refs.append(rng.choice(REF_SITES).format(
            p=rng.choice(paths), w=rng.choice(WORDS), w2=rng.choice(WORDS),
            n=rng.randint(30_000_000, 39_999_999), h="%010x" % rng.getrandbits(40)))
    sizes = ["-"] + [str(int(rng.lognormvariate(8.5, 1.6))) for _ in range(5000)]

    # Timestamps: start at a fixed date and advance ~3 ms per line on average.
    t = 1_700_000_000.0
    tz = "+0000"
    ts_cache_sec = None
    ts_str = ""

    written = 0
    choices = rng.choices
    with open(out, "wb", buffering=0) as f:
        while written < target:
            n = LINES_PER_BLOCK
            ip_c = choices(ips, k=n)
            user_c = choices(USERS, k=n)
            m_c = choices(METHODS, METHOD_WEIGHTS, k=n)
            p_c = choices(paths, k=n)
            pr_c = choices(PROTOS, PROTO_WEIGHTS, k=n)
            st_c = choices(STATUSES, STATUS_WEIGHTS, k=n)
            sz_c = choices(sizes, k=n)
            ref_c = choices(refs, k=n)
            ua_c = choices(UAS, UA_WEIGHTS, k=n)
            dt_c = [rng.random() * 0.006 for _ in range(n)]
            lines = []
            append = lines.append
            for i in range(n):
                t += dt_c[i]
                sec = int(t)
                if sec != ts_cache_sec:
                    ts_cache_sec = sec
                    g = time.gmtime(sec)
                    ts_str = "%02d/%s/%04d:%02d:%02d:%02d %s" % (
                        g.tm_mday, MONTHS[g.tm_mon - 1], g.tm_year, g.tm_hour, g.tm_min,
                        g.tm_sec, tz)
                st = st_c[i]
                sz = "-" if st in ("304", "204") else sz_c[i]
                append('%s - %s [%s] "%s %s %s" %s %s "%s" "%s"\n' % (
                    ip_c[i], user_c[i], ts_str, m_c[i], p_c[i], pr_c[i], st, sz,
                    ref_c[i], ua_c[i]))
            block = "".join(lines).encode()
            if written + len(block) > target:
                # Cut at the first line boundary at or past the target.
                cut = block.find(b"\n", max(0, target - written - 1)) + 1
                block = block[:cut] if cut > 0 else block
            f.write(block)
            written += len(block)


if __name__ == "__main__":
    main()
