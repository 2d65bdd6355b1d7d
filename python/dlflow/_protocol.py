"""The wire protocol between a dlflow node and its coordinator (the Rust side).

Two TCP connections per node: control to the coordinator (process 0 of the job), and the
feed from the dlflow process on the node's own host (rows, epoch ends). Every message is a frame:

    kind: u8 | length: u32 little-endian | payload: `length` bytes

JSON payloads are UTF-8; Arrow payloads are a whole Arrow IPC stream (schema, batches,
end-of-stream), which pyarrow reads without a copy. The Rust twin of this file is
`crates/dlflow-cluster/src/protocol.rs`: change both together (the test `tables_agree` compares
their frame kinds and limits).
"""

import json
import struct
import threading

# node -> coordinator
HELLO = 1        # JSON {token, node_type, index, port, pid}
HEARTBEAT = 7    # empty: the node process is alive
DONE = 8         # empty: the entry returned
FAILED = 9       # JSON {error, traceback}
NOTICE = 11      # JSON {event, ...}: first batch, per-epoch metrics
POSITION = 12    # JSON {attempt, epoch, rows, step} or {}: where the restored checkpoint had trained to
FEED_HELLO = 14  # JSON {token, node_type, index}: opens the feed from the node's own dlflow process
# coordinator -> node
SPEC = 2         # JSON: the cluster spec, this node's task, properties, epochs, input
EPOCH_END = 5    # JSON {epoch, rows, dropped}: the current epoch has no more rows for this node
INPUT_END = 6    # empty: no more epochs
OUTPUT_SCHEMA = 10  # Arrow IPC stream with no batches: the declared output schema
REPLAY = 13      # JSON {start_epoch}: first frame of the feed, the epoch the input starts at
STACK = 15       # empty: send your Python stack (a "stack" notice); the node seems frozen
# both ways
BATCH = 4        # Arrow IPC stream with the rows

# The largest payload either side writes or reads (the Rust twin's MAX_FRAME).
MAX_FRAME = 1 << 30

_HEADER = struct.Struct("<BI")


class Connection:
    """A framed, thread-safe connection: one reader thread, any number of writers."""

    def __init__(self, sock):
        self._sock = sock
        self._file = sock.makefile("rb", buffering=1 << 20)
        self._write_lock = threading.Lock()

    def send(self, kind, payload=b""):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        if len(payload) > MAX_FRAME:
            raise ValueError(f"dlflow: a frame of {len(payload)} bytes is over the protocol's limit of "
                             f"{MAX_FRAME} bytes; write fewer rows at a time")
        header = _HEADER.pack(kind, len(payload))
        with self._write_lock:
            self._sock.sendall(header)
            if payload:
                self._sock.sendall(payload)

    def receive(self):
        """The next frame as (kind, payload bytes), or None when the coordinator has gone."""
        header = self._file.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        kind, length = _HEADER.unpack(header)
        if length > MAX_FRAME:
            raise ConnectionError(f"dlflow: a frame of {length} bytes is over the protocol's limit of {MAX_FRAME} bytes")
        payload = self._file.read(length) if length else b""
        if len(payload) < length:
            return None
        return kind, payload
