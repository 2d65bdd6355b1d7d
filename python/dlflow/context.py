"""`Context` (what the node runner hands to the entry) and `TFContext` (the seed's API on it)."""

import json
import os
import queue
import time

from . import _protocol as proto


class Activity:
    """When the entry last took a batch or sent a notice (the heartbeat reports it).

    ``last`` is None until the entry first does either: its start-up (importing TensorFlow,
    building the model, the strategy's set-up) can take long on a busy machine and is not a
    freeze; the register and heartbeat timeouts cover a node that never gets there."""

    def __init__(self):
        self.last = None

    def touch(self):
        self.last = time.monotonic()

    def idle_ms(self):
        """Milliseconds since the entry last took a batch or sent a notice; 0 before its first."""
        last = self.last
        return 0 if last is None else int((time.monotonic() - last) * 1000)


class Context:
    """One node's view of the job. Made by the node runner; entries receive it."""

    def __init__(self, conn, spec, inbox, output_schema=None, activity=None):
        self._conn = conn
        self._spec = spec
        self._inbox = inbox  # frames from the feed: REPLAY, BATCH, EPOCH_END, INPUT_END
        self._output_schema = output_schema
        self._activity = activity or Activity()
        self._input_ended = not spec.get("has_input", False)
        self._epochs_read = 0
        self._first_batch_noticed = False
        self._writer = None
        self._position_sent = False
        self._start_epoch = None
        self._restore = None
        self._batch_size = None

    # -- replay ------------------------------------------------------------------------
    def send_position(self, position=None):
        """Tells dlflow which checkpoints this worker has (once per run):
        ``{"checkpoints": [{"attempt", "epoch", "rows", "step"}, ...]}``, or None for none.

        dlflow waits for every worker's, picks the one each restores (the first frame of the
        feed says which, see ``start_epoch``), then replays the input from there. Reading the
        input sends None if nothing was sent before.
        """
        if self._position_sent or not self._spec.get("has_input", False):
            return
        self._position_sent = True
        self._conn.send(proto.POSITION, position or {})

    def start_epoch(self):
        """The epoch the input starts at: 0, or after a restart the restored checkpoint's."""
        if self._start_epoch is None:
            if not self._spec.get("has_input", False):
                self._start_epoch = 0
                return 0
            self.send_position(None)
            kind, payload = self._inbox.get()
            if kind != proto.REPLAY:
                raise RuntimeError(f"dlflow: the feed began with frame kind {kind}, expected its start epoch")
            replay = json.loads(payload)
            self._activity.touch()
            self._start_epoch = int(replay["start_epoch"])
            self._restore = replay.get("restore")
            self._epochs_read = self._start_epoch
        return self._start_epoch

    # -- what the node is -------------------------------------------------------------
    @property
    def spec(self):
        return self._spec

    # -- the input, one epoch per call -----------------------------------------------
    def next_epoch_batches(self):
        """Yields the Arrow record batches of the next epoch, then returns at its end.

        Yields nothing once the input has ended (all epochs read).
        """
        if self._input_ended:
            return
        import pyarrow as pa

        self.start_epoch()
        rows = 0
        while True:
            kind, payload = self._inbox.get()
            if kind == proto.BATCH:
                reader = pa.ipc.open_stream(pa.py_buffer(payload))
                for batch in reader:
                    self._activity.touch()
                    if not self._first_batch_noticed:
                        self._first_batch_noticed = True
                        self.notice("first_batch")
                    rows += batch.num_rows
                    # Progress as the trainer takes rows (not as dlflow queues them).
                    self.notice("rows", rows=batch.num_rows)
                    yield batch
            elif kind == proto.EPOCH_END:
                self.notice("epoch_end", epoch=self._epochs_read, rows=rows)
                self._epochs_read += 1
                return
            elif kind == proto.INPUT_END:
                self._input_ended = True
                return
            else:
                raise RuntimeError(f"dlflow: unexpected frame kind {kind} from the coordinator")

    def notice(self, event, **fields):
        """Tells the coordinator something worth reporting (metrics, milestones)."""
        self._activity.touch()
        self._conn.send(proto.NOTICE, {"event": event, **fields})

    def send_batch(self, batch):
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as out:
            out.write_batch(batch)
        self._conn.send(proto.BATCH, sink.getvalue().to_pybytes())


