"""Keras model factories for the estimator tests."""
import tensorflow as tf


def linear():
    return tf.keras.Sequential([tf.keras.layers.Dense(1)])


def two_classes():
    return tf.keras.Sequential([tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(2)])


def raises():
    raise RuntimeError("no model today")
