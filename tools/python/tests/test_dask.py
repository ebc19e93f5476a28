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


@pytest.mark.parametrize("name,on", [("tiny-gpt", "values"), ("mlp-digits", "steps")])
def test_modes_on_a_cluster_equal_one_process(converted, client, name, on):
    path, _ = converted[name]
    with paramsnap.open(path) as r:
        want = r.modes(k=4, on=on)
    for parts in (1, 3, 7):
        got = pdask.modes(path, k=4, on=on, client=client, parts=parts)
        assert got["parameters"] == want["parameters"] and got["non_finite"] == want["non_finite"] and got["on"] == on
        for key in ("eigenvalues", "explained_variance_ratio", "modes"):
            assert np.array_equal(got[key], want[key]), (parts, key)
    sel = pdask.modes(path, k=2, include="*.bias", client=client, parts=2)
    with paramsnap.open(path) as r:
        assert np.array_equal(sel["modes"], r.modes(k=2, include="*.bias")["modes"])


def test_similar_on_a_cluster_equals_one_process(converted, client):
    path, _ = converted["tiny-gpt"]
    with paramsnap.open(path) as r:
        t = r.tensors[3]
        queries = [(t.name, 5), (r.tensors[10].name, 0)]
        want = r.similar(queries, top=25)
        want_steps = r.similar(queries[0], top=10, on="steps", include="blocks.*")
    got = pdask.similar(path, queries, top=25, client=client, parts=5)
    got_steps = pdask.similar(path, queries[0], top=10, on="steps", include="blocks.*", client=client, parts=3)
    for g, w in zip(got + [got_steps], want + [want_steps]):
        assert list(g["tensor"]) == list(w["tensor"]) and list(g["flat_index"]) == list(w["flat_index"])
        assert np.array_equal(np.asarray(g["r"]), np.asarray(w["r"]))
    assert got[0]["r"].iloc[0] == 1.0 or abs(got[0]["r"].iloc[0] - 1) < 1e-12   # the query itself


@pytest.mark.parametrize("name,on,k", [("mlp-digits", "values", 6), ("tiny-gpt", "steps", 4)])
def test_groups_on_a_cluster_equal_one_process(converted, client, name, on, k):
    path, _ = converted[name]
    with paramsnap.open(path) as r:
        want = r.groups(k=k, on=on, iterations=5, seed=3)
        names = [t.name for t in r.tensors]
    for parts in (1, 2, 7):
        got = pdask.groups(path, k=k, on=on, iterations=5, seed=3, client=client, parts=parts)
        assert got["iterations"] == want["iterations"]
        for key in ("centroids", "sizes", "rms", "objective_history"):
            assert np.array_equal(got[key], want[key], equal_nan=True), (parts, key)
        assert list(got["tensor_counts"]) == names
        counted = {t: np.bincount(g[g >= 0].ravel(), minlength=k) for t, g in want["group"].items()}
        for t in names:
            assert np.array_equal(got["tensor_counts"][t], counted[t]), t


def test_similar_without_modes_on_a_cluster_equals_one_process(converted, client):
    path, _ = converted["mlp-digits"]
    with paramsnap.open(path) as r:
        q = (r.tensors[0].name, 17)
        want = r.similar(q, top=15, remove_modes=2)
    got = pdask.similar(path, q, top=15, remove_modes=2, client=client, parts=3)
    assert list(got["flat_index"]) == list(want["flat_index"]) and list(got["tensor"]) == list(want["tensor"])
    assert np.array_equal(np.asarray(got["r"]), np.asarray(want["r"]))


def test_fit_and_chart_on_a_cluster_equal_one_process(converted, client):
    path, _ = converted["mlp-digits"]
    families = ["linear", "quadratic", "modes:3", "exp", "logistic"]
    with paramsnap.open(path) as r:
        want = r.fit(families=families, on="steps")
        want_chart = r.chart(view="values", width=300, height=120)
        want_steps = r.chart(view="steps", width=200, height=80, include="fc*")
        names = [t.name for t in r.tensors]
    got = pdask.fit(path, families=families, on="steps", client=client, parts=3)
    assert got["best"] == want["best"] and got["series"] == want["series"] and got["non_finite"] == want["non_finite"]
    assert got["columns"] == want["columns"] and np.array_equal(got["x"], want["x"])
    assert list(got["values"]) == names
    for t in names:
        assert np.array_equal(got["values"][t], want["values"][t], equal_nan=True), t
    for g, w, kw in ((pdask.chart(path, width=300, height=120, client=client, parts=4), want_chart, {}),
                     (pdask.chart(path, view="steps", width=200, height=80, include="fc*", client=client, parts=2), want_steps, {})):
        for key in ("counts", "below", "above", "steps"):
            assert np.array_equal(g[key], w[key]), key
        assert (g["lo"], g["hi"], g["series"], g["constant"], g["non_finite"]) == (w["lo"], w["hi"], w["series"], w["constant"], w["non_finite"])


def test_fit_written_per_task_equals_one_process(converted, client, tmp_path):
    path, _ = converted["mlp-digits"]
    with paramsnap.open(path) as r:
        want = r.fit(families=["linear", "exp"])
        names = [t.name for t in r.tensors]
    got = pdask.fit(path, families=["linear", "exp"], client=client, parts=3, output=str(tmp_path / "fits"))
    assert got["best"] == want["best"] and list(got["parts"]) == names and len({id(p) for p in got["parts"].values()}) == 3
    for t in names:
        assert np.array_equal(np.asarray(got["parts"][t][t]).astype(np.float64), want["values"][t], equal_nan=True), t
    with pytest.raises(Exception, match="exists"):
        pdask.fit(path, families=["linear"], client=client, parts=3, output=str(tmp_path / "fits"))


