"""Nodes that fail in the ways real ones do: raise, die, hang, or never end."""
import os
import signal
import time

from dlflow import TFContext


def _record_pid(ctx):
    with open(os.path.join(ctx.get_property("out_dir"), f"{ctx.get_node_type()}_{ctx.get_index()}.pid"), "w") as f:
        f.write(str(os.getpid()))


def raise_entry(context):
    ctx = TFContext(context)
    _record_pid(ctx)
    if ctx.get_index() == 1:
        next(iter(ctx.get_tfdataset()))
        raise ValueError("bad row 42")
    time.sleep(600)  # worker 0 would wait for worker 1 forever: dlflow must not


def die_entry(context):
    ctx = TFContext(context)
    _record_pid(ctx)
    if ctx.get_index() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


def hang_entry(context):
    ctx = TFContext(context)
    _record_pid(ctx)
    if ctx.get_index() == 0:
        os.kill(os.getpid(), signal.SIGSTOP)  # frozen: no heartbeat, no exit
    time.sleep(600)


def sleep_entry(context):
    ctx = TFContext(context)
    _record_pid(ctx)
    time.sleep(600)


def own_data_entry(context):
    ctx = TFContext(context)
    _record_pid(ctx)
    try:
        ctx.get_tfdataset()
    except RuntimeError as error:
        with open(os.path.join(ctx.get_property("out_dir"), f"worker_{ctx.get_index()}.txt"), "w") as f:
            f.write(str(error))
