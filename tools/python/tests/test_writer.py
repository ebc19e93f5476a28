"""The Python training writer: a run written snapshot by snapshot from arrays equals the same checkpoints converted
by `psnap convert`; a resumed run continues; a SIGKILL while training loses no committed snapshot; bad tensors are
refused by name."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import paramsnap
from conftest import checkpoint_files, REPO
from safetensors_io import read_safetensors
from test_read import bits



def as_values(raw, dtype_name):
    """A safetensors tensor's raw bits as the array a trainer would hand over."""
    if dtype_name == "bf16":
        import ml_dtypes
        return raw.view(ml_dtypes.bfloat16)
    return raw.view({"f32": np.float32, "f16": np.float16, "f64": np.float64}[dtype_name])


@pytest.mark.parametrize("name", ["tiny-gpt", "tiny-gpt-bf16"])
def test_written_run_equals_the_converted_run(converted, tmp_path, name):
    if name not in converted:
        pytest.skip(f"{name} not available")
    if name.endswith("bf16"):
        pytest.importorskip("ml_dtypes")
    path, src = converted[name]
    out = str(tmp_path / "written.psnap")
    with paramsnap.open(path, bf16="bits") as ref:
        dtypes = {t.name: t.dtype for t in ref.tensors}
        steps = list(ref.steps)
        with paramsnap.Writer(out, memory="64MiB", snapshots_per_segment=8) as w:
            for k, f in enumerate(checkpoint_files(src)):
                raw, _, _ = read_safetensors(f)
                w.append({n: as_values(a, dtypes[n]) for n, a in raw.items()}, step=steps[k], metadata={"loss": 1.0 / (k + 1)})
        with paramsnap.open(out, bf16="bits") as got:
            assert [t.name for t in got.tensors] == [t.name for t in ref.tensors]
            assert list(got.steps) == steps
            assert list(got.snapshots["loss"]) == [1.0 / (k + 1) for k in range(len(steps))]
            for t in ref.tensors:
                assert np.array_equal(bits(got.trajectories(t.name)), bits(ref.trajectories(t.name))), t.name


def test_resume_and_layout_checks(tmp_path):
    path = str(tmp_path / "r.psnap")
    x = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.zeros(5, np.float16)}
    with paramsnap.Writer(path) as w:
        for s in range(3):
            w.append({k: v + s for k, v in x.items()}, step=s)
    with paramsnap.Writer(path) as w:                        # resumed
        for s in range(3, 5):
            w.append({k: v + s for k, v in x.items()}, step=s)
        with pytest.raises(paramsnap.Error, match="missing"):
            w.append({"w": x["w"]}, step=9)
    with paramsnap.open(path) as r:
        assert r.snapshot_count == 5 and list(r.steps) == [0, 1, 2, 3, 4]
        assert np.array_equal(r["w"][2, 3], np.float32(11) + np.arange(5, dtype=np.float32))
    with pytest.raises(paramsnap.Error, match="shape"):
        paramsnap.Writer(path).append({"w": np.zeros((4, 3), np.float32), "b": x["b"]}, step=5)
    with pytest.raises(TypeError, match="'i'"):
        paramsnap.Writer(str(tmp_path / "t.psnap")).append({"i": np.zeros(3, np.int64)}, step=0)
    with pytest.raises(ValueError):
        paramsnap.Writer(str(tmp_path / "m.psnap"), memory="lots")


def test_storage_matches_snapinfo_and_merged_space_is_returned(tmp_path):
    """`Run.storage` gives snapinfo's sizes; a run written one snapshot per commit (merging at 4 and 8) occupies
    less disk than its length: the writer returned the merged-away tiles and old indexes as holes."""
    import json
    from conftest import psnap_binary
    path = str(tmp_path / "s.psnap")
    rng = np.random.default_rng(5)
    x = rng.standard_normal(300_000).astype(np.float32)
    with paramsnap.Writer(path, snapshots_per_segment=1) as w:
        for s in range(8):
            x = x + rng.standard_normal(x.size).astype(np.float32) * 1e-3
            w.append({"w": x}, step=s)
    info = json.loads(subprocess.run([os.path.join(os.path.dirname(psnap_binary()), "snapinfo"), path, "--json"],
                                     check=True, capture_output=True, text=True).stdout)
    with paramsnap.open(path) as r:
        st = r.storage
        assert r.snapshot_count == 8
        assert np.array_equal(r["w"][:, 7], x)
    for k in ("fileBytes", "committedBytes", "rawBytes", "storedBytes", "deadBytes"):
        assert st[k] == info[k], k
    assert st["deadBytes"] > st["storedBytes"] // 2           # merges rewrote the early snapshots
    assert st["allocatedBytes"] is not None and st["allocatedBytes"] == info["allocatedBytes"]
    assert st["allocatedBytes"] < st["fileBytes"] - st["deadBytes"] // 2


def test_space_bound_merges_more_than_the_tiered_plan(tmp_path):
    """The default space bound (1.2) merges a small run appended one snapshot per commit into one segment, where the
    tiered plan alone (space_bound=None) keeps 1, 1, 1; both read back the same values; a bad bound is refused."""
    import json
    from conftest import psnap_binary
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal(50_000).astype(np.float32)]
    for _ in range(2):
        xs.append(xs[-1] + rng.standard_normal(xs[-1].size).astype(np.float32) * 1e-3)
    segments = {}
    for bound in (1.2, None):
        path = str(tmp_path / f"b{bound}.psnap")
        with paramsnap.Writer(path, snapshots_per_segment=1, space_bound=bound) as w:
            for s, x in enumerate(xs):
                w.append({"w": x}, step=s)
        info = json.loads(subprocess.run([os.path.join(os.path.dirname(psnap_binary()), "snapinfo"), path, "--json"],
                                         check=True, capture_output=True, text=True).stdout)
        segments[bound] = len(info["segments"])
        with paramsnap.open(path) as r:
            for s, x in enumerate(xs):
                assert np.array_equal(r["w"][:, s], x)
    assert segments == {1.2: 1, None: 3}
    for bad in (0.5, 1.0, float("nan"), 1e9):
        with pytest.raises(ValueError):
            paramsnap.Writer(str(tmp_path / "bad.psnap"), space_bound=bad)


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import numpy as np
    import paramsnap
    w = paramsnap.Writer(sys.argv[1], snapshots_per_segment=1, memory="16MiB")
    x = np.arange(200_000, dtype=np.float32)
    step = 0
    while True:
        w.append({"w": x + step, "v": (x[:1000] * step).astype(np.float64)}, step=step)
        print("committed", step + 1, flush=True)
        step += 1
""")


def test_sigkill_while_training_loses_no_committed_snapshot(tmp_path):
    path = str(tmp_path / "k.psnap")
    for attempt in range(3):
        if os.path.exists(path):
            os.remove(path)
        p = subprocess.Popen([sys.executable, "-c", CHILD, path, os.path.join(REPO, "tools", "python")],
                             stdout=subprocess.PIPE, text=True)
        committed = 0
        deadline = time.time() + 60
        while committed < 3 + 2 * attempt and time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            committed = int(line.split()[1])
        time.sleep(0.01 * attempt)                           # kill at different points of the next append
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert committed >= 3, "the child never committed"
        with paramsnap.open(path) as r:
            n = r.snapshot_count
            assert n >= committed
            x = np.arange(200_000, dtype=np.float32)
            for k in range(n):
                assert np.array_equal(r.snapshot(k)["w"], x + k)
