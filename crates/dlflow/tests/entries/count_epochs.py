"""Counts the rows each epoch brings to this worker and writes the counts to out_dir."""
import json
import os

from dlflow import TFContext


def count_entry(context):
    ctx = TFContext(context)
    dataset = ctx.get_tfdataset()
    counts = []
    for _ in range(ctx.get_epochs()):
        counts.append(sum(1 for _ in dataset))
    after = sum(1 for _ in dataset)  # the input has ended: nothing more comes
    result = {"counts": counts, "after": after, "pid": os.getpid(), "attempt": ctx.get_attempt_index()}
    with open(os.path.join(ctx.get_property("out_dir"), f"worker_{ctx.get_index()}.json"), "w") as f:
        json.dump(result, f)
