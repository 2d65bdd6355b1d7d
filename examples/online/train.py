"""Online training: one endless pass over an unbounded table, a model version exported as it learns.

dlflow calls ``train_entry(context)`` in the worker. The input is a stream of ``{"x", "y"}``
rows (``CREATE UNBOUNDED EXTERNAL TABLE ... LOCATION 'tcp://...'``): ``ctx.get_epochs()`` is None
and the dataset ends when the stream does (its producer closes it, or Ctrl-C stops it). Every
``every_steps`` steps (or ``every_seconds`` seconds) the model is exported as the next numbered
version of ``model_dir`` (``model_dir/1``, ``model_dir/2``, ...), which a streaming reader
(``Model::load(model_dir)``, ``dlflow predict --model model_dir``) picks up as it comes; the
last version is exported when the stream ends.

Properties: ``model_dir`` (the versions' base folder), ``every_steps`` (default 50),
``every_seconds`` (default none), ``batch_size`` (default 16), ``learning_rate`` (default 0.05).
"""
import tensorflow as tf

from dlflow import TFContext


def train_entry(context):
    ctx = TFContext(context)
    model = tf.keras.Sequential([tf.keras.Input(shape=(1,), name="x"), tf.keras.layers.Dense(1)])
    # Adam keeps adapting after the truth changes: the stream's concept drift is learned again.
    model.compile(optimizer=tf.keras.optimizers.Adam(float(ctx.get_property("learning_rate", "0.05"))), loss="mse")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x):
        return {"y": tf.squeeze(model(tf.expand_dims(x, -1)), -1)}

    every_seconds = ctx.get_property("every_seconds")
    exporter = ctx.version_exporter(model, ctx.get_property("model_dir"),
                                    every_steps=int(ctx.get_property("every_steps", "50")) if not every_seconds else None,
                                    every_seconds=float(every_seconds) if every_seconds else None, serve=serve)
    dataset = ctx.get_tfdataset(features="x", label="y", batch_size=int(ctx.get_property("batch_size", "16")))
    # One pass: until the stream ends (epochs is None for an unbounded input).
    model.fit(dataset, epochs=ctx.get_epochs() or 1, callbacks=[exporter], verbose=0)
