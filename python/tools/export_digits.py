"""Writes scikit-learn's bundled 8x8 digits (1797 images, shipped in the wheel, no download) as
Parquet: `id` (int64), `pixels` (64 float32 values in [0, 1]), `label` (int64, 0-9)."""
import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    digits = load_digits()
    pixels = (digits.data / 16.0).astype(np.float32)
    item = pa.field("item", pa.float32(), nullable=False)
    table = pa.table({
        "id": pa.array(np.arange(len(pixels), dtype=np.int64)),
        "pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), type=pa.list_(item, 64)),
        "label": pa.array(digits.target.astype(np.int64)),
    })
    pq.write_table(table, out)


if __name__ == "__main__":
    main()