@pytest.fixture(scope="module")
def sharded(converted, tmp_path_factory):
    """tiny-gpt as one file and sharded (spec/SHARDS.md) 4 ways and into shards smaller than its largest tensors."""
    import subprocess
    from conftest import psnap_binary
    path, _ = converted["tiny-gpt"]
    out = {}
    for tag, size in (("4", "11MB"), ("split", "2MB")):
        folder = str(tmp_path_factory.mktemp("sharded") / tag)
        subprocess.run([psnap_binary(), "shard", path, "-o", folder, "--shard-size", size], check=True, capture_output=True)
        out[tag] = folder
    return path, out


def test_passes_on_a_sharded_run_equal_one_process_on_the_file(sharded, client):
    import json
    import os
    path, folders = sharded
    with open(os.path.join(folders["split"], "manifest.json")) as f:
        assert any(p["start"] > 0 for s in json.load(f)["shards"] for p in s["parts"])   # tensors split over shards
    with paramsnap.open(path) as r:
        want_m = r.moments(stats=["mean", "variance", "kurtosis"])
        want_modes = r.modes(k=4)
        q = (r.tensors[3].name, 5)
        want_sim = r.similar(q, top=20)
        want_g = r.groups(k=4, iterations=4, seed=1)
    for folder in folders.values():
        groups = pdask.tensor_groups(folder, 100)
        assert [n for g in groups for n in g] == list(want_m["mean"])
        got = pdask.moments(folder, stats=["mean", "variance", "kurtosis"], client=client)
        for s in want_m:
            for t in want_m[s]:
                assert np.array_equal(got[s][t], want_m[s][t], equal_nan=True), (folder, s, t)
        m = pdask.modes(folder, k=4, client=client, parts=3)
        for key in ("eigenvalues", "modes"):
            assert np.array_equal(m[key], want_modes[key]), (folder, key)
        sim = pdask.similar(folder, q, top=20, client=client)
        assert list(sim["flat_index"]) == list(want_sim["flat_index"]) and np.array_equal(np.asarray(sim["r"]), np.asarray(want_sim["r"]))
        g = pdask.groups(folder, k=4, iterations=4, seed=1, client=client, parts=2)
        for key in ("centroids", "sizes", "objective_history"):
            assert np.array_equal(g[key], want_g[key], equal_nan=True), (folder, key)


def test_a_task_opens_only_the_shards_it_reads(sharded):
    path, folders = sharded
    # The tensors each partition range of modes and groups reads: together the selection, each a part of it.
    with paramsnap.open(folders["split"]) as r:
        names = [t.name for t in r.tensors]
        for of, extra in (("gram", {"on": "values"}), ("groups", {"k": 4, "on": "values"})):
            count = r._pass({"pass": "gram", "on": "values"})["partitions"] if of == "gram" else \
                r._pass({"pass": "groupsPlan", "k": 4, "on": "values"})["partitions"]
            cuts = sorted({count * i // 3 for i in range(4)})
            ranges = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
            opens = pdask._partition_tensors(r, folders["split"], dict(extra, of=of), ranges)
            assert sorted({n for o in opens for n in o}) == sorted(names)
            assert len(ranges) == 1 or all(len(o) < len(names) for o in opens), (of, opens)
    with paramsnap.open(path) as one:
        name = one.tensors[5].name
        want = one[name][...]
    with paramsnap.open(folders["split"], tensors=[name]) as part:
        assert np.array_equal(part[name][...], want)
        other = [t.name for t in part.tensors if t.name != name][0]
        with pytest.raises(Exception, match="did not open"):
            part[other][...]
    with pytest.raises(Exception, match="no tensor named"):
        paramsnap.open(folders["split"], tensors=["no.such.tensor"])


def test_xarray_opens_a_sharded_run_as_one_dataset(sharded):
    xr = pytest.importorskip("xarray")
    from paramsnap.xarray_backend import ParamSnapBackendEntrypoint as Backend
    path, folders = sharded
    with xr.open_dataset(path, engine=Backend) as one, xr.open_dataset(folders["split"], engine=Backend, chunks={}, chunk_mb=0.1) as many:
        assert list(one.data_vars) == list(many.data_vars)
        for name in one.data_vars:
            assert np.array_equal(one[name].values, many[name].values), name
    assert Backend().guess_can_open(folders["split"])


def test_one_python_writer_per_shard(sharded, tmp_path):
    """Two 'ranks' append their own parameters to their own shards with `paramsnap.Writer`: the run shows a snapshot
    once every shard has committed it."""
    import shutil
    path, folders = sharded
    run = str(tmp_path / "ranks")
    shutil.copytree(folders["4"], run)
    import json
    import os
    with open(os.path.join(run, "manifest.json")) as f:
        files = [s["file"] for s in json.load(f)["shards"]]
    with paramsnap.open(run) as r:
        before = r.snapshot_count
        last_step = int(r.snapshots["step"].iloc[-1]) if hasattr(r.snapshots, "iloc") else r.snapshots[-1]["step"]

    def own(shard):
        with paramsnap.open(os.path.join(run, shard)) as s:
            return {t.name: np.full(t.shape, 0.25, dtype=np.float32) for t in s.tensors}

    parts = {f: own(f) for f in files}
    for k, f in enumerate(files):
        with paramsnap.Writer(os.path.join(run, f), snapshots_per_segment=1) as w:
            w.append(parts[f], step=last_step + 1)
        with paramsnap.open(run) as r:
            assert r.snapshot_count == (before + 1 if k == len(files) - 1 else before), (k, f)
    with paramsnap.open(run) as r, paramsnap.open(path) as one:
        name = one.tensors[-1].name
        traj = r[name][...]
        assert np.array_equal(traj[..., :before], one[name][...]) and np.all(traj[..., before] == 0.25)
