"""Rows (or whole Arrow batches) from a node back to dlflow, as Arrow, in batches."""

import pyarrow as pa

_FLUSH_ROWS = 4096


class RowWriter:
    """Writes rows of the job's declared output schema back to dlflow.

    ``write(row)`` takes a dict (by column name) or a tuple/list (in schema order);
    ``write_batch(batch)`` takes a ``pyarrow.RecordBatch`` or a dict of columns. Rows are
    sent in batches of 4096 and at the end of the entry; ``flush()`` sends them earlier.
    """

    def __init__(self, context, schema):
        if schema is None:
            raise RuntimeError("dlflow: this job has no output table (use inference(..., output_schema))")
        self._context = context
        self._schema = schema
        self._rows = []

    @property
    def schema(self):
        return self._schema

    def write(self, row):
        if not isinstance(row, dict):
            values = list(row)
            if len(values) != len(self._schema):
                raise ValueError(f"dlflow: a row has {len(values)} value(s), the output schema has "
                                 f"{len(self._schema)} column(s): {', '.join(self._schema.names)}")
            row = dict(zip(self._schema.names, values))
        self._rows.append(row)
        if len(self._rows) >= _FLUSH_ROWS:
            self.flush()

    def write_batch(self, batch):
        self.flush()
        if isinstance(batch, dict):
            batch = pa.RecordBatch.from_pydict(batch, schema=self._schema)
        elif batch.schema != self._schema:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(n).cast(self._schema.field(n).type) for n in self._schema.names],
                schema=self._schema)
        if batch.num_rows:
            self._context.send_batch(batch)

    def flush(self):
        if self._rows:
            rows, self._rows = self._rows, []
            self._context.send_batch(pa.RecordBatch.from_pylist(rows, schema=self._schema))

    # DL on Flink's writer is closed by the framework; so is this one.
    close = flush
