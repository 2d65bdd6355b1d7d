"""Records the `id` of every row each epoch brings to this worker, in order, to out_dir.

It reads the Arrow batches as the dataset does, without TensorFlow: the tests that use it are
about which rows arrive, and a node without TensorFlow starts in a fraction of a second.
"""
import json
import os

from dlflow import TFContext


def record_entry(context):
    ctx = TFContext(context)
    epochs = []
    for _ in range(ctx.get_epochs()):
        ids = []
        for batch in context.next_epoch_batches():
            ids.extend(batch.column("id").to_pylist())
        epochs.append(ids)
    with open(os.path.join(ctx.get_property("out_dir"), f"worker_{ctx.get_index()}.json"), "w") as f:
        json.dump(epochs, f)
