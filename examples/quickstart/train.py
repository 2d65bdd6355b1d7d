"""The seed's quick start entry: learn y = 2x + 1 on two workers with MultiWorkerMirroredStrategy.

dlflow calls ``train_entry(context)`` in every worker process. Each worker gets its own equal
share of the table's rows, one epoch per pass over ``get_tfdataset()``; the chief (worker 0)
saves the trained model as a SavedModel whose ``serving_default`` maps column ``x`` to ``y``,
and writes TensorBoard events beside it (``<model_dir>.tensorboard``), which ``dlflow train``
draws as the loss curve at the end. A killed or failing worker restarts the cluster from the
last checkpoint (every epoch by default; ``checkpoint_every`` in the job file), with the input
replayed from there.
"""
import os
import shutil
import tempfile

import tensorflow as tf

from dlflow import TFContext, tensorboard_callback


def train_entry(context):
    ctx = TFContext(context)
    ctx.export_tf_config()  # TF_CONFIG from the cluster spec dlflow handed out
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(1,), name="x"), tf.keras.layers.Dense(1)])
        model.compile(optimizer=tf.keras.optimizers.Adam(float(ctx.get_property("learning_rate", "0.1"))),
                      loss="mse")

    batch_size = int(ctx.get_property("batch_size", "32"))
    dataset = ctx.get_tfdataset(features="x", label="y", batch_size=batch_size)
    # Recovery-ready: after a failure dlflow restarts every worker (attempt + 1); each restores
    # its latest checkpoint here, and dlflow replays the rows from exactly where it was.
    checkpoints = ctx.checkpoint(model, batch_size=batch_size)
    model.fit(dataset, epochs=ctx.get_epochs(), initial_epoch=checkpoints.initial_epoch,
              callbacks=[checkpoints.keras_callback(), tensorboard_callback(ctx)], verbose=2 if ctx.is_chief() else 0)

    # Every worker saves (saving is a collective under this strategy); only the chief keeps it.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x):
        return {"y": tf.squeeze(model(tf.expand_dims(x, -1)), -1)}

    target = ctx.get_property("model_dir") if ctx.is_chief() else tempfile.mkdtemp(prefix="dlflow-worker-")
    tf.saved_model.save(model, target, signatures={"serving_default": serve})
    if not ctx.is_chief():
        shutil.rmtree(target, ignore_errors=True)
