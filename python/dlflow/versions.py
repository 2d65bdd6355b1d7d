"""Numbered model versions exported while training: ``TFContext.version_exporter(...)``.

Online training over an unbounded table makes one endless pass; a streaming reader
(``Model::load(BASE)``, ``dlflow predict --model BASE``) serves the newest version of a base
folder and switches when a higher one appears. The exporter writes those versions, in
TensorFlow Serving's layout (``BASE/1``, ``BASE/2``, ...)::

    exporter = ctx.version_exporter(model, "/models/online", every_steps=100, serve=serve)
    model.fit(dataset, epochs=ctx.get_epochs() or 1, callbacks=[exporter])

Each version is written into ``BASE/.tmp-N`` and renamed to ``BASE/N``: a reader never sees a
half-written folder (a name that is not a number is not a version). ``N`` is the highest
version already in BASE plus one, so a restarted job goes on numbering. When the pass ends (end
of input, or Ctrl-C, which ends a stream's input), the last steps are exported too.

Under ``MultiWorkerMirroredStrategy`` saving is a collective: every worker calls it, at the same
step, and only the chief keeps what it wrote. ``every_seconds`` is then agreed on by all the
workers at each step (an all-reduce of one number), so that they export together.

In a loop of your own, call ``exporter.step_done()`` after each step (it exports when due),
``exporter.export_now()`` to export at once, and ``exporter.finish()`` at the end.
"""

import os
import re
import shutil
import tempfile
import time

import tensorflow as tf

_VERSION = re.compile(r"^[0-9]+$")


def existing_versions(base):
    """The version numbers in ``base`` (folders named by a number), lowest first."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if _VERSION.match(n) and os.path.isdir(os.path.join(base, n)))


def _positive(name, value, kind):
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = 0
    if not number > 0:
        raise ValueError(f"dlflow: version_exporter {name}={value!r}: expected a positive number")
    return number


class VersionExporter(tf.keras.callbacks.Callback):
    """Exports numbered SavedModel versions of ``model`` into ``base``; see the module docs.

    ``serve`` is the ``serving_default`` signature (a ``tf.function`` with an input signature);
    without it the model's own default is saved. ``exported`` lists ``(version, path)`` of the
    versions this exporter wrote (on the chief).
    """

    def __init__(self, ctx, model, base, every_steps=None, every_seconds=None, serve=None):
        super().__init__()
        if not base:
            raise ValueError("dlflow: version_exporter needs the base folder of the versions (BASE/1, BASE/2, ...)")
        self._ctx = ctx
        self._exported_model = model
        self._base = os.fspath(base)
        self._every_steps = _positive("every_steps", every_steps, int)
        self._every_seconds = _positive("every_seconds", every_seconds, float)
        self._serve = serve
        self._chief = ctx.is_chief()
        self._workers = max(1, ctx.get_worker_count())
        # The batch hook reads no logs: no NumPy conversion (a sync) per step for it.
        self._supports_tf_logs = True
        self._steps_since_export = 0
        self._last_export = time.monotonic()
        self.exported = []
        if self._chief:
            os.makedirs(self._base, exist_ok=True)

    # -- Keras hooks -------------------------------------------------------------------
    def on_train_batch_end(self, batch, logs=None):
        self.step_done()

    def on_train_end(self, logs=None):
        self.finish()

    # -- for loops of one's own --------------------------------------------------------
    def step_done(self):
        """Counts one training step and exports a version when one is due; the version or None."""
        self._steps_since_export += 1
        due = self._every_steps is not None and self._steps_since_export >= self._every_steps
        if self._every_seconds is not None:
            # Steps agree across synchronous workers; the clocks do not: the workers agree.
            due = self._agree(due or time.monotonic() - self._last_export >= self._every_seconds)
        return self.export_now() if due else None

    def finish(self):
        """Exports the steps trained since the last version (if any): the end of the pass."""
        if self._steps_since_export > 0:
            return self.export_now()
        return None

    def export_now(self):
        """Exports a version now: its number on the chief, None on the other workers."""
        self._steps_since_export = 0
        self._last_export = time.monotonic()
        signatures = {"serving_default": self._serve} if self._serve is not None else None
        if not self._chief:
            # Saving is a collective under MultiWorkerMirroredStrategy: save, and throw away.
            scratch = tempfile.mkdtemp(prefix="dlflow-version-")
            try:
                tf.saved_model.save(self._exported_model, scratch, signatures=signatures)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return None
        version = max(existing_versions(self._base) + [v for v, _ in self.exported] + [0]) + 1
        staging = os.path.join(self._base, f".tmp-{version}")
        final = os.path.join(self._base, str(version))
        shutil.rmtree(staging, ignore_errors=True)  # left by a run that died while writing
        started = time.time()
        try:
            tf.saved_model.save(self._exported_model, staging, signatures=signatures)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        exported_at = time.time()
        self.exported.append((version, final))
        self._ctx.report("version_exported", version=version, path=final,
                         seconds=round(exported_at - started, 3), exported_at=exported_at)
        return version

    def _agree(self, due):
        """Whether any worker finds an export due (an all-reduce across workers; local with one)."""
        if self._workers <= 1:
            return due
        strategy = getattr(self._exported_model, "distribute_strategy", None) or tf.distribute.get_strategy()
        flag = tf.constant(1 if due else 0, tf.int32)
        summed = strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, flag))
        return int(strategy.experimental_local_results(summed)[0]) > 0
