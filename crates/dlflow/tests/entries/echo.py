"""Rows in, the same rows out: every column through tf.data and back through the row writer."""
import numpy as np
import pyarrow as pa

from dlflow import TFContext


def _column(values, field):
    t = field.type
    if pa.types.is_string(t):
        return pa.array([v.decode() for v in values], type=t)
    if pa.types.is_fixed_size_list(t):
        flat = pa.array(np.asarray(values).reshape(-1), type=t.value_type)
        return pa.FixedSizeListArray.from_arrays(flat, type=t)
    return pa.array(np.asarray(values), type=t)


def echo_entry(context):
    ctx = TFContext(context)
    schema = ctx.get_input_schema()
    writer = ctx.get_row_writer()
    for batch in ctx.get_tfdataset().batch(100):
        columns = [_column(batch[f.name].numpy(), f) for f in schema]
        writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=writer.schema))
