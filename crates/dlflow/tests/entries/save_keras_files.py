"""Saves the same small MLP (2 inputs -> 8 -> 1) the ways users do, for the estimator tests:

    python save_keras_files.py keras3 OUT_DIR     Keras 3 (TF 2.16+'s default): m3.keras, and
                                                  m3_custom.keras with a layer of its own
    python save_keras_files.py tf_keras OUT_DIR   Keras 2 (tf_keras): m2.keras and m2.h5

Next to each file, NAME.json holds the model's predictions for PROBE (what the fitted model must
reproduce when trained with a learning rate of 0).
"""
import json
import os
import sys

mode, out = sys.argv[1], sys.argv[2]
if mode == "tf_keras":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

PROBE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.25]], dtype=np.float32)


def mlp(seed):
    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(8, activation="relu"),
                                tf.keras.layers.Dense(1)])


def save(model, name):
    model.save(os.path.join(out, name))
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(model.predict(PROBE, verbose=0).reshape(-1).tolist(), f)


if mode == "keras3":
    import keras

    assert keras.__version__.startswith("3."), keras.__version__
    save(mlp(3), "m3.keras")

    @keras.saving.register_keras_serializable(package="tests")
    class Doubled(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    custom = mlp(4)
    custom.add(Doubled())
    save(custom, "m3_custom.keras")
else:
    save(mlp(5), "m2.keras")
    save(mlp(6), "m2.h5")
