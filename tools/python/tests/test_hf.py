"""The Trainer callback driven through the TrainerCallback protocol by a small numpy training loop (the same calls
transformers.Trainer makes): the run holds a snapshot at the start, every N steps and at each epoch's end, with
step, epoch, loss and learning rate, and the values the model had then."""
import subprocess
import types

import numpy as np

import paramsnap
from conftest import psnap_binary
from paramsnap.hf import ParamSnapCallback
from safetensors_io import write_safetensors


class Param:
    def __init__(self, a, requires_grad=True):
        self.a, self.requires_grad = a, requires_grad

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


class Model:
    """A linear model y = W x + b trained by plain gradient descent; `named_parameters` as torch's."""

    def __init__(self, rng):
        self.W = Param(rng.normal(size=(3, 5)).astype(np.float32))
        self.b = Param(np.zeros(3, np.float32))
        self.scale = Param(np.ones(1, np.float32), requires_grad=False)

    def named_parameters(self):
        return [("W", self.W), ("b", self.b), ("scale", self.scale)]


def test_callback_protocol(tmp_path):
    rng = np.random.default_rng(0)
    model = Model(rng)
    X, true = rng.normal(size=(64, 5)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    Y = X @ true.T
    cb = ParamSnapCallback(str(tmp_path / "hf.psnap"), every=4, snapshots_per_segment=3)
    state = types.SimpleNamespace(global_step=0, epoch=0.0)
    args, control = object(), object()
    seen = {}
    dumps = tmp_path / "checkpoints"
    dumps.mkdir()

    def checkpoint():
        seen[state.global_step] = model.W.a.copy()
        write_safetensors(str(dumps / f"step-{state.global_step:04d}.safetensors"), {"W": model.W.a, "b": model.b.a}, {"step": state.global_step})

    cb.on_train_begin(args, state, control, model=model)
    checkpoint()
    lr, steps_per_epoch = 0.05, 8
    for epoch in range(2):
        for i in range(steps_per_epoch):
            xb, yb = X[i * 8:(i + 1) * 8], Y[i * 8:(i + 1) * 8]
            err = xb @ model.W.a.T + model.b.a - yb
            model.W.a = model.W.a - lr * (err.T @ xb) / len(xb)
            model.b.a = model.b.a - lr * err.mean(axis=0)
            state.global_step += 1
            state.epoch = epoch + (i + 1) / steps_per_epoch
            cb.on_log(args, state, control, logs={"loss": float((err ** 2).mean()), "learning_rate": lr})
            cb.on_step_end(args, state, control, model=model)
            if state.global_step % 4 == 0:
                checkpoint()
        cb.on_epoch_end(args, state, control, model=model)     # the same step as the last on_step_end: not twice
    cb.on_train_end(args, state, control, model=model)
    with paramsnap.open(tmp_path / "hf.psnap") as run:
        assert [t.name for t in run.tensors] == ["W", "b"]      # requires_grad=False left out
        assert list(run.steps) == sorted(seen)
        frame = run.snapshots
        assert np.allclose(frame["learning_rate"].iloc[1:], lr) and frame["loss"].iloc[-1] < frame["loss"].iloc[1]
        for k, step in enumerate(sorted(seen)):
            assert np.array_equal(run.snapshot(k)["W"], seen[step])
        # The same run converted from the checkpoints saved along the way: the same values, bit for bit.
        conv = str(tmp_path / "converted.psnap")
        subprocess.run([psnap_binary(), "convert", str(dumps), "-o", conv, "--quiet"], check=True)
        with paramsnap.open(conv) as c:
            assert list(c.steps) == list(run.steps)
            for t in ("W", "b"):
                assert np.array_equal(c.trajectories(t).view(np.uint32), run.trajectories(t).view(np.uint32))
