"""Saves an MLP the way TensorFlow 2.16 and later do by default: a Keras 3 `.keras` file.

    python examples/estimator/keras3_model.py /tmp/mlp.keras

`dlflow fit --model-file /tmp/mlp.keras ...` then trains it: dlflow rebuilds it in Keras 2
(the nodes' Keras) from its config and weights before any node starts (docs/guide/estimator.md).
"""
import sys

import keras  # Keras 3, as `import tensorflow as tf; tf.keras` is without TF_USE_LEGACY_KERAS

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense(1),
])
model.save(sys.argv[1] if len(sys.argv) > 1 else "mlp.keras")
print(f"saved a Keras {keras.__version__} model to {sys.argv[1] if len(sys.argv) > 1 else 'mlp.keras'}")
