"""The model of the seed's estimator example: one Dense unit, y = w1*x1 + w2*x2 + b."""
import tensorflow as tf


def build_model():
    return tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1)])
