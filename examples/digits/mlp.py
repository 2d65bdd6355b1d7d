"""The classifier of the digits example: 64 pixels -> 64 ReLU units -> 10 class scores."""
import tensorflow as tf


def build_model():
    return tf.keras.Sequential([
        tf.keras.Input(shape=(64,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(10),
    ])
