"""Counts the rows each epoch brings to this worker and writes the counts to out_dir, with
whether tf.data autotuning is on in the datasets dlflow gave it (and in one made from them)."""
import json
import os

from dlflow import TFContext


def count_entry(context):
    ctx = TFContext(context)
    dataset = ctx.get_tfdataset()
    counts = []
    for _ in range(ctx.get_epochs() - 1):
        counts.append(sum(1 for _ in dataset))
    # The last epoch in batches of 64 rows, cut from the Arrow batches.
    batched = ctx.get_tfdataset(batch_size=64)
    sizes = [int(b["x"].shape[0]) for b in batched]
    if any(size != 64 for size in sizes[:-1]):
        raise AssertionError(f"batches of 64 expected, got {sizes}")
    counts.append(sum(sizes))
    after = sum(1 for _ in dataset)  # the input has ended: nothing more comes
    downstream = dataset.map(lambda row: row, num_parallel_calls=-1)  # -1: tf.data.AUTOTUNE
    # `enabled` is None where nobody set it, and tf.data then autotunes.
    autotune = [d.options().autotune.enabled is not False for d in (dataset, batched, downstream)]
    result = {"counts": counts, "after": after, "pid": os.getpid(), "attempt": ctx.get_attempt_index(),
              "autotune": autotune}
    with open(os.path.join(ctx.get_property("out_dir"), f"worker_{ctx.get_index()}.json"), "w") as f:
        json.dump(result, f)
