"""Writing from a real PyTorch training loop and from a transformers.Trainer with the callback: the runs equal the
same checkpoints saved along the way and converted by `psnap convert`; a SIGKILL during training loses no committed
snapshot. Skipped when torch (or transformers) is not installed."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import paramsnap  # noqa: E402
from conftest import REPO, psnap_binary  # noqa: E402


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).to(dtype)


def _bits(t):
    return t.detach().contiguous().view(torch.int16 if t.dtype in (torch.bfloat16, torch.float16) else torch.int32).numpy()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_training_loop_equals_converted_checkpoints(tmp_path, dtype):
    from safetensors.torch import save_file
    dt = getattr(torch, dtype)
    model = _model(dt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    X, y = torch.randn(256, 8).to(dt), torch.randint(0, 2, (256,))
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    run = str(tmp_path / "run.psnap")
    loss = None
    with paramsnap.Writer(run, snapshots_per_segment=4) as w:
        for step in range(31):
            if step % 5 == 0:
                params = dict(model.named_parameters())
                w.append(params, step=step, metadata={"loss": 0.0 if loss is None else loss.item(), "lr": 1e-2})
                save_file({n: p.detach().clone() for n, p in params.items()}, str(ckpt / f"step-{step:03d}.safetensors"))
            i = (step * 32) % 256
            loss = torch.nn.functional.cross_entropy(model(X[i:i + 32]).float(), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    conv = str(tmp_path / "converted.psnap")
    subprocess.run([psnap_binary(), "convert", str(ckpt), "-o", conv, "--quiet"], check=True)
    with paramsnap.open(run, bf16="bits") as a, paramsnap.open(conv, bf16="bits") as b:
        assert list(a.steps) == list(b.steps) == list(range(0, 31, 5))
        assert sorted((t.name, t.dtype, t.shape) for t in a.tensors) == sorted((t.name, t.dtype, t.shape) for t in b.tensors)
        assert a.tensors[0].dtype == ("bf16" if dtype == "bfloat16" else "f32")
        for t in a.tensors:
            assert np.array_equal(a.trajectories(t.name), b.trajectories(t.name)), t.name
        # The last snapshot is the model as it was then (6 optimizer steps before the end: step 30).
        assert a.snapshots["loss"].iloc[-1] > 0
    with paramsnap.open(run, bf16="bits") as a:
        # As torch tensors: the model's parameters as they were at step 30 (the checkpoint saved then).
        from safetensors.torch import load_file
        last, saved = a.snapshot(-1, as_torch=True), load_file(str(ckpt / "step-030.safetensors"))
        assert set(last) == set(saved) == {n for n, _ in model.named_parameters()}
        for n in saved:
            assert last[n].dtype == dt and torch.equal(last[n], saved[n]), n


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import torch, paramsnap
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 64))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    w = paramsnap.Writer(sys.argv[1], snapshots_per_segment=1, memory="32MiB")
    step = 0
    while True:
        x = torch.randn(32, 64)
        loss = ((model(x) - x) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        w.append(dict(model.named_parameters()), step=step)
        total = sum(float(p.detach().double().sum()) for p in model.parameters())
        print("committed", step + 1, repr(total), flush=True)
        step += 1
""")


def test_sigkill_during_torch_training_loses_no_committed_snapshot(tmp_path):
    path = str(tmp_path / "k.psnap")
    p = subprocess.Popen([sys.executable, "-c", CHILD, path, os.path.join(REPO, "tools", "python")], stdout=subprocess.PIPE, text=True)
    sums = {}
    deadline = time.time() + 120
    while len(sums) < 6 and time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        _, n, total = line.split()
        sums[int(n)] = float(total)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert len(sums) >= 6, "the child did not train"
    with paramsnap.open(path) as r:
        assert r.snapshot_count >= max(sums)
        for n, total in sums.items():
            snap = r.snapshot(n - 1)
            assert sum(float(a.astype(np.float64).sum()) for a in snap.values()) == pytest.approx(total, rel=0, abs=1e-9)


def test_trainer_with_the_callback_equals_its_checkpoints(tmp_path):
    transformers = pytest.importorskip("transformers")
    from paramsnap.hf import ParamSnapCallback
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": torch.randint(0, 50, (16,), generator=g), "attention_mask": torch.ones(16, dtype=torch.long),
             "labels": torch.randint(0, 2, (), generator=g)} for _ in range(48)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=12, logging_steps=1,
                                          save_strategy="steps", save_steps=4, report_to=[], use_cpu=True,
                                          learning_rate=1e-3, disable_tqdm=True, seed=0)
    run = str(tmp_path / "hf.psnap")
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[ParamSnapCallback(run, every=4)])
    trainer.train()
    with paramsnap.open(run) as r:
        assert list(r.steps) == [0, 4, 8, 12]
        frame = r.snapshots
        assert frame["loss"].iloc[1:].notna().all() and frame["learning_rate"].iloc[1:].notna().all()
        # The Trainer's own checkpoints at steps 4, 8, 12, converted: the same values for every parameter.
        conv = str(tmp_path / "converted.psnap")
        subprocess.run([psnap_binary(), "convert", str(tmp_path / "out"), "-o", conv, "--quiet"], check=True)
        with paramsnap.open(conv) as c:
            assert list(c.steps) == [4, 8, 12]
            names = {t.name for t in c.tensors}
            for t in r.tensors:
                assert t.name in names, t.name
                assert np.array_equal(r.trajectories(t.name)[:, 1:].view(np.uint32), c.trajectories(t.name).view(np.uint32)), t.name
