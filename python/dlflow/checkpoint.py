"""Checkpoints that make a training entry recoverable: ``TFContext.checkpoint(...)``.

When a node fails, dlflow stops every node and starts the cluster again with the attempt
index + 1. Each worker then restores its latest checkpoint here and tells dlflow how far it
had trained: the epoch, and how many of the rows dlflow had fed it in that epoch (in the
attempt that wrote the checkpoint). dlflow logged where every fed row came from, so it
replays exactly the rows after that point: none lost, none trained twice.

Each worker keeps its own checkpoints (``TFContext.get_checkpoint_dir()``); under
``MultiWorkerMirroredStrategy`` every worker saves at the same step (saving is collective),
so no shared file system is needed.
"""

import json
import os

import tensorflow as tf

_POSITION_SUFFIX = ".dlflow.json"


def _parse_every(value):
    """{"steps": n} or {"epochs": n} from the job's spec or from "100 steps" / "1 epoch"."""
    if isinstance(value, dict):
        return ("steps", int(value["steps"])) if "steps" in value else ("epochs", int(value.get("epochs", 1)))
    text = str(value).strip()
    number, _, unit = text.partition(" ")
    unit = unit.strip() or "steps"
    try:
        n = int(number)
    except ValueError:
        n = 0
    if n <= 0 or unit not in ("step", "steps", "epoch", "epochs"):
        raise ValueError(f"dlflow: checkpoint every {value!r}: expected a positive number of steps or epochs, "
                         "like '100 steps' or '1 epoch'")
    return ("steps" if unit.startswith("step") else "epochs", n)


class Checkpoints:
    """Restores the latest checkpoint, reports it to dlflow, and saves new ones."""

    def __init__(self, ctx, model_or_checkpoint, batch_size=None, every=None, max_to_keep=2):
        from .context import TFContext

        ctx = ctx if isinstance(ctx, TFContext) else TFContext(ctx)
        self._ctx = ctx
        context = ctx._context
        if isinstance(model_or_checkpoint, tf.train.Checkpoint):
            self._checkpoint = model_or_checkpoint
        else:
            parts = {"model": model_or_checkpoint}
            optimizer = getattr(model_or_checkpoint, "optimizer", None)
            if optimizer is not None:
                parts["optimizer"] = optimizer
            self._checkpoint = tf.train.Checkpoint(**parts)
        directory = ctx.get_checkpoint_dir() or ctx.get_property("checkpoint_dir")
        if not directory:
            raise RuntimeError("dlflow: this job has no checkpoint folder (set the checkpoint_dir property)")
        self._every = _parse_every(every if every is not None else context.spec.get("checkpoint_every", {"epochs": 1}))
        self._batch_size = batch_size or context._batch_size
        if self._every[0] == "steps" and not self._batch_size:
            raise ValueError("dlflow: checkpoints every few steps need the rows per step: give "
                             "get_tfdataset(batch_size=...) or checkpoint(..., batch_size=...)")
        self._manager = tf.train.CheckpointManager(self._checkpoint, directory, max_to_keep=max_to_keep)
        self._attempt = ctx.get_attempt_index()
        self._step = 0
        # dlflow picks the checkpoint to restore: the newest step that every worker has (a
        # failure while the workers save can leave one a checkpoint ahead of the others). An
        # empty list says "I checkpoint but have none yet", so that nobody restores: a worker
        # starting from scratch beside restored ones would not share their variables.
        available = self._available()
        context.send_position({"checkpoints": [p for _, p in available]})
        # The epoch dlflow's input starts at (the earliest any worker restored).
        self.initial_epoch = context.start_epoch()
        self.restored = self._restore(available, context._restore)
        if self.restored is not None:
            ctx.report("restored", **self.restored)

    def _available(self):
        """(path, position) of every complete checkpoint here, oldest first."""
        found = []
        for path in self._manager.checkpoints:
            if os.path.exists(path + _POSITION_SUFFIX):
                with open(path + _POSITION_SUFFIX, encoding="utf-8") as f:
                    found.append((path, json.load(f)))
        return found

    def _restore(self, available, chosen):
        if not chosen:
            return None
        for path, position in available:
            if position["step"] == chosen["step"]:
                self._checkpoint.restore(path)
                self._step = int(position["step"])
                return position
        raise RuntimeError(f"dlflow: asked to restore the checkpoint of step {chosen['step']}, which is not here")

    @property
    def step(self):
        """Training steps taken, over every attempt."""
        return self._step

    def save(self, epoch, rows):
        """Saves now: the first ``rows`` rows of ``epoch`` (as fed in this attempt) are trained."""
        position = {"attempt": self._attempt, "epoch": int(epoch), "rows": int(rows), "step": self._step}
        path = self._manager.save(checkpoint_number=self._step)
        # The position is written after the checkpoint: a checkpoint without one is not restored
        # (the one before it is), so a crash between the two loses work, never rows.
        tmp = path + _POSITION_SUFFIX + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(position, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path + _POSITION_SUFFIX)
        self._ctx.report("checkpoint", **position)

    def step_done(self, epoch, rows):
        """One training step is done; ``rows``: rows of this epoch trained so far in this run."""
        self._step += 1
        kind, n = self._every
        if kind == "steps" and self._step % n == 0:
            self.save(epoch, rows)

    def epoch_done(self, epoch):
        """Epoch ``epoch`` is trained."""
        kind, n = self._every
        if kind == "epochs" and (epoch + 1) % n == 0:
            self.save(epoch + 1, 0)

    def keras_callback(self):
        """A Keras callback that saves as ``every`` says (pass ``initial_epoch`` to ``fit`` too)."""
        checkpoints = self

        class _DlflowCheckpoint(tf.keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                # The batch hook reads no logs: without this, Keras converts every step's logs
                # to NumPy for it, which waits for each step to finish (a sync per step).
                self._supports_tf_logs = True

            def on_epoch_begin(self, epoch, logs=None):
                self._epoch = epoch
                self._rows = 0

            def on_train_batch_end(self, batch, logs=None):
                self._rows += checkpoints._batch_size or 0
                checkpoints.step_done(self._epoch, self._rows)

            def on_epoch_end(self, epoch, logs=None):
                checkpoints.epoch_done(epoch)

        return _DlflowCheckpoint()
