#!/usr/bin/env bash
# Which flate2 backend should logq use? Decompresses the same gzip file with flate2's
# MultiGzDecoder (what logq uses) built on each backend, plus `gzip -dc` for reference, and
# prints MB/s of output (best of 3 per backend, one thread, newlines counted as logq would).
#
#   bench/logq-inflate.sh [FILE.gz]
#
# Without FILE.gz, gzips (-6) 256 MiB of generated combined-format log under bench/work/.
# Backends: miniz_oxide (flate2's default, pure Rust), zlib-rs (pure Rust), zlib-ng (C, needs
# cmake to build: reported as "did not build" without it). A throwaway crate under
# bench/work/inflate/ is built per backend with its own target dir.
# Not part of the test suite. Results: docs/benchmarks.md.

set -euo pipefail

BENCH_TAG=inflate
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GZ=${1:-}
if [[ -z $GZ ]]; then
    bench_input $((256 * 1024 * 1024))
    GZ=$INPUT.gz
    [[ -s $GZ ]] || gzip -6 -c "$INPUT" >"$GZ"
fi

CRATE=$WORK/inflate
mkdir -p "$CRATE/src"
cat >"$CRATE/Cargo.toml" <<'EOF'
[package]
name = "inflate"
version = "0.1.0"
edition = "2021"

[workspace]

[features]
miniz = ["flate2/rust_backend"]
zlib-rs = ["flate2/zlib-rs"]
zlib-ng = ["flate2/zlib-ng"]

[dependencies]
flate2 = { version = "1", default-features = false }
memchr = "2"

[profile.release]
lto = "thin"
EOF
cat >"$CRATE/src/main.rs" <<'EOF'
use std::io::Read;

fn main() {
    let path = std::env::args().nth(1).expect("FILE.gz");
    let mut best = f64::MAX;
    let mut total = 0;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let f = std::fs::File::open(&path).expect("open");
        let r = std::io::BufReader::with_capacity(256 * 1024, f);
        let mut d = flate2::bufread::MultiGzDecoder::new(r);
        let mut buf = vec![0u8; 1 << 20];
        let (mut n, mut lines) = (0usize, 0usize);
        loop {
            let k = d.read(&mut buf).expect("inflate");
            if k == 0 {
                break;
            }
            lines += memchr::memchr_iter(b'\n', &buf[..k]).count();
            n += k;
        }
        assert!(lines > 0);
        total = n;
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{:.0}", total as f64 / best / 1e6);
}
EOF

cat "$GZ" >/dev/null
out_bytes=$(gzip -dc "$GZ" | wc -c)
echo "input: $GZ ($(stat -c %s "$GZ") bytes gzipped, $out_bytes bytes of text)"
machine_lines
for backend in miniz zlib-rs zlib-ng; do
    if ! (cd "$CRATE" && CARGO_TARGET_DIR=$CRATE/target-$backend \
        cargo build --release -q --features "$backend" >/dev/null 2>&1); then
        printf '%-10s did not build here\n' "$backend"
        continue
    fi
    wait_quiet >/dev/null
    printf '%-10s %6s MB/s\n' "$backend" "$("$CRATE/target-$backend/release/inflate" "$GZ")"
done
t0=$(now_ns)
gzip -dc "$GZ" | wc -l >/dev/null
printf '%-10s %6s MB/s\n' "gzip -dc" "$(awk -v b="$out_bytes" -v n="$(( $(now_ns) - t0 ))" 'BEGIN { printf "%.0f", b / (n / 1e9) / 1e6 }')"
