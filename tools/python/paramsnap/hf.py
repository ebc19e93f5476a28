"""`ParamSnapCallback`: snapshots of a Hugging Face `transformers.Trainer`'s model written into a .psnap run while it
trains (every `every` optimizer steps and/or at each epoch's end), with the step, the epoch, and the latest logged
loss and learning rate as the snapshot's metadata.

    from paramsnap.hf import ParamSnapCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[ParamSnapCallback("run.psnap", every=50)])
    trainer.train()

The callback follows the `TrainerCallback` protocol (on_log, on_step_end, on_epoch_end, on_train_end) and derives
from `transformers.TrainerCallback` when transformers is installed; only the parameters that require gradients are
kept unless `all_parameters=True` (buffers never: they are not trained).
"""
try:
    from transformers import TrainerCallback as _Base
except ImportError:                                  # usable (and testable) without transformers
    _Base = object

from .writer import Writer


class ParamSnapCallback(_Base):
    def __init__(self, path, every=None, on_epoch_end=True, memory="1GiB", snapshots_per_segment=16, all_parameters=False,
                 at_start=True, **writer_options):
        if every is not None and every < 1:
            raise ValueError(f"every={every}: at least 1 step")
        self.path, self.every, self.each_epoch, self.at_start = str(path), every, on_epoch_end, at_start
        self.all_parameters = all_parameters
        self._writer_args = dict(memory=memory, snapshots_per_segment=snapshots_per_segment, **writer_options)
        self.writer = None
        self._last_step = None
        self._logs = {}

    def _params(self, model):
        if self.all_parameters:
            return {n: p for n, p in model.named_parameters()}
        return {n: p for n, p in model.named_parameters() if getattr(p, "requires_grad", True)}

    def _snap(self, state, model):
        if model is None or state.global_step == self._last_step:
            return
        if self.writer is None:
            self.writer = Writer(self.path, **self._writer_args)
        meta = {k: v for k, v in self._logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.writer.append(self._params(model), step=state.global_step, epoch=state.epoch, metadata=meta)
        self._last_step = state.global_step

    # -- TrainerCallback protocol
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.at_start:
            self._snap(state, model)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        for k, v in (logs or {}).items():
            if k in ("loss", "learning_rate", "grad_norm", "eval_loss", "lr"):
                self._logs[k] = v
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._snap(state, model)
        return control

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.each_epoch:
            self._snap(state, model)
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._snap(state, model)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return control
