"""Node entries for `scripts/bench.sh training`: each measures dlflow's feed and its baseline
in the same process, on the same rows, and reports both with `TFContext.report`."""
import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import tensorflow as tf

from dlflow import TFContext


def _rows(element):
    first = element[0] if isinstance(element, tuple) else next(iter(element.values()))
    return int(first.shape[0])


def _rate(dataset):
    """Rows/s through `dataset`, timed from its first element (start-up is measured apart)."""
    iterator = iter(dataset)
    rows = _rows(next(iterator))
    start = time.perf_counter()
    rows = 0
    for element in iterator:
        rows += _rows(element)
    return rows / (time.perf_counter() - start), rows


def _collect(context):
    """The next epoch's rows as NumPy columns (untimed: the baselines' preloaded input)."""
    batches = list(context.next_epoch_batches())
    table = pa.Table.from_batches(batches)
    columns = {}
    for field in table.schema:
        column = table.column(field.name).combine_chunks()
        if pa.types.is_fixed_size_list(field.type):
            columns[field.name] = column.flatten().to_numpy().reshape(-1, field.type.list_size)
        else:
            columns[field.name] = column.to_numpy()
    return columns


def feed_entry(context):
    """Epoch 0 through dlflow's tf.data dataset; epoch 1 collected; then the same rows through
    `tf.data.Dataset.from_tensor_slices` (in memory)."""
    ctx = TFContext(context)
    batch = int(ctx.get_property("batch_size", "1024"))
    dlflow_rate, rows = _rate(ctx.get_tfdataset().batch(batch))
    columns = _collect(context)
    memory_rate, _ = _rate(tf.data.Dataset.from_tensor_slices(columns).batch(batch))
    ctx.report("feed_bench", rows=rows, dlflow_rows_per_s=dlflow_rate, memory_rows_per_s=memory_rate)


class _EpochTimer(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.last = time.perf_counter() - self.start


def _mlp():
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(784,)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit_rate(fit, samples):
    """Samples/s of the second epoch of `fit` (the first traces the step function)."""
    timer = _EpochTimer()
    fit(timer)
    return samples / timer.last


def train_entry(context):
    """MLP 784-128-10, one worker: two epochs fed by dlflow, then the same rows preloaded in
    memory (Keras fit on NumPy arrays), then the seed's way: each row a CSV text line, decoded
    by tf.io.decode_csv after batching. The second epoch of each is timed."""
    ctx = TFContext(context)
    batch = int(ctx.get_property("batch_size", "256"))
    rows = int(ctx.get_property("rows"))
    dataset = ctx.get_tfdataset(features="pixels", label="label", batch_size=batch)
    dlflow_rate = _fit_rate(lambda cb: _mlp().fit(dataset, epochs=2, verbose=0, callbacks=[cb]), rows)

    columns = _collect(context)
    x, y = columns["pixels"].astype(np.float32), columns["label"]
    memory_rate = _fit_rate(lambda cb: _mlp().fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0,
                                                  callbacks=[cb]), rows)

    # The seed's feed: CSV text lines (made untimed, with Arrow's C++ CSV writer), parsed in TF.
    text_table = pa.table({**{f"p{i}": x[:, i] for i in range(784)}, "label": y})
    out = io.BytesIO()
    pacsv.write_csv(text_table, out, pacsv.WriteOptions(include_header=False))
    lines = out.getvalue().decode().splitlines()
    defaults = [[0.0]] * 784 + [[0]]

    def parse(line):
        fields = tf.io.decode_csv(line, record_defaults=defaults)
        return tf.stack(fields[:784], axis=1), fields[784]

    csv = tf.data.Dataset.from_tensor_slices(lines).batch(batch).map(parse).prefetch(tf.data.AUTOTUNE)
    csv_rate = _fit_rate(lambda cb: _mlp().fit(csv, epochs=2, verbose=0, callbacks=[cb]), rows)
    ctx.report("train_bench", rows=rows, dlflow_samples_per_s=dlflow_rate, memory_samples_per_s=memory_rate,
               csv_samples_per_s=csv_rate)


def first_batch_entry(context):
    """Start-up: the job ends as soon as the first batch has reached tf.data."""
    ctx = TFContext(context)
    next(iter(ctx.get_tfdataset()))
