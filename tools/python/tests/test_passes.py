"""The analysis passes from Python give the `psnap` command's answers (whose numerics the Swift tests check against
numpy, scikit-learn and faiss), and one of them is checked against numpy here too."""
import json
import subprocess

import numpy as np
import pytest

import paramsnap
from conftest import psnap_binary
from psnap_reader import Psnap


def cli(*args):
    return subprocess.run([psnap_binary(), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def mlp(converted):
    return converted["mlp-digits"][0]


def test_modes_and_similar_equal_the_command(mlp):
    with paramsnap.open(mlp) as run:
        m = run.modes(k=3)
        want = json.loads(cli("modes", mlp, "-k", "3", "--json"))
        assert np.array_equal(m["eigenvalues"], np.array(want["eigenvalues"]))
        hits = run.similar(("fc3.weight", (3, 17)), top=10)
        want = json.loads(cli("similar", mlp, "fc3.weight", "3", "17", "--top", "10", "--json"))["queries"][0]["hits"]
        got = hits.to_dict("records") if hasattr(hits, "to_dict") else hits
        assert [(h["tensor"], h["flat_index"], h["r"]) for h in got] == [(h["tensor"], h["index"], h["r"]) for h in want]
        assert got[0]["index"] == (3, 17)
        # A query given as values, on the steps with the first mode removed.
        v = run["fc3.weight"][3, 17].astype(np.float64)
        a = run.similar(v, top=5, on="steps", remove_modes=1)
        b = run.similar(("fc3.weight", (3, 17)), top=5, on="steps", remove_modes=1)
        assert list(a["r"] if hasattr(a, "columns") else [h["r"] for h in a]) == list(b["r"] if hasattr(b, "columns") else [h["r"] for h in b])
        with pytest.raises(paramsnap.Error, match="one value per snapshot"):
            run.similar(np.diff(v), top=5)


def test_moments_equal_numpy_and_the_command(mlp):
    ref = Psnap(mlp)
    with paramsnap.open(mlp) as run:
        mo = run.moments(stats=["mean", "std"], include="fc3.*")
        assert set(mo["std"]) == {"fc3.weight", "fc3.bias"}
        x = ref.tensor_float64("fc3.weight").reshape(run["fc3.weight"].shape)
        assert np.abs(mo["std"]["fc3.weight"] - x.std(axis=-1)).max() <= 1e-12 * x.std(axis=-1).max()
        want = json.loads(cli("moments", mlp, "--include", "fc3.bias", "--stats", "mean,std", "--f64", "--json"))
        assert [r["std"] for r in want] == mo["std"]["fc3.bias"].tolist()


def test_groups_fit_chart_equal_the_command(mlp, tmp_path):
    with paramsnap.open(mlp) as run:
        g = run.groups(k=4, iterations=3, seed=1)
        want = json.loads(cli("groups", mlp, "-k", "4", "--iterations", "3", "--seed", "1", "--json"))
        assert g["sizes"].tolist() == want["sizes"]
        assert sum(int((a >= 0).sum()) for a in g["group"].values()) == sum(want["sizes"])
        f = run.fit(families=["linear", "quadratic", "logistic"], include="fc3.*")
        out = str(tmp_path / "fit.psnap")
        cli("fit", mlp, "-o", out, "--f64", "--family", "linear,quadratic,logistic", "--include", "fc3.*")
        with paramsnap.open(out) as cf:
            assert np.array_equal(f["values"]["fc3.weight"], np.asarray(cf["fc3.weight"]))
        c = run.chart(width=200, height=100)
        npy = str(tmp_path / "c.npy")
        cli("chart", mlp, "--counts", npy, "--width", "200", "--height", "100")
        assert np.array_equal(c["counts"], np.load(npy))
        with pytest.raises(paramsnap.Error, match="family"):
            run.fit(families=["cubic"])
        with pytest.raises(KeyError):
            run.modes(include="nothing.*")
