"""The estimator's training and validation rows as ``tf.data`` datasets.

Three ways in, all batched per worker and already in the model's input form (``to_inputs``):

- ``streaming``: every epoch as the job streams it (the table read again each epoch, in its own
  order; bounded memory);
- ``Share``: the job's single pass kept in memory as tensors, every epoch in the seeded order
  ``epoch_order(seed, epoch, rows)``, batches gathered as Keras gathers NumPy arrays (nothing
  read or sent again between epochs);
- ``from_rows``: validation rows from a ``pyarrow.Table``.

``RowNotices`` sends the progress notices the job's feed sends while streaming (``rows``,
``epoch_end``) when the rows come from memory instead.
"""

import threading

import numpy as np
import pyarrow as pa
import tensorflow as tf

from dlflow.dataset import _to_numpy, epoch_order, with_dlflow_options


def streaming(ctx, to_inputs, label_col, label_dtype, batch_size):
    """Every epoch's rows as the job streams them, in batches of `batch_size` rows."""
    # Batch first, then map: the adapter works on whole batches (the same function serves the
    # SavedModel), and one map call per batch is cheaper than one per row.
    return (ctx.get_tfdataset(batch_size=batch_size)
            .map(lambda batch: (to_inputs(batch), tf.cast(batch[label_col], label_dtype)),
                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


class Share:
    """This worker's rows, read once from the job and held as the model's inputs and labels."""

    def __init__(self, inputs, labels):
        self.inputs, self.labels = inputs, labels
        self.rows = int(labels.shape[0])

    @classmethod
    def read(cls, context, schema, to_inputs, label_col, label_dtype):
        """The job's single pass: this worker's share, as `to_inputs` makes the model's input."""
        batches = list(context.next_epoch_batches())
        table = pa.Table.from_batches(batches, schema=schema)
        del batches
        columns = {name: tf.constant(_to_numpy(table.column(name), table.schema.field(name)))
                   for name in table.schema.names}
        del table  # the tensors are copies: the Arrow buffers go
        share = cls(to_inputs(columns), tf.cast(columns[label_col], label_dtype))
        if share.rows == 0:
            raise ValueError("this worker's share of the rows is empty: the table has fewer rows than workers")
        return share

    def steps(self, batch_size):
        return -(-self.rows // batch_size)

    def dataset(self, seed, epochs, batch_size):
        """Batches of every epoch in turn, epoch e in the order epoch_order(seed, e, rows).

        Gathered from the tensors in memory, like Keras's own NumPy input: one index vector
        per epoch, one gather per batch, no copy of the rows between epochs.
        """
        rows, steps = self.rows, self.steps(batch_size)

        def order(epoch):
            return epoch_order(seed, int(epoch), rows).astype(np.int64)

        def epoch_batches(epoch):
            indices = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
            indices.set_shape([rows])
            return tf.data.Dataset.range(steps).map(
                lambda step: indices[step * batch_size:tf.minimum((step + 1) * batch_size, rows)])

        batches = tf.data.Dataset.range(epochs).flat_map(epoch_batches)
        data = tf.data.Dataset.from_tensors((self.inputs, self.labels)).repeat()

        def gather(indices, data):
            inputs, labels = data
            return tf.nest.map_structure(lambda t: tf.gather(t, indices), inputs), tf.gather(labels, indices)

        dataset = tf.data.Dataset.zip((batches, data)).map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                                                            deterministic=True)
        return with_dlflow_options(dataset).prefetch(tf.data.AUTOTUNE)


class RowNotices(tf.keras.callbacks.Callback):
    """Training from memory: ``rows`` as batches are trained (a few times a second) and
    ``epoch_end`` per epoch, as the job's feed sends them while streaming.

    No batch hook: once any callback has one, Keras runs Python between every two steps, and
    with TensorFlow idle meanwhile that cost a small model about a tenth of its speed (decision
    0008). A thread reads the optimizer's step count instead, every ``every`` seconds, and
    reports only when it moved (a stalled step loop sends nothing, as a stalled feed would).
    """

    def __init__(self, ctx, rows, batch_size, every=0.2):
        super().__init__()
        self._ctx, self._rows, self._batch, self._every = ctx, rows, batch_size, every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._epoch_first_step = 0
        self._reported = 0  # rows of the current epoch reported so far

    def on_train_begin(self, logs=None):
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="dlflow-row-notices")
        self._thread.start()

    def on_epoch_begin(self, epoch, logs=None):
        with self._lock:
            self._epoch_first_step, self._reported = self._step(), 0

    def on_epoch_end(self, epoch, logs=None):
        with self._lock:
            done = self._report_progress()
        self._ctx.report("epoch_end", epoch=int(epoch), rows=done)

    def on_train_end(self, logs=None):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def _report_progress(self):
        """Sends the rows trained since the last notice (under the lock); the epoch's rows so far."""
        done = min(self._rows, (self._step() - self._epoch_first_step) * self._batch)
        if done > self._reported:
            self._ctx.report("rows", rows=done - self._reported)
            self._reported = done
        return done

    def _poll(self):
        while not self._stop.wait(self._every):
            try:
                with self._lock:
                    self._report_progress()
            except Exception:  # training failed and the process is going down: its error is reported
                return


def from_rows(table, to_inputs, label_col, label_dtype, batch_size):
    """Validation rows (a ``pyarrow.Table`` with the feature and label columns) in batches."""
    columns = {name: _to_numpy(table.column(name), table.schema.field(name)) for name in table.schema.names}
    dataset = (tf.data.Dataset.from_tensor_slices(columns).batch(batch_size)
               .map(lambda batch: (to_inputs(batch), tf.cast(batch[label_col], label_dtype))))
    return with_dlflow_options(dataset).prefetch(tf.data.AUTOTUNE)
