"""Entries for the recovery tests: they fail on purpose, restore checkpoints, and log which rows
they trained, so that a test can check that a recovered run trained every row exactly once."""
import json
import os
import time

from dlflow import TFContext


def _out(ctx, name):
    return os.path.join(ctx.get_property("out_dir"), name)


def _record_pid(ctx):
    path = _out(ctx, f"{ctx.get_node_type()}_{ctx.get_index()}_attempt_{ctx.get_attempt_index()}.pid")
    with open(path, "w") as f:
        f.write(str(os.getpid()))


def flaky_entry(context):
    """Raises on attempts 0 and 1 (the seed's failover test), trains on attempt 2."""
    ctx = TFContext(context)
    _record_pid(ctx)
    attempt = ctx.get_attempt_index()
    seen = sum(1 for _ in ctx.get_tfdataset())
    if attempt < int(ctx.get_property("fail_until", "2")):
        raise RuntimeError(f"failing on purpose in attempt {attempt}")
    with open(_out(ctx, f"worker_{ctx.get_index()}.json"), "w") as f:
        json.dump({"attempt": attempt, "rows": seen}, f)


def frozen_entry(context):
    """Worker 0 takes one batch, then its main thread is stuck while rows wait for it."""
    ctx = TFContext(context)
    _record_pid(ctx)
    for _ in ctx.get_tfdataset():
        if ctx.get_index() == 0:
            while True:
                time.sleep(0.05)  # stuck here; the heartbeat thread goes on beating


def _die_once_worker_0_saved(ctx):
    """Exits worker 1 (of attempt 0) as soon as worker 0 has a checkpoint and before worker 1
    saves its own: the moment when only some workers have checkpoints."""
    peer = os.path.join(os.path.dirname(ctx.get_checkpoint_dir().rstrip("/")), "worker-0")
    deadline = time.time() + 60
    while not any(name.endswith(".dlflow.json") for name in (os.listdir(peer) if os.path.isdir(peer) else [])):
        if time.time() > deadline:
            raise RuntimeError(f"worker 0 saved no checkpoint in {peer}")
        time.sleep(0.005)
    os._exit(3)


def ids_entry(context):
    """Trains y = w x + b with MultiWorkerMirroredStrategy in a loop of its own, checkpoints
    every few steps with ``ctx.checkpoint``, and logs the row ids of every step with the step
    number, so that the rows behind the restored checkpoint can be told from those trained
    after it (and lost with the failure)."""
    import tensorflow as tf

    ctx = TFContext(context)
    _record_pid(ctx)
    ctx.export_tf_config()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    batch_size = int(ctx.get_property("batch_size", "16"))
    with strategy.scope():
        w = tf.Variable(0.0)
        b = tf.Variable(0.0)
        optimizer = tf.keras.optimizers.SGD(float(ctx.get_property("learning_rate", "0.6")))
    checkpoint = tf.train.Checkpoint(w=w, b=b, optimizer=optimizer)
    checkpoints = ctx.checkpoint(checkpoint, batch_size=batch_size, every=ctx.get_property("every", "3 steps"))
    log = open(_out(ctx, f"ids_{ctx.get_index()}.jsonl"), "a")
    log.write(json.dumps({"attempt": ctx.get_attempt_index(), "restored_step": checkpoints.step}) + "\n")
    log.flush()

    @tf.function
    def train_step(x, y):
        def replica(x, y):
            with tf.GradientTape() as tape:
                # Gradients are summed over the workers: scale so that their sum is the mean.
                loss = tf.reduce_mean(tf.square(w * x + b - y)) / strategy.num_replicas_in_sync
            grads = tape.gradient(loss, [w, b])
            optimizer.apply_gradients(zip(grads, [w, b]))
            return loss

        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(replica, args=(x, y)), axis=None)

    dataset = ctx.get_tfdataset(batch_size=batch_size)
    delay = float(ctx.get_property("step_delay", "0"))
    # Property die_before_save=N: worker 1 of attempt 0 dies after step N, before saving it.
    die_before_save = int(ctx.get_property("die_before_save", "0"))
    dies = die_before_save and ctx.get_attempt_index() == 0 and ctx.get_index() == 1
    loss = None
    for epoch in range(checkpoints.initial_epoch, ctx.get_epochs()):
        rows = 0
        for batch in dataset:
            loss = train_step(batch["x"], batch["y"])
            ids = [int(i) for i in batch["id"].numpy()]
            rows += len(ids)
            # Logged before the checkpoint that may cover it: a kill in between leaves a logged
            # step the restored checkpoint does not hold, which the test discards.
            log.write(json.dumps({"step": checkpoints.step + 1, "epoch": epoch, "ids": ids}) + "\n")
            log.flush()
            if dies and checkpoints.step + 1 == die_before_save:
                _die_once_worker_0_saved(ctx)
            checkpoints.step_done(epoch, rows)
            time.sleep(delay)
        checkpoints.epoch_done(epoch)
    log.write(json.dumps({"done": True}) + "\n")
    log.close()
    with open(_out(ctx, f"model_{ctx.get_index()}.json"), "w") as f:
        json.dump({"w": float(w.numpy()), "b": float(b.numpy()), "loss": float(loss) if loss is not None else None,
                   "attempt": ctx.get_attempt_index()}, f)
