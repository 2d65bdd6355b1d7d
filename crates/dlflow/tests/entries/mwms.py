"""Keras fit under MultiWorkerMirroredStrategy: the shares must give every worker equal steps."""
import json
import os

import tensorflow as tf

from dlflow import TFContext


def mwms_entry(context):
    ctx = TFContext(context)
    ctx.export_tf_config()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(1,)), tf.keras.layers.Dense(1)])
        model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
    history = model.fit(ctx.get_tfdataset(features="x", label="y").batch(int(ctx.get_property("batch", "16"))),
                        epochs=ctx.get_epochs(), verbose=0)
    with open(os.path.join(ctx.get_property("out_dir"), f"worker_{ctx.get_index()}.json"), "w") as f:
        json.dump({"epochs": len(history.history["loss"]), "pid": os.getpid()}, f)
