#!/bin/sh
# Runs Loket's fuzz targets (cargo-fuzz, libFuzzer) for SECONDS each, all at once, seeded with the
# repository's mail corpus (tests/corpus), the shipped rules and sample commands. Crashes land in fuzz/artifacts/<target>/;
# each becomes a regression test. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain take
# the sanitizer flags.
set -eu
cd "$(dirname "$0")/../fuzz"
secs=${1:-1800}
shift 2>/dev/null || true
targets=${*:-"mail command rules"}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
mkdir -p corpus/mail corpus/command corpus/rules logs
find ../tests/corpus \( -name '*.eml' -o -name '*.box' \) -size -200k -exec cp -n {} corpus/mail/ \; 2>/dev/null || true
cp -n ../rules/hero.toml corpus/rules/hero.toml
for c in "#resolve Sudah beres" "/baru" "/status A-HERO26000001" "/nilai A-HERO26000001 5 mantap" \
         "#assign apps
#priority P2
teks" "1
2
3
Judul
Deskripsi"; do
  printf '%s' "$c" > "corpus/command/$(printf '%s' "$c" | sha1sum | cut -c1-12)"
done
for t in $targets; do
  nice -n 5 cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 > "logs/$t.log" 2>&1 &
done
wait
for t in $targets; do
  echo "== $t: $(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}') executions in ${secs}s; \
$(ls artifacts/$t 2>/dev/null | wc -l) crash artifacts"
done
