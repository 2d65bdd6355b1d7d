"""Make the SavedModels that dlflow's tests, examples and benchmarks run.

Every model is a plain `tf.Module` with explicit `tf.function` signatures, so input
and output names, dtypes and shapes are exactly what the tests expect. Next to each
model directory `<out>/<name>/` the script writes `<out>/<name>.reference.arrow`, an
Arrow IPC file with the inputs (columns named after the signature inputs) and what
TensorFlow itself computed for them (columns `expected.<output>`). Tests run dlflow
on the inputs and compare against those columns.

Usage: python make_models.py --out DIR [--only linear,mlp] [--rows N]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import tensorflow as tf  # noqa: E402

SEED = 20261121


def spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


class Linear(tf.Module):
    """The seed's model: y = 2x + 1, on a [n, 1] input like a Keras Dense layer. With other
    weights (`linear_v2`: y = -x + 3) it is a second version of it, for hot-reload tests."""

    def __init__(self, w=2.0, b=1.0):
        super().__init__()
        self.w = tf.Variable([[w]], dtype=tf.float32)
        self.b = tf.Variable([b], dtype=tf.float32)

    @tf.function(input_signature=[spec([None, 1], tf.float32, "x")])
    def serve(self, x):
        return {"y": tf.matmul(x, self.w) + self.b}


class TwoInTwoOut(tf.Module):
    """Two inputs of different types, two outputs of different ranks."""

    @tf.function(input_signature=[spec([None], tf.float64, "a"), spec([None], tf.int64, "b")])
    def serve(self, a, b):
        return {
            "total": a + tf.cast(b, tf.float64),
            "scaled": tf.stack([b * 2, b * 3], axis=1),
        }


class Mlp(tf.Module):
    """784 -> 128 (relu) -> 10, the MNIST-sized MLP used for tests and benchmarks."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(SEED)
        self.w1 = tf.Variable(rng.normal(0, 0.05, (784, 128)).astype(np.float32))
        self.b1 = tf.Variable(np.zeros(128, np.float32))
        self.w2 = tf.Variable(rng.normal(0, 0.05, (128, 10)).astype(np.float32))
        self.b2 = tf.Variable(np.zeros(10, np.float32))

    def logits(self, pixels):
        hidden = tf.nn.relu(tf.matmul(pixels, self.w1) + self.b1)
        return tf.matmul(hidden, self.w2) + self.b2

    @tf.function(input_signature=[spec([None, 784], tf.float32, "pixels")])
    def serve(self, pixels):
        return {"logits": self.logits(pixels)}

    @tf.function(input_signature=[spec([None, 784], tf.float32, "pixels")])
    def classify(self, pixels):
        scores = tf.nn.softmax(self.logits(pixels))
        return {"classes": tf.argmax(scores, axis=1), "scores": scores}


class BatchProbe(tf.Module):
    """Tells each row how many rows its TensorFlow call had: `rows` (float32), next to
    y = 2x + 1. Tests of micro-batching check the bounds with it."""

    @tf.function(input_signature=[spec([None, 1], tf.float32, "x")])
    def serve(self, x):
        rows = tf.cast(tf.shape(x)[0], tf.float32)
        return {"rows": tf.fill(tf.shape(x), rows), "y": 2.0 * x + 1.0}


