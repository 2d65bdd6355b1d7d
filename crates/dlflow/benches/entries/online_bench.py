"""The entry of the `online` training benchmark: the online example's model (Dense(1), Adam,
batch 32) over the job's rows, one pass, timed from the end of the first step (its tracing cost
is the same either way) to the end of the pass; versions exported every ``every_steps`` steps
into ``model_dir`` when set (the last one after the timing)."""
import time

import tensorflow as tf

from dlflow import TFContext


class _Timer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps, self.started, self.ended = 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:
            self.started = time.perf_counter()

    def on_train_end(self, logs=None):
        self.ended = time.perf_counter()


def online_bench_entry(context):
    ctx = TFContext(context)
    batch_size = int(ctx.get_property("batch_size", "32"))
    model = tf.keras.Sequential([tf.keras.Input(shape=(1,), name="x"), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="mse")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x):
        return {"y": tf.squeeze(model(tf.expand_dims(x, -1)), -1)}

    timer = _Timer()
    callbacks = [timer]  # before the exporter: its last export is not timed
    if ctx.get_property("model_dir"):
        every = ctx.get_property("every_steps")
        callbacks.append(ctx.version_exporter(model, ctx.get_property("model_dir"),
                                              every_steps=int(every) if every else None, serve=serve))
    model.fit(ctx.get_tfdataset(features="x", label="y", batch_size=batch_size), epochs=ctx.get_epochs() or 1,
              callbacks=callbacks, verbose=0)
    ctx.report("online_bench", steps=timer.steps, rows=(timer.steps - 1) * batch_size,
               seconds=(timer.ended - timer.started) if timer.started else 0.0)