class TFContext:
    """The TensorFlow view of a node's context, with the names of DL on Flink's `TFContext`.

    ``TFContext(context)`` accepts the context an entry receives (or another TFContext).
    """

    def __init__(self, context):
        if isinstance(context, TFContext):
            context = context._context
        if not isinstance(context, Context):
            raise TypeError(f"TFContext expects the context passed to the entry, got {type(context).__name__}")
        self._context = context
        self._spec = context.spec

    # -- cluster ------------------------------------------------------------------------
    def get_tf_cluster_config(self):
        """The TF cluster spec: ``{"worker": ["host:port", ...], "ps": [...]}``."""
        return dict(self._spec["cluster"])

    def get_node_type(self):
        """``"worker"`` or ``"ps"``."""
        return self._spec["node_type"]

    def get_index(self):
        """This node's index among the nodes of its type."""
        return self._spec["index"]

    def is_chief(self):
        """Worker 0 is the chief: it saves the model and writes summaries."""
        return self.get_node_type() == "worker" and self.get_index() == 0

    def get_attempt_index(self):
        """How many times the job was restarted before this attempt (0 on the first run)."""
        return self._spec.get("attempt", 0)

    def checkpoint(self, model_or_checkpoint, batch_size=None, every=None, max_to_keep=2):
        """Checkpoints for a job that survives failures: restores the latest one now (if any),
        tells dlflow how far it had trained so that the input is replayed from exactly there,
        and saves new ones as training goes.

        ``model_or_checkpoint`` is a Keras model (saved with its optimizer) or any
        ``tf.train.Checkpoint``. ``every`` ("100 steps", "1 epoch") defaults to the job's
        ``checkpoint_every``. Step checkpoints need the rows per step: ``batch_size`` here, or
        the one given to ``get_tfdataset(batch_size=...)``. With Keras::

            checkpoints = ctx.checkpoint(model, batch_size=32)
            model.fit(dataset, epochs=ctx.get_epochs(), initial_epoch=checkpoints.initial_epoch,
                      callbacks=[checkpoints.keras_callback()])

        In a loop of your own, call ``checkpoints.step_done(epoch, rows)`` after each step
        (``rows``: rows of this epoch trained so far) and ``checkpoints.epoch_done(epoch)``.
        """
        from .checkpoint import Checkpoints

        return Checkpoints(self, model_or_checkpoint, batch_size, every, max_to_keep)

    def version_exporter(self, model, base, every_steps=None, every_seconds=None, serve=None):
        """Exports numbered SavedModel versions of ``model`` into ``base`` while it trains
        (``BASE/1``, ``BASE/2``, ...), for a streaming reader that serves the newest one
        (``dlflow predict --model BASE``): online training over an unbounded table.

        A version every ``every_steps`` steps and/or every ``every_seconds`` seconds, and a last
        one when the pass ends (end of input; Ctrl-C ends a stream's input). Each is written
        into ``BASE/.tmp-N`` and renamed to ``BASE/N``, so readers never see half a version.
        ``serve`` is the ``serving_default`` signature. The result is a Keras callback::

            exporter = ctx.version_exporter(model, ctx.get_property("model_dir"), every_steps=50, serve=serve)
            model.fit(dataset, epochs=ctx.get_epochs() or 1, callbacks=[exporter])

        In a loop of your own: ``exporter.step_done()`` after each step, ``exporter.export_now()``
        to export at once, ``exporter.finish()`` at the end. Every worker calls it (saving is a
        collective under ``MultiWorkerMirroredStrategy``); only the chief keeps the versions.
        """
        from .versions import VersionExporter

        return VersionExporter(self, model, base, every_steps=every_steps, every_seconds=every_seconds, serve=serve)

    def get_checkpoint_dir(self):
        """This node's own checkpoint folder (kept by dlflow until the job succeeds)."""
        return self._spec.get("checkpoint_dir")

    def get_worker_count(self):
        return len(self._spec["cluster"].get("worker", []))

    def export_tf_config(self):
        """Sets ``TF_CONFIG`` for ``tf.distribute`` from the cluster spec and this node's task."""
        tf_config = {"cluster": self.get_tf_cluster_config(),
                     "task": {"type": self.get_node_type(), "index": self.get_index()}}
        os.environ["TF_CONFIG"] = json.dumps(tf_config)
        return tf_config

    # -- properties -----------------------------------------------------------------------
    def get_property(self, key, default=None):
        """A property set on the cluster config (``TfClusterConfig::property``)."""
        return self._spec["properties"].get(key, default)

    def get_properties(self):
        return dict(self._spec["properties"])

    def get_epochs(self):
        """How many passes over the input this job makes: the ``epochs`` of ``train``.

        ``None`` for an unbounded input (one pass until it ends) or a job without input.
        """
        return self._spec.get("epochs")

    # -- data -------------------------------------------------------------------------------
    def get_input_schema(self):
        """The input rows' Arrow schema (``pyarrow.Schema``), or None for a job without input."""
        schema = self._spec.get("input_schema")
        if schema is None:
            return None
        import pyarrow as pa

        return pa.ipc.open_stream(pa.py_buffer(bytes.fromhex(schema))).schema

    def get_tfdataset(self, features=None, label=None, batch_size=None):
        """This worker's rows as a ``tf.data.Dataset`` of typed tensors, one element per row.

        With ``batch_size``, elements are batches of that many rows (the last one of an epoch
        may be smaller), cut from the Arrow batches directly: the same as ``.batch(batch_size)``
        on the row dataset, several times faster for wide rows.

        Each iteration over the dataset reads the next epoch of the input, so
        ``model.fit(ds.batch(32), epochs=ctx.get_epochs())`` sees every epoch once.

        Elements are a dict ``{column: tensor}``; with ``features`` (a column name or a list)
        and ``label`` they are ``(features, label)`` tuples ready for Keras. The dataset's
        auto-sharding is off: dlflow already gave this worker its own equal share.
        """
        from .dataset import epoch_dataset

        if self._spec.get("input_schema") is None:
            raise RuntimeError("dlflow: this job has no input table; the entry reads its own data")
        if batch_size:
            self._context._batch_size = int(batch_size)
        return epoch_dataset(self._context, self.get_input_schema(), features, label, batch_size)

    def get_row_writer(self):
        """A writer for rows back to dlflow: the output table of ``inference``."""
        from .writer import RowWriter

        if self._context._writer is None:
            self._context._writer = RowWriter(self._context, self._context._output_schema)
        return self._context._writer

    def report(self, event, **fields):
        """Sends a notice to the job (for example per-epoch metrics) for its progress and report."""
        self._context.notice(event, **fields)

    # DL on Flink's names, so that ported entries run unchanged.
    get_tfdataset_from_flink = get_tfdataset
    get_row_writer_to_flink = get_row_writer


def inbox(maxsize):
    """The bounded queue between the connection's reader thread and the dataset.

    Bounded on purpose: when it is full the reader stops reading, the socket fills, and
    the engine stops feeding this node (back-pressure instead of memory growth).
    """
    return queue.Queue(maxsize=maxsize)
