"""The node runner: ``python -m dlflow._node``, started by dlflow's coordinator.

It registers with the coordinator, receives the cluster spec, imports the configured entry
and calls ``entry(context)``. Everything it needs comes from the environment:

    DLFLOW_COORDINATOR  host:port of the coordinator (on process 0 of the job)
    DLFLOW_FEED         host:port of the dlflow process that feeds this node its rows
    DLFLOW_NODE_HOST    this host: where the node's TF server listens
    DLFLOW_TOKEN        the attempt's token (a stray or stale node cannot join the job)
    DLFLOW_NODE_TYPE    worker | ps
    DLFLOW_NODE_INDEX   index among the nodes of that type
    DLFLOW_ENTRY_FILE   the Python file with the entry
    DLFLOW_ENTRY_FUNC   the entry function's name
    DLFLOW_HEARTBEAT_MS how often to tell the coordinator this process is alive
    DLFLOW_PREFETCH     how many frames to read ahead of the dataset

The node exits with ``os._exit`` once it has reported: TensorFlow's own teardown can hang
on collective threads, and nothing is left to flush by then.
"""

import importlib.util
import json
import os
import socket
import sys
import threading
import time
import traceback

from . import _protocol as proto
from .context import Activity, Context, inbox
from .errors import JobError


def _die_with_parent():
    """Linux: ask for SIGKILL when the coordinator's process dies, so no node is orphaned."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # not Linux: the closed socket below still ends the node
        pass


def _free_port(host):
    """A port for this node's TF server: bound and released here, used by TF right after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _load_entry(path, name):
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    if spec is None or spec.loader is None:
        raise ImportError(f"dlflow: cannot import the entry file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    entry = getattr(module, name, None)
    if entry is None or not callable(entry):
        raise AttributeError(f"dlflow: {path} has no function '{name}'")
    return entry


def _heartbeat(conn, period, box, activity):
    """Proves the process lives, and says whether its main thread keeps up: frames waiting in
    the inbox, and how long since the entry last took a batch or sent a notice."""
    event = threading.Event()
    while not event.wait(period):
        idle_ms = activity.idle_ms()
        try:
            conn.send(proto.HEARTBEAT, {"pending": box.qsize(), "idle_ms": idle_ms})
        except OSError:
            os._exit(3)  # the coordinator is gone


def _read_input(conn, box):
    """Moves frames from the feed into the bounded inbox; the feeding process leaving ends the node."""
    while True:
        frame = conn.receive()
        if frame is None:
            os._exit(3)
        box.put(frame)


def _python_stack():
    """Every thread's Python stack, as faulthandler prints it."""
    import faulthandler
    import tempfile

    with tempfile.TemporaryFile(mode="w+") as f:
        faulthandler.dump_traceback(file=f, all_threads=True)
        f.seek(0)
        return f.read()


def _read_control(conn):
    """Requests from the coordinator after the spec; the coordinator leaving ends the node."""
    while True:
        frame = conn.receive()
        if frame is None:
            os._exit(3)
        if frame[0] == proto.STACK:
            conn.send(proto.NOTICE, {"event": "stack", "stack": _python_stack()})


def _open_feed(node_type, index):
    host, port = os.environ["DLFLOW_FEED"].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    feed = proto.Connection(sock)
    feed.send(proto.FEED_HELLO, {"token": os.environ["DLFLOW_TOKEN"], "node_type": node_type, "index": index})
    return feed


def _fail(conn, error, final=False):
    """Reports the entry's exception with its traceback, then ends the node. A ``final`` error
    (the entry cannot be loaded, or raised :class:`JobError`) ends the job without a restart."""
    text = traceback.format_exc()
    try:
        conn.send(proto.FAILED, {"error": f"{type(error).__name__}: {error}", "traceback": text,
                                 "final": bool(final)})
    finally:
        sys.stderr.write(text)
        sys.stderr.flush()
        os._exit(1)


def main():
    _die_with_parent()
    host, port = os.environ["DLFLOW_COORDINATOR"].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = proto.Connection(sock)
    node_type = os.environ["DLFLOW_NODE_TYPE"]
    index = int(os.environ["DLFLOW_NODE_INDEX"])
    node_host = os.environ.get("DLFLOW_NODE_HOST", host)
    conn.send(proto.HELLO, {"token": os.environ["DLFLOW_TOKEN"], "node_type": node_type, "index": index,
                            "host": node_host, "port": _free_port(node_host), "pid": os.getpid()})
    box = inbox(int(os.environ.get("DLFLOW_PREFETCH", "8")))
    activity = Activity()
    threading.Thread(target=_heartbeat,
                     args=(conn, int(os.environ.get("DLFLOW_HEARTBEAT_MS", "500")) / 1000, box, activity),
                     daemon=True, name="dlflow-heartbeat").start()

    frame = conn.receive()
    if frame is None or frame[0] != proto.SPEC:
        os._exit(3)
    spec = json.loads(frame[1])
    output_schema = None
    if spec.get("has_output"):
        frame = conn.receive()
        if frame is None or frame[0] != proto.OUTPUT_SCHEMA:
            os._exit(3)
        import pyarrow as pa

        output_schema = pa.ipc.open_stream(pa.py_buffer(frame[1])).schema
    if spec.get("has_input"):
        feed = _open_feed(node_type, index)
        threading.Thread(target=_read_input, args=(feed, box), daemon=True, name="dlflow-input").start()
    threading.Thread(target=_read_control, args=(conn,), daemon=True, name="dlflow-control").start()

    context = Context(conn, spec, box, output_schema, activity)
    try:
        entry = _load_entry(os.environ["DLFLOW_ENTRY_FILE"], os.environ["DLFLOW_ENTRY_FUNC"])
    except BaseException as error:  # noqa: BLE001 - a file that does not import will not on a restart
        _fail(conn, error, final=True)
    try:
        entry(context)
        if context._writer is not None:
            context._writer.flush()  # a failure to send the last rows is the entry's failure too
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            _fail(conn, exit_)
    except BaseException as error:  # noqa: BLE001 - every failure is reported, then the node ends
        _fail(conn, error, final=isinstance(error, JobError))
    conn.send(proto.DONE)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
