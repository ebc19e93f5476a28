"""Shared fixtures: the shared real runs converted with the repository's `psnap`, the independent spec reader."""
import glob
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "python"))
sys.path.insert(0, os.path.join(REPO, "tools"))            # psnap_reader: the independent reader of spec/FORMAT.md
# ../shared/data beside the repository (as the Swift tests look for it), else /work/shared/data.
SHARED = os.environ.get("PARAMSNAP_SHARED_DATA") or next(
    (d for d in (os.path.join(REPO, "..", "shared", "data"), "/work/shared/data") if os.path.isdir(d)),
    os.path.join(REPO, "..", "shared", "data"))
RUNS = ["tiny-gpt", "mlp-digits", "tiny-gpt-bf16"]


def psnap_binary():
    env = os.environ.get("PSNAP")
    if env:
        return env
    for config in ("debug", "release"):
        p = os.path.join(REPO, ".build", config, "psnap")
        if os.path.exists(p):
            return p
    pytest.skip("no psnap binary built (swift build)")


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """{run name: (psnap path, dumps folder)}, converted once per session."""
    out = {}
    d = tmp_path_factory.mktemp("runs")
    for name in RUNS:
        src = os.path.join(SHARED, name)
        if not os.path.isdir(src):
            continue
        path = str(d / f"{name}.psnap")
        subprocess.run([psnap_binary(), "convert", src, "-o", path, "--quiet"], check=True)
        out[name] = (path, src)
    if not out:
        pytest.skip(f"no shared runs under {SHARED}")
    return out


def checkpoint_files(folder):
    return sorted(glob.glob(os.path.join(folder, "*.safetensors")))
