"""The Python side of dlflow: what a training or inference node's entry function sees.

dlflow starts one Python process per node (worker or parameter server) and calls the
configured entry, `entry(context)`, in it. Wrap the context in :class:`TFContext` to read
the cluster spec, the node's rows as a ``tf.data.Dataset``, and to write rows back::

    from dlflow import TFContext

    def train_entry(context):
        ctx = TFContext(context)
        ctx.export_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        ...
        model.fit(ctx.get_tfdataset(features=["x"], label="y").batch(32),
                  epochs=ctx.get_epochs())

For a job that survives failures, ``ctx.checkpoint(model, batch_size=...)`` restores the latest
checkpoint after a restart and saves new ones; dlflow then replays the input from exactly there.

Nodes find this package on their ``PYTHONPATH``; nothing needs installing.
"""

from .context import Context, TFContext
from .errors import JobError
from ._tensorboard import tensorboard_callback
from .writer import RowWriter

__all__ = ["Context", "TFContext", "JobError", "RowWriter", "tensorboard_callback"]
