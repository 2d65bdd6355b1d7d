"""The quick start with TensorFlow's ParameterServerStrategy: learn y = 2x + 1 with the model's
variables on a parameter server and its training steps on separate worker processes.

ParameterServerStrategy has a coordinator (TF's "chief") that runs the training loop and sends
each step to whichever TF worker is free; TF's workers and parameter servers only serve. On
dlflow that is one dlflow worker and several parameter-server nodes:

- dlflow worker 0 is the coordinator: it receives all the rows (one worker, one share) and
  schedules a step per batch, with the batch as the step's argument;
- dlflow's parameter-server nodes serve: the first ``ps_tasks`` (property, default 1) are TF
  parameter servers, the others TF workers. dlflow stops them once the coordinator is done.

The coordinator saves the model as a SavedModel (``serving_default``: ``x`` -> ``y``) in the
``model_dir`` property, as the quick start does.
"""
import json
import os

import tensorflow as tf

from dlflow import TFContext


def tf_roles(ctx):
    """TF's cluster for ParameterServerStrategy from dlflow's (one worker, the rest ps nodes)."""
    cluster = ctx.get_tf_cluster_config()
    ps_tasks = int(ctx.get_property("ps_tasks", "1"))
    workers, servers = cluster.get("worker", []), cluster.get("ps", [])
    if len(workers) != 1 or len(servers) <= ps_tasks:
        raise ValueError(f"ParameterServerStrategy here takes 1 dlflow worker (the coordinator) and more than "
                         f"ps_tasks={ps_tasks} parameter-server nodes (the rest are TF workers); the job has "
                         f"{len(workers)} worker(s) and {len(servers)} parameter-server node(s)")
    tf_cluster = {"chief": workers, "ps": servers[:ps_tasks], "worker": servers[ps_tasks:]}
    if ctx.get_node_type() == "worker":
        task = {"type": "chief", "index": 0}
    elif ctx.get_index() < ps_tasks:
        task = {"type": "ps", "index": ctx.get_index()}
    else:
        task = {"type": "worker", "index": ctx.get_index() - ps_tasks}
    os.environ["TF_CONFIG"] = json.dumps({"cluster": tf_cluster, "task": task})
    return task


def train_entry(context):
    ctx = TFContext(context)
    task = tf_roles(ctx)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if task["type"] != "chief":
        # A TF parameter server or worker: serve until dlflow stops this node.
        tf.distribute.Server(resolver.cluster_spec(), job_name=task["type"], task_index=task["index"],
                             protocol="grpc", start=True).join()
        return

    strategy = tf.distribute.ParameterServerStrategy(resolver)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():  # the variables live on the parameter servers
        model = tf.keras.Sequential([tf.keras.Input(shape=(1,), name="x"), tf.keras.layers.Dense(1)])
        optimizer = tf.keras.optimizers.Adam(float(ctx.get_property("learning_rate", "0.1")))

    @tf.function
    def step(x, y):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x)[:, 0] - y))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        return strategy.run(replica_step, args=(x, y))

    dataset = (ctx.get_tfdataset(features="x", label="y").batch(int(ctx.get_property("batch_size", "32")))
               .map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.float32))))
    for epoch in range(ctx.get_epochs()):
        losses = [coordinator.schedule(step, args=(x, y)) for x, y in dataset]  # one pass: one epoch
        coordinator.join()  # every step of the epoch has run on some worker
        loss = float(losses[-1].fetch()) if losses else float("nan")
        print(f"epoch {epoch + 1}: {len(losses)} steps, last loss {loss:.3g}", flush=True)
        ctx.report("epoch", epoch=epoch, loss=loss, steps=len(losses))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x):
        return {"y": tf.squeeze(model(tf.expand_dims(x, -1)), -1)}

    tf.saved_model.save(model, ctx.get_property("model_dir"), signatures={"serving_default": serve})