class WideMlp(tf.Module):
    """256 -> 1024 -> 1024 -> 10 (relu): a compute-bound model for benchmarks."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(SEED + 1)
        sizes = [256, 1024, 1024, 10]
        self.weights = [tf.Variable(rng.normal(0, 0.03, (a, b)).astype(np.float32)) for a, b in zip(sizes, sizes[1:])]

    @tf.function(input_signature=[spec([None, 256], tf.float32, "x")])
    def serve(self, x):
        for i, w in enumerate(self.weights):
            x = tf.matmul(x, w)
            if i < len(self.weights) - 1:
                x = tf.nn.relu(x)
        return {"logits": x}


class Strings(tf.Module):
    """A string input, and both a string and a number output."""

    @tf.function(input_signature=[spec([None], tf.string, "text")])
    def serve(self, text):
        return {"length": tf.strings.length(text), "upper": tf.strings.upper(text)}


class AllTypes(tf.Module):
    """One input per seed type (FLOAT_32, FLOAT_64, INT_32, INT_64, STRING)."""

    @tf.function(
        input_signature=[
            spec([None], tf.float32, "f32"),
            spec([None], tf.float64, "f64"),
            spec([None], tf.int32, "i32"),
            spec([None], tf.int64, "i64"),
            spec([None], tf.string, "s"),
        ]
    )
    def serve(self, f32, f64, i32, i64, s):
        return {
            "f32_out": f32 * 2.0,
            "f64_out": f64 * 2.0,
            "i32_out": i32 + 1,
            "i64_out": i64 + 1,
            "s_out": tf.strings.join([s, "!"]),
        }


class Image(tf.Module):
    """A rank-4 input: a flat 16-float column reshaped by dlflow to [n, 4, 4, 1]."""

    @tf.function(input_signature=[spec([None, 4, 4, 1], tf.float32, "image")])
    def serve(self, image):
        return {"mean": tf.reduce_mean(image, axis=[1, 2, 3]), "row_sums": tf.reduce_sum(image, axis=[2, 3])}


class FixedBatch(tf.Module):
    """A signature that takes exactly 4 rows per call ([4, 2]), as some exports fix the batch."""

    @tf.function(input_signature=[spec([4, 2], tf.float32, "pair")])
    def serve(self, pair):
        total = tf.reduce_sum(pair, axis=1)
        return {"total": total, "first": pair[:, 0] * 10.0, "positive": total > 0.0}


def column(values):
    """A numpy array as an Arrow column: rank 1 stays scalar, [n, 1] becomes scalar,
    [n, k...] becomes FixedSizeList<k*...> (the same mapping dlflow uses)."""
    if values.dtype.kind in ("S", "O"):
        return pa.array([v.decode() if isinstance(v, bytes) else v for v in values], pa.string())
    if values.ndim == 1:
        return pa.array(values)
    if values.ndim == 2 and values.shape[1] == 1:
        return pa.array(values[:, 0])
    flat = values.reshape(values.shape[0], -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def save(module, out, name, signatures, inputs):
    """Save `module` as a SavedModel and its reference outputs for `inputs`."""
    path = os.path.join(out, name)
    tf.saved_model.save(module, path, signatures=signatures)
    serve = signatures["serving_default"]
    outputs = serve(**{k: tf.constant(v) for k, v in inputs.items()})
    names, arrays = [], []
    for key, value in inputs.items():
        names.append(key)
        arrays.append(column(value))
    for key in sorted(outputs):
        names.append("expected." + key)
        arrays.append(column(outputs[key].numpy()))
    table = pa.table(arrays, names=names)
    with pa.OSFile(path + ".reference.arrow", "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    print(f"made {path} ({table.num_rows} reference rows)")


def save_sparse_coo(out, name):
    """A TF1 export whose input is a sparse (COO) tensor, as `sparse_placeholder` and
    `predict_signature_def` write it: dlflow feeds dense tensors only and must say so."""
    path = os.path.join(out, name)
    graph = tf.Graph()
    with graph.as_default():
        sparse = tf.compat.v1.sparse_placeholder(tf.float32, shape=[None, 4], name="x")
        total = tf.sparse.reduce_sum(sparse, axis=1)
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(path)
            signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def({"x": sparse}, {"total": total})
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()
    print(f"made {path} (no reference rows)")


def make_all(out, only, rows):
    rng = np.random.default_rng(SEED)
    words = np.array([b"", b"a", b"dlflow", b"Hello, world", b"\xc3\xa9t\xc3\xa9", b"x" * 40], dtype=object)

    def makers():
        linear = Linear()
        yield "linear", linear, {"serving_default": linear.serve, "regress": linear.serve}, {
            "x": rng.uniform(0, 1, (rows, 1)).astype(np.float32)
        }
        linear_v2 = Linear(w=-1.0, b=3.0)
        yield "linear_v2", linear_v2, {"serving_default": linear_v2.serve, "regress": linear_v2.serve}, {
            "x": rng.uniform(0, 1, (rows, 1)).astype(np.float32)
        }
        probe = BatchProbe()
        yield "batch_probe", probe, {"serving_default": probe.serve}, {"x": rng.uniform(0, 1, (rows, 1)).astype(np.float32)}
        wide = WideMlp()
        yield "mlp_wide", wide, {"serving_default": wide.serve}, {"x": rng.uniform(0, 1, (rows, 256)).astype(np.float32)}
        two = TwoInTwoOut()
        yield "two_in_two_out", two, {"serving_default": two.serve}, {
            "a": rng.uniform(-10, 10, rows),
            "b": rng.integers(-1000, 1000, rows),
        }
        mlp = Mlp()
        yield "mlp", mlp, {"serving_default": mlp.serve, "predict": mlp.serve, "classify": mlp.classify}, {
            "pixels": rng.uniform(0, 1, (rows, 784)).astype(np.float32)
        }
        strings = Strings()
        yield "strings", strings, {"serving_default": strings.serve}, {"text": words[rng.integers(0, len(words), rows)]}
        all_types = AllTypes()
        yield "all_types", all_types, {"serving_default": all_types.serve}, {
            "f32": rng.uniform(-1, 1, rows).astype(np.float32),
            "f64": rng.uniform(-1, 1, rows),
            "i32": rng.integers(-(2**31), 2**31 - 2, rows).astype(np.int32),
            "i64": rng.integers(-(2**62), 2**62, rows),
            "s": words[rng.integers(0, len(words), rows)],
        }
        image = Image()
        yield "image", image, {"serving_default": image.serve}, {
            "image": rng.uniform(0, 1, (rows, 4, 4, 1)).astype(np.float32)
        }
        fixed = FixedBatch()
        yield "fixed_batch", fixed, {"serving_default": fixed.serve}, {
            "pair": rng.uniform(-1, 1, (4, 2)).astype(np.float32)
        }

    for name, module, signatures, inputs in makers():
        if only and name not in only:
            continue
        save(module, out, name, signatures, inputs)
    if not only or "sparse_coo" in only:
        save_sparse_coo(out, "sparse_coo")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the models into")
    parser.add_argument("--only", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--rows", type=int, default=257, help="reference rows per model")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    only = {n for n in args.only.split(",") if n}
    make_all(args.out, only, args.rows)


if __name__ == "__main__":
    main(sys.argv[1:])
