"""Workers write what they see of the cluster; the parameter server serves until it is stopped."""
import json
import time

from dlflow import TFContext


def topology_entry(context):
    ctx = TFContext(context)
    if ctx.get_node_type() == "ps":
        while True:  # like server.join(): dlflow stops it once the workers are done
            time.sleep(1)
    cluster = ctx.get_tf_cluster_config()
    ctx.export_tf_config()
    import os
    tf_config = json.loads(os.environ["TF_CONFIG"])
    ctx.get_row_writer().write({
        "node_type": ctx.get_node_type(),
        "index": ctx.get_index(),
        "workers": len(cluster["worker"]),
        "ps": len(cluster.get("ps", [])),
        "chief": ctx.is_chief(),
        "task": f'{tf_config["task"]["type"]}:{tf_config["task"]["index"]}',
        "greeting": ctx.get_property("greeting"),
    })
