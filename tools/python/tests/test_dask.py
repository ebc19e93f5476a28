"""paramsnap.dask on a dask.distributed LocalCluster of 2 worker processes: moments equal the single-process answer,
bit for bit, on the shared real runs."""
import numpy as np
import pytest

import paramsnap

distributed = pytest.importorskip("distributed")
import paramsnap.dask as pdask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.mark.parametrize("name", ["tiny-gpt", "mlp-digits"])
def test_moments_on_a_cluster_equal_one_process(converted, client, name):
    path, _ = converted[name]
    with paramsnap.open(path) as r:
        want = r.moments(stats=["mean", "variance", "skewness", "kurtosis", "min", "max"])
        names = [t.name for t in r.tensors]
    got = pdask.moments(path, stats=["mean", "variance", "skewness", "kurtosis", "min", "max"], client=client, parts=5)
    assert list(got) == list(want)
    for s in want:
        assert list(got[s]) == names
        for t in names:
            assert np.array_equal(got[s][t], want[s][t], equal_nan=True), (s, t)


def test_groups_cover_every_tensor_once_and_include_selects(converted, client):
    path, _ = converted["tiny-gpt"]
    with paramsnap.open(path) as r:
        names = [t.name for t in r.tensors]
    for parts in (1, 2, 7, 100):
        groups = pdask.tensor_groups(path, parts)
        assert [n for g in groups for n in g] == names and 1 <= len(groups) <= parts
    got = pdask.moments(path, stats=["mean"], include="blocks.0.*", client=client)
    assert list(got["mean"]) == [n for n in names if n.startswith("blocks.0.")]
    with pytest.raises(ValueError):
        pdask.moments(path, client=client, parts=0)


def test_moments_written_per_task_equal_one_process(converted, client, tmp_path):
    path, _ = converted["mlp-digits"]
    with paramsnap.open(path) as r:
        want = r.moments(stats=["mean", "variance"], output=str(tmp_path / "one.psnap"))
        names = [t.name for t in r.tensors]
    parts = pdask.moments(path, stats=["mean", "variance"], client=client, parts=3, output=str(tmp_path / "parts"))
    assert list(parts) == names
    assert len({id(p) for p in parts.values()}) == 3
    for t in names:
        assert np.array_equal(parts[t][t][...], want[t][...], equal_nan=True), t
    with pytest.raises(Exception, match="exists"):
        pdask.moments(path, stats=["mean"], client=client, parts=3, output=str(tmp_path / "parts"))
