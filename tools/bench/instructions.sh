#!/usr/bin/env bash
# Instructions per value for encoding (psnap convert) and decoding (psnap verify) a real run with a codec chain, counted
# by valgrind's callgrind: deterministic, so an A/B of two builds is exact even on a shared VM, where wall-clock speeds
# can swing ±20–40 % between minutes. (Instructions are not time: check a win with psnap-bench too.)
# Usage: tools/bench/instructions.sh [--psnap PATH] [--chain CHAIN] [--runs tiny-gpt,mlp-digits,...] [--data DIR]
# Defaults: the release psnap of this checkout (built if missing), the default chain, tiny-gpt, ../shared/data.
# Prints one line per run: values, encode and decode instructions per value (whole process, start-up included: the
# start-up share is printed too, from a run that converts nothing).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
psnap="" chain="linpred,split,zstdplanes" runs="tiny-gpt" data="$root/../shared/data"
while [ $# -gt 0 ]; do
    case "$1" in
        --psnap) psnap="$2"; shift 2 ;;
        --chain) chain="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        -h|--help) sed -n 2,7p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 64 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install -y valgrind)" >&2; exit 1; }
if [ -z "$psnap" ]; then
    (cd "$root" && swift build -c release --product psnap >&2)
    psnap="$root/.build/release/psnap"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
count() { valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
          grep -o 'refs: *[0-9,]*' "$work/err" | tr -d ', ' | cut -d: -f2; }
base=$(count "$psnap" --version)
echo "psnap: $psnap; chain: $chain; start-up: $base instructions"
IFS=, read -ra list <<< "$runs"
for run in "${list[@]}"; do
    out="$work/$run.psnap"
    enc=$(count "$psnap" convert "$data/$run" -o "$out" --codec "$chain")
    dec=$(count "$psnap" verify "$out")
    values=$("$psnap" info "$out" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["parameters"] * d["snapshots"]["count"])')
    python3 -c "v=$values; e=$enc-$base; d=$dec-$base; print(f'$run: {v:,} values; encode {e/v:.1f} instructions/value ({e:,}), decode+checksums {d/v:.1f} ({d:,})')"
    rm -f "$out"
done
