"""Hostile inputs to the package, each once found wrong: they get the right values or a clear error, never a crash."""
import shutil
import warnings

import numpy as np
import pytest

import paramsnap


@pytest.fixture()
def mlp_copy(converted, tmp_path):
    path = str(tmp_path / "mlp.psnap")
    shutil.copy(converted["mlp-digits"][0], path)
    return path


def test_overwrite_does_not_pull_the_file_from_under_a_reader(mlp_copy):
    r = paramsnap.open(mlp_copy)
    before = r["fc2.weight"][200, 5].copy()
    with paramsnap.Writer(mlp_copy, overwrite=True) as w:
        w.append({"x": np.zeros(3, np.float32)}, step=0)
    assert np.array_equal(r["fc2.weight"][200, 5], before)       # the old file, still mapped (was: SIGBUS)
    r.close()
    with paramsnap.open(mlp_copy) as n:
        assert [t.name for t in n.tensors] == ["x"]


def test_snapshot_axis_selections_of_every_length(converted):
    with paramsnap.open(converted["mlp-digits"][0]) as r:
        a = r["fc1.bias"]
        A = np.asarray(a)
        S = r.snapshot_count
        assert np.array_equal(a[:, ::-1], A[:, ::-1])
        assert np.array_equal(a[3, [0] * S], A[3, [0] * S])
        perm = np.random.default_rng(0).permutation(S)
        assert np.array_equal(a[:, perm], A[:, perm])


def test_index_types(converted):
    with paramsnap.open(converted["mlp-digits"][0]) as r:
        w = r["fc2.weight"]
        W = np.asarray(w)
        assert np.array_equal(w[np.int16(250), np.uint8(200)], W[250, 200])
        assert np.array_equal(w[np.uint8(3)], W[3])
        assert w[[]].shape == (0,) + W.shape[1:]
        with pytest.raises(IndexError):
            w[True]
        with pytest.raises(IndexError):
            w[None]
        with pytest.raises(TypeError):
            r.snapshot(1.5)
        assert set(r.snapshot(0, tensors="fc3.bias")) == {"fc3.bias"}
        with pytest.raises(KeyError):
            r["fc1.weight\x00junk"]


def test_metadata_nan_and_names_like_columns(tmp_path):
    path = str(tmp_path / "m.psnap")
    with paramsnap.Writer(path) as w:
        w.append({"a": np.ones(3, np.float32)}, step=7, metadata={"loss": float("nan"), "step": 123, "gain": float("inf")})
        with pytest.raises(ValueError):
            w.append({"a": np.ones(3, np.float32)}, step=8, epoch=float("nan"))
        with pytest.raises(TypeError, match="'bad'"):
            w.append({"a": np.ones(3, np.float32)}, step=8, metadata={"bad": {"nested": 1}})
    with paramsnap.open(path) as r:
        f = r.snapshots
        assert list(r.steps) == [7] and list(f["step"]) == [7] and list(f["meta.step"]) == [123]
        assert np.isnan(f["loss"].iloc[0]) and f["gain"].iloc[0] == np.inf


def test_writer_checks_what_it_is_given(tmp_path):
    path = str(tmp_path / "w.psnap")
    w = paramsnap.Writer(path)
    w.append({"a": np.zeros((2, 3), np.float32)}, step=0)
    with pytest.raises(ValueError, match="the run holds"):
        w.append({"a": np.zeros((3, 2), np.float32)}, step=1)          # same bytes, another shape
    w.append({"a": np.ones((2, 3), ">f4")}, step=1)                     # big-endian, converted
    with pytest.raises(ValueError, match="twice"):
        w.append({1: np.zeros(3, np.float32), "1": np.zeros(3, np.float32)}, step=2)
    with pytest.raises(TypeError):
        w.append({"a": np.zeros((2, 3), np.float32)}, step=1.5)
    w.close()
    with pytest.raises(paramsnap.Error, match="closed"):
        w.append({"a": np.zeros((2, 3), np.float32)}, step=2)
    with paramsnap.open(path) as r:
        assert np.array_equal(r["a"][1, 2], np.array([0, 1], np.float32))
    with pytest.raises(paramsnap.Error) as e:
        paramsnap.Writer(str(tmp_path / "b.psnap"), block_size=3).append({"a": np.zeros(3, np.float32)}, step=0)
    assert not isinstance(e.value, paramsnap.DamagedRunError) and "blockSize" in str(e.value)


def test_pass_options_are_checked(converted):
    with paramsnap.open(converted["mlp-digits"][0]) as r:
        for bad in (dict(k=1.5), dict(k=True), dict(k=0), dict(k=2 ** 64)):
            with pytest.raises(ValueError):
                r.modes(**bad)
        with pytest.raises(ValueError):
            r.moments(stats=["mean", "mean"])
        with pytest.raises(ValueError):
            r.similar([float("nan")] * r.snapshot_count)
        with pytest.raises(ValueError):
            r.chart(range=(float("-inf"), float("inf")))


def test_a_truncated_copy_is_reported(converted, tmp_path):
    data = open(converted["tiny-gpt"][0], "rb").read()
    half = str(tmp_path / "half.psnap")
    with open(half, "wb") as f:
        f.write(data[:len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with paramsnap.open(half) as r:
            assert r.ignored_bytes > 0
    assert any("after the newest valid commit" in str(c.message) for c in caught)


def test_distributed_pass_requests_are_refused_by_name(converted):
    """The library's pieces of the distributed passes refuse malformed requests with an error naming what is wrong."""
    with paramsnap.open(converted["mlp-digits"][0]) as r:
        plan = r._pass({"pass": "groupsPlan", "k": 3})
        d, p = plan["dimension"], plan["partitions"]
        bad = [
            ({"pass": "gram", "partitions": [2, 1]}, "partitions"),
            ({"pass": "gram", "partitions": [0, 10 ** 6]}, "partitions"),
            ({"pass": "modesFromGram", "gram": [1.0, 2.0], "rows": 3}, "gram"),
            ({"pass": "modesFromGram", "gram": [0.0] * (d * d), "rows": 0}, "no parameter"),
            ({"pass": "groupsSample", "k": 3, "q": 0.0, "partitions": [0, p]}, "q in"),
            ({"pass": "groupsSeed", "k": 3, "sample": [1.0] * d}, "at least k rows"),
            ({"pass": "groupsAssign", "k": 3, "centroids": [0.0] * d, "partitions": [0, p]}, "centroids"),
            ({"pass": "groupsUpdate", "k": 3, "centroids": [0.0] * (3 * d), "part": {"sums": [], "sizes": [], "objective": 0,
                                                                                     "groupObjective": [], "undefined": 0, "nonFinite": 0,
                                                                                     "tensorCounts": []}}, "merged part"),
            ({"pass": "similar", "queries": [list(range(d))], "modes": [[1.0, 0.0]]}, "modes of"),
        ]
        for request, words in bad:
            with pytest.raises(paramsnap.Error, match=words):
                r._pass(request)
        # A Gram matrix holding NaN decomposes to an error, not a trap.
        with pytest.raises(paramsnap.Error):
            r._pass({"pass": "modesFromGram", "gram": [float("nan")] * (d * d), "rows": 5})
