"""A plain Python script doing what `dlflow predict --input IN --output OUT` does, the baseline of
the file-to-file inference benchmark (crates/dlflow/benches/inference_files.rs).

Written as a user would: pyarrow reads the Parquet file a batch at a time, the SavedModel's
serving signature runs on each batch of --batch-size rows, and pyarrow writes each output (a
fixed-size list column per output) next to the --keep columns to a Parquet file. Streaming,
so that its memory, like dlflow's, does not grow with the file.

Usage: python bench_predict_file.py --input IN.parquet --model DIR --column pixels \
           --output OUT.parquet [--keep id] [--batch-size 1024]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402


def column_matrix(batch, name):
    """A fixed-size list column as a (rows, width) float32 matrix, without copying if it can."""
    array = batch.column(name)
    width = array.type.list_size
    values = array.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(len(array), width)


def as_column(value):
    """A (rows, k) output as a fixed-size list column, a (rows,) output as a plain one."""
    if value.ndim == 1:
        return pa.array(value)
    flat = np.ascontiguousarray(value).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), value.shape[1])


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--column", required=True, help="the input column, fed to the signature input of that name")
    parser.add_argument("--output", required=True)
    parser.add_argument("--keep", action="append", default=[], help="an input column written next to the outputs")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args(argv)

    serve = tf.saved_model.load(args.model).signatures["serving_default"]
    source = pq.ParquetFile(args.input)
    writer = None
    rows = 0
    for batch in source.iter_batches(batch_size=args.batch_size, columns=[args.column, *args.keep]):
        outputs = serve(**{args.column: tf.constant(column_matrix(batch, args.column))})
        columns = {name: batch.column(name) for name in args.keep}
        columns.update({name: as_column(value.numpy()) for name, value in sorted(outputs.items())})
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(args.output, table.schema, compression="snappy")
        writer.write_table(table)
        rows += batch.num_rows
    if writer is not None:
        writer.close()
    print(f"{rows} rows")


if __name__ == "__main__":
    main(sys.argv[1:])
