"""The Johnny example's classifier: 8x8 digit images -> the digit, trained by dlflow on the rows of
scikit-learn's digits (``$DLFLOW_DATA/digits.parquet``: id, pixels[64] in [0, 1], label).

The SavedModel takes what the camera sends: the image itself, PNG bytes, base64-encoded with the
web-safe alphabet (JSON cannot carry raw bytes). Decoding happens inside the graph, as the
Inception model of seed 003 takes JPEG bytes:

    serving_default   image: string [None] (base64url PNG)  ->  label: int64 [None], score: float [None]
    pixels            pixels: float [None, 64]              ->  label, score (the same network)

Train it with the command line (one worker, a few epochs, a few seconds after TensorFlow starts):

    dlflow train --input "$DLFLOW_DATA/digits.parquet" --entry examples/johnny/train.py:train_entry \
        --epochs 12 --property model_dir=/tmp/johnny-model
"""
import os
import tempfile

import tensorflow as tf

from dlflow import TFContext


def build_model():
    return tf.keras.Sequential([
        tf.keras.Input(shape=(64,), name="pixels"),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(10),
    ])


def decode_png(image):
    """One base64url PNG (8x8, 8-bit grey) -> its 64 pixels in [0, 1]."""
    png = tf.io.decode_base64(image)
    grey = tf.io.decode_png(png, channels=1)
    return tf.reshape(tf.cast(grey, tf.float32) / 255.0, [64])


def train_entry(context):
    ctx = TFContext(context)
    tf.keras.utils.set_random_seed(int(ctx.get_property("seed", "7")))
    model = build_model()
    model.compile(optimizer=tf.keras.optimizers.Adam(float(ctx.get_property("learning_rate", "0.01"))),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    dataset = ctx.get_tfdataset(features="pixels", label="label", batch_size=32)
    history = model.fit(dataset, epochs=ctx.get_epochs() or 1, verbose=2 if ctx.is_chief() else 0)
    ctx.report("trained", accuracy=float(history.history["accuracy"][-1]))

    def classify(pixels):
        probabilities = tf.nn.softmax(model(pixels), axis=-1)
        return {"label": tf.argmax(probabilities, axis=-1, output_type=tf.int64),
                "score": tf.reduce_max(probabilities, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
    def serve_png(image):
        pixels = tf.map_fn(decode_png, image, fn_output_signature=tf.TensorSpec([64], tf.float32))
        return classify(pixels)

    @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="pixels")])
    def serve_pixels(pixels):
        return classify(pixels)

    signatures = {"serving_default": serve_png, "pixels": serve_pixels}
    # Written next to the target and renamed into place: a half-written model is never seen.
    target = ctx.get_property("model_dir")
    if ctx.is_chief():
        parent = os.path.dirname(os.path.abspath(target))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".johnny-", dir=parent)
        tf.saved_model.save(model, staging, signatures=signatures)
        os.rename(staging, target)
