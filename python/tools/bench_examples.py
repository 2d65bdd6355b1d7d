"""TFX's usual Python path for tf.Example models, the baseline of dlflow's `examples` benchmark.

Loads the rows of an Arrow IPC file as Python rows (dicts, before timing: the baseline is not
charged for reading), loads the SavedModel with tf.saved_model.load, then per round: for each
batch, serializes one tf.train.Example per row (float, int64 and bytes lists; a null is left
out), calls the signature on the batch of protos and turns the outputs into numpy. Prints one
JSON line: {"rows": N, "seconds": [one per round], "peak_rss_mb": M}.

Usage: python bench_examples.py --data FILE.arrow --model DIR --signature serving_default
           --input inputs --batch-size 1024 --repeat 5
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pyarrow as pa  # noqa: E402
import tensorflow as tf  # noqa: E402


def load_rows(path):
    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    return table.to_pylist()


def feature(value):
    if isinstance(value, float):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))


def serialize(row):
    features = {name: feature(value) for name, value in row.items() if value is not None}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def run(rows, function, input_name, batch_size):
    for start in range(0, len(rows), batch_size):
        protos = [serialize(row) for row in rows[start : start + batch_size]]
        outputs = function(**{input_name: tf.constant(protos)})
        for value in outputs.values():
            value.numpy()


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--input", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rows = load_rows(args.data)
    function = tf.saved_model.load(args.model).signatures[args.signature]
    run(rows[: args.batch_size], function, args.input, args.batch_size)  # trace and warm up
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        run(rows, function, args.input, args.batch_size)
        seconds.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": len(rows), "seconds": seconds, "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main(sys.argv[1:])
