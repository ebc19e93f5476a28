"""The analysis passes of a run, native (all cores, streaming): the methods `Run.modes`, `similar`, `moments`,
`groups`, `fit` and `chart`, each one request to the library's `psnap_pass` with the same options as the command."""
import fnmatch
import json
import os
import tempfile

import numpy as np

from . import _native
from ._native import UnknownTensorError, is_int

_INT_OPTIONS = {"k": (1, 1 << 20), "top": (1, 1 << 30), "iterations": (0, 1 << 20), "seed": (0, (1 << 64) - 1),
                "width": (1, 1 << 20), "height": (1, 1 << 20), "removeModes": (0, 1 << 20), "workers": (1, 1024)}


class Passes:
    # -- plumbing
    def _select(self, include):
        """Tensor names matching the glob(s) in `include` (None: every tensor)."""
        if include is None:
            return None
        pats = [include] if isinstance(include, str) else list(include)
        names = [t.name for t in self.tensors if any(fnmatch.fnmatchcase(t.name, p) for p in pats)]
        if not names:
            raise UnknownTensorError(f"no tensor matches {pats}")
        return names

    def _pass(self, request):
        """One request to the library, its options checked first; the answer's JSON."""
        for key, (lo, hi) in _INT_OPTIONS.items():
            v = request.get(key)
            if v is not None and (not is_int(v) or not lo <= int(v) <= hi):
                raise ValueError(f"{key}={v!r}: an integer in {lo} … {hi}")
            if v is not None:
                request[key] = int(v)
        if request.get("statistics") is not None and len(set(request["statistics"])) != len(request["statistics"]):
            raise ValueError(f"stats={request['statistics']}: a statistic named twice")
        for key in ("queries", "range"):
            v = request.get(key)
            if v is not None and not np.isfinite(np.asarray(v, dtype=np.float64)).all():
                raise ValueError(f"{key}: NaN or infinity (a query is a trajectory of finite values; a range is two finite numbers)")
        body = json.dumps({k: v for k, v in request.items() if v is not None}).encode()
        return _native.call_json(self._lib, self._lib.psnap_pass, self._handle(), body)

    def _file_pass(self, request, output):
        """A pass that writes a per-parameter file: at `output` (kept, returned opened), else at a temporary path read
        whole and removed: (answer, run of the file or None, {tensor: array (*shape, columns)} or None, column names)."""
        path = output
        if path is None:
            d = os.path.dirname(os.path.abspath(self.path))
            fd, path = tempfile.mkstemp(suffix=".psnap", dir=d if os.access(d, os.W_OK) else None)
            os.close(fd)
            os.remove(path)                    # the pass creates it; only the name is reserved
            request["overwrite"] = True
        answer = self._pass(dict(request, output=str(path)))
        if output is not None:
            return answer, type(self)(path), None, None
        try:
            with type(self)(path) as f:
                names = [(s.get("metadata") or {}).get("statistic", str(s["index"])) for s in f._info["snapshots"]]
                arrays = {t.name: np.asarray(f[t.name]).astype(np.float64, copy=False) for t in f.tensors}
        finally:
            if os.path.exists(path):
                os.remove(path)
        return answer, None, arrays, names

    # -- the passes
    def modes(self, k=5, on="values", include=None, workers=None):
        """The run's k principal trajectory modes (`psnap modes`): eigenvalues, explained variance ratios, modes (k × S)."""
        r = self._pass({"pass": "modes", "k": k, "on": on, "tensors": self._select(include), "workers": workers})
        return {"eigenvalues": np.array(r["eigenvalues"]), "explained_variance_ratio": np.array(r["explainedVarianceRatio"]),
                "modes": np.array(r["modes"]), "parameters": r["parameters"], "non_finite": r["nonFinite"], "on": r["view"]}

    def similar(self, query, top=50, on="values", include=None, remove_modes=0, workers=None):
        """The `top` parameters whose trajectories correlate best with `query` (`psnap similar`, exact Pearson r): a
        query is (tensor name, index tuple or flat index) or a trajectory of S values (on="steps" takes its steps); a
        list of queries gives a list of answers. Each answer: a pandas DataFrame (tensor, index, flat_index, r), else a
        list of dicts."""
        many, series = self._query_series(query)
        r = self._pass({"pass": "similar", "queries": series, "top": top, "on": on, "tensors": self._select(include),
                        "removeModes": remove_modes or None, "workers": workers})
        out = self._similar_answers(r["hits"])
        return out if many else out[0]

    def _query_series(self, query):
        """(whether `query` is a list of queries, each query as a list of S floats)."""
        many = isinstance(query, list) and query and not isinstance(query[0], (int, float, np.floating, np.integer))
        series = []
        for q in (query if many else [query]):
            if isinstance(q, tuple) and len(q) == 2 and isinstance(q[0], str):
                name, idx = q
                t = self._tensor(name)
                flat = int(np.ravel_multi_index(idx, t.shape)) if isinstance(idx, tuple) else int(idx)
                series.append(self.trajectories(name, flat, flat + 1)[0].astype(np.float64).tolist())
            else:
                series.append(np.asarray(q, dtype=np.float64).tolist())
        return many, series

    def _similar_answers(self, hit_lists):
        """The library's hits ({tensor, index, r} per query) as DataFrames (tensor, index, flat_index, r), else lists."""
        out = []
        for hits in hit_lists:
            rows = [{"tensor": h["tensor"], "index": tuple(int(i) for i in np.unravel_index(h["index"], self._tensor(h["tensor"]).shape)),
                     "flat_index": h["index"], "r": h["r"]} for h in hits]
            try:
                import pandas as pd
                out.append(pd.DataFrame(rows, columns=["tensor", "index", "flat_index", "r"]))
            except ImportError:
                out.append(rows)
        return out

    def moments(self, stats=None, include=None, output=None, overwrite=False, workers=None):
        """Per-parameter statistics of every trajectory (`psnap moments`, f64). With `output`, the file is kept and
        returned opened (lazy, for big runs); without, {statistic: {tensor: array of the tensor's shape}}."""
        r, kept, arrays, _ = self._file_pass({"pass": "moments", "statistics": list(stats) if stats else None,
                                              "tensors": self._select(include), "overwrite": overwrite, "workers": workers}, output)
        if kept is not None:
            return kept
        return {s: {t: a[..., i] for t, a in arrays.items()} for i, s in enumerate(r["statistics"])}

    def groups(self, k=16, on="values", include=None, iterations=25, seed=0, output=None, overwrite=False, workers=None):
        """k-means groups of trajectory shapes (`psnap groups`): centroids, sizes, rms distances, objective history,
        and, without `output`, each parameter's group and distance ({tensor: array}; −1 undefined, −2 NaN/inf). With
        `output` the per-parameter file is kept and returned opened as "run"."""
        r, kept, arrays, _ = self._file_pass({"pass": "groups", "k": k, "on": on, "tensors": self._select(include),
                                              "iterations": iterations, "seed": seed, "overwrite": overwrite, "workers": workers}, output)
        res = {"centroids": np.array(r["centroids"]), "sizes": np.array(r["sizes"]), "rms": np.array(r["rms"], dtype=float),
               "objective_history": np.array(r["objectiveHistory"]), "iterations": r["iterations"]}
        if kept is not None:
            res["run"] = kept
        else:
            res["group"] = {t: a[..., 0].astype(np.int64) for t, a in arrays.items()}
            res["distance"] = {t: a[..., 1] for t, a in arrays.items()}
        return res

    def fit(self, families=("linear", "quadratic", "modes:5"), on="values", include=None, output=None, overwrite=False, workers=None):
        """Laws fitted to every trajectory (`psnap fit`, f64): {"families", "best" counts, "series", "non_finite", "x",
        and, without `output`, "columns" and "values": {tensor: array (*shape, columns)}} (per family its coefficients,
        sse, r2, aic, bic; then best). With `output` the file is kept and returned opened as "run"."""
        r, kept, arrays, names = self._file_pass({"pass": "fit", "families": list(families), "on": on, "tensors": self._select(include),
                                                  "overwrite": overwrite, "workers": workers}, output)
        res = {"families": r["families"], "best": dict(zip(r["families"], r["best"])), "series": r["series"],
               "non_finite": r["nonFinite"], "x": np.array(r["x"])}
        if kept is not None:
            res["run"] = kept
        else:
            res["values"], res["columns"] = arrays, names
        return res

    def chart(self, view="values", width=1000, height=500, include=None, range=None, workers=None):
        """The density chart's counts (`psnap chart`, spec/CHARTS.md): {"counts": uint64 (height, width), row 0 the
        lowest values; "lo", "hi", "below", "above" per column, "steps" of the points, "series", "constant",
        "non_finite"}."""
        r = self._pass({"pass": "chart", "view": view, "width": width, "height": height, "tensors": self._select(include),
                        "range": list(range) if range is not None else None, "workers": workers})
        return {"counts": np.array(r["counts"], dtype=np.uint64).reshape(r["height"], r["width"]), "lo": r["lo"], "hi": r["hi"],
                "below": np.array(r["below"], dtype=np.uint64), "above": np.array(r["above"], dtype=np.uint64),
                "steps": np.array(r["pointSteps"]), "series": r["series"], "constant": r["constant"], "non_finite": r["nonFinite"]}
