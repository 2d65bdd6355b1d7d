"""TensorBoard event files from a training entry: ``tensorboard_callback(context)``.

The chief (worker 0) writes the events; every other node gets a callback that does nothing, so
one list of callbacks serves every worker::

    from dlflow import TFContext, tensorboard_callback

    def train_entry(context):
        ctx = TFContext(context)
        ...
        model.fit(dataset, epochs=ctx.get_epochs(), callbacks=[tensorboard_callback(ctx)])

Where the events go: the ``log_dir`` argument, else the job's ``tensorboard_dir`` property,
else beside the model, ``<model_dir>.tensorboard`` (the ``model_dir`` property). ``dlflow train``
reads them at the end to draw the loss curve; ``dlflow tensorboard DIR`` shows them in
TensorBoard.
"""

# Keras's TensorBoard callback writes per-step scalars only every `update_freq` steps; dlflow's
# default keeps the per-step curve detailed without writing an event for every step.
DEFAULT_UPDATE_FREQ = 10


def tensorboard_dir(context):
    """Where this job's TensorBoard events go: the ``tensorboard_dir`` property, else
    ``<model_dir>.tensorboard`` (beside the model), else None."""
    from .context import TFContext

    ctx = context if isinstance(context, TFContext) else TFContext(context)
    explicit = ctx.get_property("tensorboard_dir")
    if explicit:
        return explicit
    model_dir = ctx.get_property("model_dir")
    if model_dir:
        # The same rule as dlflow_tensorboard::tensorboard_dir_for in Rust.
        return model_dir.rstrip("/") + ".tensorboard"
    return None


def tensorboard_callback(context, log_dir=None, update_freq=DEFAULT_UPDATE_FREQ, **kwargs):
    """A Keras callback that writes TensorBoard events on the chief, and does nothing elsewhere.

    ``context`` is the entry's context (or a ``TFContext``). The chief logs ``epoch_loss`` (and
    every metric) per epoch, and ``batch_loss`` every ``update_freq`` steps (``"epoch"`` for
    epochs only). Other keyword arguments go to ``tf.keras.callbacks.TensorBoard``.
    """
    import tensorflow as tf

    from .context import TFContext

    ctx = context if isinstance(context, TFContext) else TFContext(context)
    if not ctx.is_chief():
        # Under MultiWorkerMirroredStrategy every worker logs the same all-reduced numbers;
        # one copy of them is enough.
        return tf.keras.callbacks.Callback()
    directory = log_dir or tensorboard_dir(ctx)
    if not directory:
        raise ValueError("tensorboard_callback: no folder for the events: pass log_dir=..., or set the "
                         "'tensorboard_dir' (or 'model_dir') property of the job")
    kwargs.setdefault("write_graph", False)
    return _chief_callback_class(tf)(log_dir=directory, update_freq=update_freq, **kwargs)


_CLASS = None


def _chief_callback_class(tf):
    """tf.keras's TensorBoard callback, writing per-step summaries whenever ``update_freq`` asks.

    Keras 2 only calls a callback's batch hooks, where ``batch_*`` scalars are written, when it
    profiles or writes steps per second; this subclass asks for them whenever steps are logged.
    """
    global _CLASS
    if _CLASS is None:
        class ChiefTensorBoard(tf.keras.callbacks.TensorBoard):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._batches_seen = 0

            def _implements_train_batch_hooks(self):
                return self.update_freq != "epoch" or super()._implements_train_batch_hooks()

            def on_train_batch_end(self, batch, logs=None):
                # Writing a summary costs more than a small model's step: only every
                # `update_freq`-th batch does any work.
                self._batches_seen += 1
                if self.update_freq == "epoch" or self._batches_seen % self.update_freq:
                    if self._should_trace or self.write_steps_per_second:
                        super().on_train_batch_end(batch, logs)
                    return
                with tf.summary.record_if(True):
                    super().on_train_batch_end(batch, logs)

        _CLASS = ChiefTensorBoard
    return _CLASS
