"""The MLP 784-128-10 trained with MultiWorkerMirroredStrategy on dlflow's rows, for the cluster
benchmarks: prints the second epoch's samples/s (chief) as `BENCH samples_per_s=...`.

Properties: batch_size (256), checkpoints ("on": TFContext.checkpoint with the job's
checkpoint_every; "off": none).
"""
import time

import tensorflow as tf

from dlflow import TFContext


class _EpochTimer(tf.keras.callbacks.Callback):
    def __init__(self, ctx, batch_size):
        super().__init__()
        self._ctx = ctx
        self._batch_size = batch_size
        self._started = None
        self._steps = 0
        # Reads no logs: Keras need not sync every step for this timer.
        self._supports_tf_logs = True

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        workers = self._ctx.get_worker_count()
        if self._ctx.is_chief():
            rate = self._steps * self._batch_size * workers / seconds
            print(f"BENCH epoch={epoch} samples_per_s={rate:.0f}", flush=True)


def mlp_entry(context):
    ctx = TFContext(context)
    ctx.export_tf_config()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    batch_size = int(ctx.get_property("batch_size", "256"))
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.Input(shape=(784,), name="pixels"),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(10),
        ])
        model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = ctx.get_tfdataset(features="pixels", label="label", batch_size=batch_size)
    callbacks = []
    initial_epoch = 0
    if ctx.get_property("checkpoints", "on") == "on":
        checkpoints = ctx.checkpoint(model, batch_size=batch_size)
        # Before the timer: the epoch's time includes the checkpoint saved at its end.
        callbacks.append(checkpoints.keras_callback())
        initial_epoch = checkpoints.initial_epoch
    callbacks.append(_EpochTimer(ctx, batch_size))
    model.fit(dataset, epochs=ctx.get_epochs(), initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)
