#!/usr/bin/env bash
# ParamSnap against the tools a user would pick instead: zarr v3, blosc2, HDF5, pcodec, fpzip, raw .npy, the safetensors
# folder, zstd.
# Usage: tools/bench/peers/run.sh [--gib N] [--repeat R] [--runs tiny-gpt,tiny-gpt-bf16,mlp-digits,synthetic]
#                                 [--contenders psnap,zarr_zstd,…] [--work /tmp/psnap-peers] [--tag NAME] [--chunk B]
#                                 [--data DIR[:DIR…]]   (folders holding the runs; default ../shared/data)
# Makes tools/bench/peers/.venv (numpy scipy zarr numcodecs blosc2 h5py hdf5plugin zstandard safetensors pcodec fpzip from PyPI; a
# package that does not install marks its contender unavailable), builds ParamSnap in release (.build-peers) and the
# in-process latency probe (tools/bench/peers/probe), runs every contender on the real runs of ../shared/data and on a
# synthetic run (tools/make_synthetic_dumps.py, --gib 1 by default; --gib 8 for the 8 GiB comparison), and writes
# tools/bench/peers/results/<tag>.md and .json (default tag: latest). Name a kept result by date, UTC time, runs, size
# and what it compares, e.g. --tag 2026-11-29-1600-real-runs-and-1gib-all-contenders-64kib-tiles. Temporary stores go
# under --work and are deleted as it goes.
# Chunked contenders use chunks of ParamSnap's block size for each run (FORMAT §4.1), or --chunk B for all (and psnap).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
fi
for p in numpy scipy 'zarr>=3' numcodecs blosc2 h5py hdf5plugin zstandard safetensors pcodec fpzip; do
    "$venv/bin/pip" install -q "$p" || echo "run.sh: could not install $p; its contender will be reported unavailable" >&2
done
(cd "$root" && swift build -c release --scratch-path .build-peers --product psnap >&2)
(cd "$here/probe" && swift build -c release >&2)
exec "$venv/bin/python" "$here/peers.py" bench --psnap "$root/.build-peers/release/psnap" \
    --probe "$here/probe/.build/release/psnap-peer-probe" "$@"
