"""TensorFlow's own outputs for SavedModel signature calls: the reference dlflow's tests
compare against.

Reads one JSON request on stdin, writes one JSON answer on stdout (with `--serve`: one request
per line and one answer per line, until stdin closes). Each model of a request is loaded once
and its calls run in order in that one loaded model, so stateful signatures (a counter, a
training step) give TensorFlow's own sequence.

Request:
    {"models": [{"id": "m1", "dir": "...", "tags": ["serve"],
                 "loader": "saved_model" | "session",
                 "calls": [{"signature": "serving_default",
                            "inputs": {"x": {"dtype": "float32", "shape": [2, 1], "values": [1.0, 2.0]}}},
                           {"signature": "serving_default",
                            "examples": {"input": "examples",
                                         "rows": [{"x": {"float": [1.0]}, "name": {"bytes": ["a"]}, "n": {"int": [3]}}]},
                            "return_serialized": true}]}]}

`loader` "saved_model" uses tf.saved_model.load (TF2 Python's path); "session" uses the TF1
Session loader, tf.compat.v1.saved_model.loader.load, which is the C API's path and loads
models TF2 Python cannot. `examples` serializes one tf.train.Example per row in Python (a
missing or null feature is left out) and feeds them to `input`.

Answer:
    {"models": {"m1": [{"outputs": {"y": {"dtype": "float32", "shape": [2, 1], "values": [...]}},
                        "serialized": [[10, 12, ...], ...]},
                       {"error": "TensorFlow's message"}]}}

Strings come back as lists of byte values; floats as the exact value of each float32.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

DTYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
    "string": object,
}


def to_array(spec):
    """A request tensor as a numpy array."""
    dtype = DTYPES[spec["dtype"]]
    values = spec["values"]
    if dtype is object:
        values = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
    return np.array(values, dtype=dtype).reshape(spec["shape"])


def to_json(value):
    """A tensor (numpy or tf) as {"dtype", "shape", "values"}."""
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    flat = array.reshape(-1)
    if array.dtype == object or array.dtype.kind == "S":
        values = [list(bytes(v)) for v in flat]
        dtype = "string"
    elif array.dtype == np.bool_:
        values = [bool(v) for v in flat]
        dtype = "bool"
    elif array.dtype.kind == "f":
        values = [float(v) for v in flat]
        dtype = str(array.dtype)
    else:
        values = [int(v) for v in flat]
        dtype = str(array.dtype)
    return {"dtype": dtype, "shape": list(array.shape), "values": values}


def serialize(rows):
    """One tf.train.Example per row, as TFX's Python serving clients build them."""
    serialized = []
    for row in rows:
        feature = {}
        for name, value in row.items():
            if value is None:
                continue
            if "float" in value:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value["float"]))
            elif "int" in value:
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value["int"]))
            else:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in value["bytes"]]))
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        serialized.append(example.SerializeToString())
    return serialized


def call_inputs(call):
    """The call's inputs as numpy arrays, and the serialized examples if any."""
    inputs = {key: to_array(spec) for key, spec in call.get("inputs", {}).items()}
    serialized = None
    if "examples" in call:
        serialized = serialize(call["examples"]["rows"])
        inputs[call["examples"]["input"]] = np.array(serialized, dtype=object)
    return inputs, serialized


class SavedModelLoader:
    """TF2 Python: tf.saved_model.load and its concrete signature functions."""

    def __init__(self, path, tags):
        self.model = tf.saved_model.load(path, tags=tags)

    def call(self, signature, inputs):
        function = self.model.signatures[signature]
        return function(**{key: tf.constant(value) for key, value in inputs.items()})


class SessionLoader:
    """The TF1 Session loader: feeds and fetches the signature's graph tensors."""

    def __init__(self, path, tags):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, tags, path)
        self.signatures = meta_graph.signature_def

    def call(self, signature, inputs):
        definition = self.signatures[signature]
        feed = {definition.inputs[key].name: value for key, value in inputs.items()}
        names = sorted(definition.outputs)
        fetched = self.session.run([definition.outputs[key].name for key in names], feed_dict=feed)
        return dict(zip(names, fetched))


def run_model(request):
    loader = {"saved_model": SavedModelLoader, "session": SessionLoader}[request.get("loader", "saved_model")]
    try:
        model = loader(request["dir"], request.get("tags", ["serve"]))
    except Exception as error:  # noqa: BLE001 - the error is the answer
        return [{"error": f"load: {error}"} for _ in request["calls"]]
    answers = []
    for call in request["calls"]:
        inputs, serialized = call_inputs(call)
        answer = {}
        if call.get("return_serialized") and serialized is not None:
            answer["serialized"] = [list(s) for s in serialized]
        try:
            outputs = model.call(call["signature"], inputs)
            answer["outputs"] = {key: to_json(value) for key, value in outputs.items()}
        except Exception as error:  # noqa: BLE001 - the error is the answer
            answer["error"] = str(error)
        answers.append(answer)
    return answers


def answer(request):
    return {"models": {model["id"]: run_model(model) for model in request["models"]}}


def main(argv):
    if argv == ["--serve"]:
        # One request per line, one answer per line, until stdin closes: a test binary keeps
        # one TensorFlow process for all its tests instead of importing TensorFlow per test.
        for line in sys.stdin:
            sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
            sys.stdout.flush()
        return
    json.dump(answer(json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
