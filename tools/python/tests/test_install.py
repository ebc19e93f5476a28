"""`pip install ./tools/python` gives a package that carries its native library (found without the repository) and
registers the xarray engine "paramsnap"."""
import os
import subprocess
import sys

import pytest

from conftest import REPO


def test_pip_install_carries_the_library(converted, tmp_path):
    lib = os.environ.get("PARAMSNAP_LIB")
    if not lib:
        for config in ("debug", "release"):
            p = os.path.join(REPO, ".build", config, "libparamsnap.so")
            if os.path.exists(p):
                lib = p
                break
    if not lib:
        pytest.skip("libparamsnap.so not built")
    target = str(tmp_path / "site")
    env = dict(os.environ, PARAMSNAP_LIB=lib)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target,
                    os.path.join(REPO, "tools", "python")], check=True, env=env, cwd=str(tmp_path))
    assert os.path.exists(os.path.join(target, "paramsnap", "libparamsnap.so"))
    code = ("import paramsnap, sys; r = paramsnap.open(sys.argv[1]); assert paramsnap.__file__.startswith(sys.argv[2]), paramsnap.__file__; "
            "print(r.snapshot_count)\n"
            "try:\n import xarray as xr\nexcept ImportError:\n pass\nelse:\n ds = xr.open_dataset(sys.argv[1], engine='paramsnap'); print(len(ds.data_vars))")
    env = {k: v for k, v in os.environ.items() if k not in ("PARAMSNAP_LIB", "PYTHONPATH")}
    env["PYTHONPATH"] = target
    out = subprocess.run([sys.executable, "-c", code, converted["mlp-digits"][0], target], check=True, capture_output=True, text=True,
                         env=env, cwd=str(tmp_path)).stdout.split()
    assert out[0] == "101" and (len(out) == 1 or out[1] == "6")
