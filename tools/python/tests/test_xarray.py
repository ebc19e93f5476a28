"""The xarray backend: every tensor a DataArray (*dims, snapshot) with the snapshots' coordinates, lazily read; its
reductions equal `psnap moments` (f64) within 1e-12; Dask chunks are whole rows of about the asked size, aligned to
the run's blocks."""
import json
import subprocess

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

import paramsnap  # noqa: E402
from paramsnap.xarray_backend import ParamSnapBackendEntrypoint as Backend  # noqa: E402
from psnap_reader import Psnap  # noqa: E402
from conftest import psnap_binary  # noqa: E402


def test_dataset_matches_the_run_and_moments(converted, tmp_path):
    path, _ = converted["tiny-gpt"]
    ref = Psnap(path)
    with xr.open_dataset(path, engine=Backend) as ds:
        assert list(ds.data_vars) == [t.name for t in ref.tensors]
        assert list(ds["step"].values) == [s["step"] for s in ref.snapshots]
        assert "loss" in ds.coords
        name = "blocks.0.mlp.fc_in.weight"
        a = ds[name]
        assert a.dims[-1] == "snapshot" and a.shape == tuple(ref._tensor(name).shape) + (ref.snapshot_count,)
        # Lazy outer indexing equals the reference.
        whole = ref.tensor_bits(name).view(np.float32).reshape(a.shape)
        assert np.array_equal(a[3, 5:40:7, [0, 10, 60]].values, whole[3][5:40:7][:, [0, 10, 60]])
        # std and mean over the snapshots (f64) against psnap moments --f64.
        out = subprocess.run([psnap_binary(), "moments", path, "--include", name, "--stats", "mean,std", "--f64", "--json"],
                             check=True, capture_output=True, text=True).stdout
        rows = json.loads(out)
        mean = np.array([r["mean"] for r in rows]).reshape(a.shape[:-1])
        std = np.array([r["std"] for r in rows]).reshape(a.shape[:-1])
        a64 = a.astype(np.float64)
        assert np.abs(a64.mean("snapshot").values - mean).max() <= 1e-12 * max(1.0, np.abs(mean).max())
        assert np.abs(a64.std("snapshot").values - std).max() <= 1e-12 * max(1.0, np.abs(std).max())


def test_dask_chunks_are_rows_aligned_to_blocks(converted):
    pytest.importorskip("dask")
    path, _ = converted["tiny-gpt"]
    with paramsnap.open(path) as run:
        B = run.block_size
    with xr.open_dataset(path, engine=Backend, chunks={}, chunk_mb=0.1) as ds:
        a = ds["blocks.0.mlp.fc_in.weight"]                 # (320, 80, 61) f32: 100 kB per chunk → few rows each
        rows = a.chunks[0]
        assert len(rows) > 1 and a.chunks[1] == (a.shape[1],) and a.chunks[2] == (a.shape[2],)
        inner = a.shape[1]
        assert all((r * inner) % B == 0 for r in rows[:-1])
        plain = xr.open_dataset(path, engine=Backend)["blocks.0.mlp.fc_in.weight"]
        assert np.array_equal(a.compute().values, plain.values)
        # (Dask's f32 reduction rounds in another order than numpy's.)
        assert np.allclose(a.astype(np.float64).std("snapshot").compute().values, plain.astype(np.float64).std("snapshot").values, rtol=1e-12, atol=0)
