"""TensorFlow's own batched inference, the baseline of dlflow's inference benchmark.

Loads the rows of an Arrow IPC file into memory (numpy), loads the SavedModel with
tf.saved_model.load, and times calling its serving signature batch after batch, outputs
converted to numpy (as dlflow converts them to Arrow). Prints one JSON line:
{"rows": N, "seconds": best, "rows_per_second": N / best}.

Usage: python bench_inference.py --data FILE.arrow --model DIR --column pixels --batch-size 1024 --repeat 3
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import tensorflow as tf  # noqa: E402


def load_column(path, column):
    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    array = table.column(column).combine_chunks()
    width = array.type.list_size
    values = array.values.to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.reshape(len(array), width))


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--column", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    x = load_column(args.data, args.column)
    serve = tf.saved_model.load(args.model).signatures["serving_default"]
    serve(**{args.column: tf.constant(x[: args.batch_size])})  # trace and warm up
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        for i in range(0, len(x), args.batch_size):
            outputs = serve(**{args.column: tf.constant(x[i : i + args.batch_size])})
            for value in outputs.values():
                value.numpy()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"rows": len(x), "seconds": best, "rows_per_second": len(x) / best}))


if __name__ == "__main__":
    main(sys.argv[1:])
