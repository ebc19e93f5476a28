#!/usr/bin/env bash
# Builds the fuzz targets (exactly as spec'd in ../../../shared/TOOLCHAIN.md) and runs one for N seconds.
# usage: tools/fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
#   TARGET: fuzz-reader | fuzz-roundtrip | fuzz-safetensors
# Corpus: tools/fuzz/corpus/TARGET (git-ignored), seeded on first use: fuzz-reader from fixtures/golden and
# fixtures/fuzz-regressions, fuzz-safetensors from tools/fuzz/seeds and fixtures/fuzz-regressions/dumps, fuzz-roundtrip
# from nothing. Crashes: tools/fuzz/artifacts/.
# Prints libFuzzer's progress lines (cov:/ft:/exec/s) and its final stats. Replay a crash:
#   SWIFT_BACKTRACE=enable=no tools/fuzz/.build/debug/TARGET CRASH_FILE    (PSNAP_FUZZ_ALL=1: fuzz-reader also
#   repairs and appends to every input, not a quarter each); minimise: add -minimize_crash=1 -max_total_time=60.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${1:?usage: run.sh fuzz-reader|fuzz-roundtrip|fuzz-safetensors [seconds] [libFuzzer flags]}"
secs="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
cd "$here"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  swift build -c debug --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product "$target"
fi
corpus="$here/corpus/$target"
mkdir -p "$corpus" "$here/artifacts"
if [[ -z "$(ls -A "$corpus")" ]]; then
  case "$target" in
    fuzz-reader) cp "$root"/fixtures/golden/*.psnap "$corpus"/ ;;
    fuzz-safetensors) cp "$here"/seeds/fuzz-safetensors/* "$corpus"/; cp "$root"/fixtures/fuzz-regressions/dumps/* "$corpus"/ ;;
  esac
  if [[ -d "$root/fixtures/fuzz-regressions" && "$target" == fuzz-reader ]]; then
    cp "$root"/fixtures/fuzz-regressions/* "$corpus"/ 2>/dev/null || true
  fi
fi
max_len=65536; extra=()
[[ "$target" == fuzz-roundtrip ]] && { max_len=4096; extra=(-len_control=0); }
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
exec "$here/.build/debug/$target" "$corpus" -max_total_time="$secs" -max_len="$max_len" -timeout=30 \
  -rss_limit_mb=4096 -artifact_prefix="$here/artifacts/$target-" -print_final_stats=1 "${extra[@]}" "$@"
