"""`scripts/bench.sh training fit`: the model file both sides train, and the baseline, a user's
Keras script: the same Parquet rows read into NumPy, then `model.fit` on them.

    python fit_bench.py model OUT.h5
    python fit_bench.py keras ROWS.parquet MODEL.h5 EPOCHS BATCH

Keras 2 (tf_keras), as on dlflow's nodes; Keras's defaults otherwise (shuffled every epoch).
The Keras run prints `epoch N: SECONDS s` per epoch, as `dlflow fit` prints its epoch lines, and
`after the last epoch: SECONDS s`, the time from its last epoch to `fit`'s return.
"""
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402


def model(path):
    tf.keras.utils.set_random_seed(1)
    mlp = tf.keras.Sequential([
        tf.keras.Input(shape=(784,), name="pixels"),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10),
    ])
    mlp.save(path)


def keras(rows, model_path, epochs, batch):
    import pyarrow.parquet as pq

    table = pq.read_table(rows)
    pixels = table.column("pixels").combine_chunks()
    x = pixels.flatten().to_numpy().reshape(-1, pixels.type.list_size)
    y = table.column("label").to_numpy()
    mlp = tf.keras.models.load_model(model_path, compile=False)
    mlp.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    times = _EpochTimes()
    mlp.fit(x, y, batch_size=int(batch), epochs=int(epochs), verbose=0, callbacks=[times])
    # Keras's iterator over the NumPy rows has tf.data autotuning on, whose end can wait for
    # its optimizer's timer (decision 0014): reported apart, as it is not training throughput.
    print(f"after the last epoch: {time.perf_counter() - times.last_end:.4f} s", flush=True)


class _EpochTimes(tf.keras.callbacks.Callback):
    """Prints `epoch N: SECONDS s` after every epoch (the benchmark's in-run rate).

    An epoch is timed from the end of the one before (the start of training for the first),
    as `dlflow fit` times its epochs (from one epoch's end notice to the next): what Keras does
    between two epochs (the end-of-epoch logs, a new iterator) counts on both sides.
    """

    def on_train_begin(self, logs=None):
        self.last_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        print(f"epoch {epoch + 1}: {now - self.last_end:.4f} s", flush=True)
        self.last_end = now


if __name__ == "__main__":
    {"model": model, "keras": keras}[sys.argv[1]](*sys.argv[2:])
