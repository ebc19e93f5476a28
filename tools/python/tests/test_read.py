"""The Python package against the independent spec reader (tools/psnap_reader.py) and the source checkpoints: every
value bit for bit, slices as numpy's orthogonal indexing, snapshots equal to the checkpoints, errors by name."""
import os
import shutil

import numpy as np
import pytest

import paramsnap
from psnap_reader import Psnap
from safetensors_io import read_safetensors
from conftest import checkpoint_files

BITS = {"f32": np.uint32, "f16": np.uint16, "bf16": np.uint16, "f64": np.uint64}


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 2: np.uint16, 8: np.uint64}[a.dtype.itemsize])


@pytest.mark.parametrize("name", ["tiny-gpt", "mlp-digits", "tiny-gpt-bf16"])
def test_every_value_equals_the_independent_reader(converted, name):
    if name not in converted:
        pytest.skip(f"{name} not available")
    path, _ = converted[name]
    ref = Psnap(path)
    with paramsnap.open(path, bf16="bits") as run:
        assert [t.name for t in run.tensors] == [t.name for t in ref.tensors]
        assert run.snapshot_count == ref.snapshot_count
        for t in run.tensors:
            want = ref.tensor_bits(t.name)
            got = bits(run.trajectories(t.name))
            assert got.shape == want.shape and np.array_equal(got, want), t.name
            # The whole tensor as an array of shape (*shape, S).
            full = bits(np.asarray(run[t.name]))
            assert np.array_equal(full.reshape(-1, run.snapshot_count), want), t.name


def test_slices_are_orthogonal_numpy_indexing(converted):
    path, _ = converted["tiny-gpt"]
    ref = Psnap(path)
    rng = np.random.default_rng(7)
    with paramsnap.open(path) as run:
        S = run.snapshot_count
        for t in run.tensors:
            whole = ref.tensor_bits(t.name).view(np.float32).reshape(t.shape + (S,))
            a = run[t.name]
            assert a.shape == whole.shape
            keys = [(0,), (-1,), (slice(None), -1), (..., 0), (slice(1, None, 3),), (Ellipsis,)]
            if len(t.shape) == 2:
                r, c = t.shape
                keys += [(3 % r, 17 % c), (slice(None), slice(None, 5), -1), (slice(None, None, -7), 2 % c, slice(10, 20)),
                         ([0, r - 1, 2 % r], slice(None), [0, S - 1]), (int(rng.integers(r)), ...)]
            for k in keys:
                want = whole
                # orthogonal indexing: one dimension at a time
                kk = k if isinstance(k, tuple) else (k,)
                if Ellipsis in kk:
                    i = kk.index(Ellipsis)
                    kk = kk[:i] + (slice(None),) * (whole.ndim - len(kk) + 1) + kk[i + 1:]
                kk = kk + (slice(None),) * (whole.ndim - len(kk))
                d = 0
                for x in kk:
                    idx = [slice(None)] * want.ndim
                    idx[d] = x
                    want = want[tuple(idx)]
                    if not isinstance(x, int):
                        d += 1
                got = a[k]
                assert got.shape == want.shape and np.array_equal(bits(got), bits(want)), (t.name, k)


@pytest.mark.parametrize("name", ["tiny-gpt", "tiny-gpt-bf16"])
def test_snapshot_equals_its_checkpoint(converted, name):
    if name not in converted:
        pytest.skip(f"{name} not available")
    path, src = converted[name]
    files = checkpoint_files(src)
    with paramsnap.open(path, bf16="bits") as run:
        for k in (0, len(files) // 2, len(files) - 1):
            want, _, _ = read_safetensors(files[k])
            got = run.snapshot(k)
            assert set(got) == set(want)
            for n in want:
                assert got[n].shape == want[n].shape and np.array_equal(bits(got[n]), want[n]), (k, n)


def test_bf16_as_float32_and_ml_dtypes(converted):
    if "tiny-gpt-bf16" not in converted:
        pytest.skip("tiny-gpt-bf16 not available")
    path, _ = converted["tiny-gpt-bf16"]
    with paramsnap.open(path, bf16="bits") as raw, paramsnap.open(path, bf16="float32") as wide:
        name = raw.tensors[1].name
        b = raw.trajectories(name)
        f = wide.trajectories(name)
        assert f.dtype == np.float32 and np.array_equal(f.view(np.uint32) >> 16, b.astype(np.uint32))
        ml_dtypes = pytest.importorskip("ml_dtypes")
        with paramsnap.open(path) as run:
            m = run.trajectories(name)
            assert m.dtype == np.dtype(ml_dtypes.bfloat16) and np.array_equal(m.astype(np.float32), f)


def test_snapshots_table(converted):
    path, _ = converted["tiny-gpt"]
    ref = Psnap(path)
    with paramsnap.open(path) as run:
        frame = run.snapshots
        steps = list(frame["step"]) if hasattr(frame, "columns") else [r["step"] for r in frame]
        assert steps == [s["step"] for s in ref.snapshots]
        assert np.array_equal(run.steps, np.array(steps))
        if hasattr(frame, "columns"):
            assert "loss" in frame.columns


def test_errors_name_what_and_where(converted, tmp_path):
    path, _ = converted["tiny-gpt"]
    with paramsnap.open(path) as run:
        with pytest.raises(KeyError) as e:
            run["blocks.0.atn.q_proj.weight"]
        assert "blocks.0.attn.q_proj.weight" in str(e.value)          # the suggestion
        a = run["blocks.0.attn.q_proj.weight"]
        with pytest.raises(IndexError):
            a[80]
        with pytest.raises(IndexError):
            a[0, 0, 61]
        with pytest.raises(IndexError):
            a[80, 0]
        with pytest.raises(IndexError):
            a[0, -81]
        assert np.array_equal(a[-1, -1], a[79, 79]) and a[-1, -1].shape == (61,)
        with pytest.raises(IndexError):
            a[0, 0, 0, 0]
        with pytest.raises(IndexError):
            run.snapshot(61)
        with pytest.raises(IndexError):
            run.trajectories("blocks.0.attn.q_proj.weight", 0, 6401)
    with pytest.raises(paramsnap.Error):
        run.trajectories("blocks.0.attn.q_proj.weight", 0, 1)          # closed
    with pytest.raises(OSError) as e:
        paramsnap.open(str(tmp_path / "missing.psnap"))
    assert "missing.psnap" in str(e.value)
    # A damaged tile: one byte flipped in the middle of the stored tiles.
    bad = str(tmp_path / "bad.psnap")
    shutil.copy(path, bad)
    size = os.path.getsize(bad)
    with open(bad, "r+b") as f:
        f.seek(size // 3)
        b = f.read(1)
        f.seek(size // 3)
        f.write(bytes([b[0] ^ 0xFF]))
    with paramsnap.open(bad) as run:
        with pytest.raises(paramsnap.DamagedRunError) as e:
            for t in run.tensors:
                run.trajectories(t.name)
        assert "tile" in str(e.value)
