"""The element type table: each Arrow type dlflow turns into tensors, with its TensorFlow dtype.

The Rust twin is `crates/dlflow-common/src/types.rs` (its module docs show the table); the test
`tables_agree` in dlflow-cluster compares the two. Change both together.
"""

import collections

import pyarrow as pa

ElementType = collections.namedtuple("ElementType", "arrow tf_name seed_name to_nodes number")

ELEMENT_TYPES = (
    ElementType(pa.float32(), "float32", "FLOAT_32", True, True),
    ElementType(pa.float64(), "float64", "FLOAT_64", True, True),
    ElementType(pa.int32(), "int32", "INT_32", True, True),
    ElementType(pa.int64(), "int64", "INT_64", True, True),
    ElementType(pa.bool_(), "bool", None, True, True),
    ElementType(pa.string(), "string", "STRING", True, False),
    ElementType(pa.large_string(), "string", "STRING", True, False),
    ElementType(pa.string_view(), "string", "STRING", True, False),
    ElementType(pa.binary(), "string", None, True, False),
    ElementType(pa.large_binary(), "string", None, True, False),
    ElementType(pa.uint8(), "uint8", None, False, False),
    ElementType(pa.int8(), "int8", None, False, False),
    ElementType(pa.int16(), "int16", None, False, False),
)

_BY_ARROW = {t.arrow: t for t in ELEMENT_TYPES}

# What training nodes take, in words, for error messages (the Rust side's TO_NODES_IN_WORDS).
TO_NODES_IN_WORDS = "FLOAT_32, FLOAT_64, INT_32, INT_64, STRING, BOOL, or a fixed-size list of numbers"


def element_of(arrow_type):
    """The row of a column's type, its items' for a fixed-size list of numbers; None otherwise."""
    if pa.types.is_fixed_size_list(arrow_type):
        item = _BY_ARROW.get(arrow_type.value_type)
        return item if item is not None and item.number else None
    return _BY_ARROW.get(arrow_type)


def as_schema():
    """The table as an Arrow schema, one field per row, for the cross-check with the Rust table."""
    return pa.schema([
        pa.field(f"{i}", t.arrow, metadata={"tf_name": t.tf_name, "seed_name": t.seed_name or "",
                                           "to_nodes": str(t.to_nodes).lower(), "number": str(t.number).lower()})
        for i, t in enumerate(ELEMENT_TYPES)
    ])
