"""Keras model files for the estimator: what a file is, and Keras 3 files rebuilt in tf_keras.

dlflow's nodes train with Keras 2 (``tf_keras``, decision 0004): Keras 3 does not run
``Model.fit`` under ``MultiWorkerMirroredStrategy``. TensorFlow 2.16 and later save Keras 3
``.keras`` files by default, and Keras 2 cannot read them ("Unrecognized keyword arguments:
['batch_shape']"). Before any node starts, dlflow runs this module once on the model file:

    python -m dlflow.keras_file MODEL_FILE OUT_DIR

It prints one JSON line: ``{"model": PATH, "saved_by": "Keras 3.15.1", "converted": true}``,
where PATH is the file the nodes load (the original, or a tf_keras ``.keras`` file written in
OUT_DIR), or exits with status 2 and ``{"error": ...}`` saying what the file is and what to do.

A Keras 3 file is rebuilt from its config: each Keras 3 layer becomes the tf_keras layer of
the same class, with the config keys Keras 2 names differently renamed (``batch_shape``),
dtype policies as their names, Keras 3's node format of functional models turned into Keras
2's, and keys Keras 2 does not have dropped when they hold their neutral value (None, False).
Anything else (a custom layer, a key with a real value that Keras 2 has no place for) refuses
the file. The weights are the file's own; the rebuilt model is checked against Keras 3's on
a batch of random inputs, and refused when the outputs differ.
"""

import inspect
import json
import os
import sys
import zipfile

# What a refused file can be replaced with, in every refusal.
_WHAT_TO_DO = ("save the model with tf_keras instead (TF_USE_LEGACY_KERAS=1, then model.save('m.keras') or "
               "'m.h5'), or give a model factory (FILE.py:FUNCTION returning a tf.keras model)")

# Layer keyword arguments Keras 2's base Layer accepts besides its __init__ parameters.
_LAYER_KWARGS = {"input_dim", "input_shape", "batch_input_shape", "batch_size", "weights",
                 "activity_regularizer", "autocast", "implementation", "name", "dtype", "trainable", "dynamic"}

# Keras 3 config keys whose Keras 2 name differs, per class.
_RENAMED = {"InputLayer": {"batch_shape": "batch_input_shape"}}

# Keras 3 modules and the tf_keras namespaces holding the same classes.
_NAMESPACES = ("layers", "initializers", "regularizers", "constraints", "activations")

# Where tf_keras finds its model classes when it deserializes them.
_MODEL_MODULES = {"Sequential": "keras", "Functional": "tf_keras.src.engine.functional", "Model": "keras"}

# Functional model configs: every key Keras 2 reads.
_MODEL_KEYS = {"name", "layers", "input_layers", "output_layers", "trainable", "build_input_shape"}


class Refused(ValueError):
    """The file cannot be trained by dlflow's nodes: the message says why and what to do."""


# -- what a file is ----------------------------------------------------------------------------

def describe(path):
    """{"format": "keras" | "h5" | "json", "keras_version": "3.15.1" or None} of a model file."""
    lower = path.lower()
    if lower.endswith(".keras"):
        if not zipfile.is_zipfile(path):
            raise Refused(f"{path} is not a Keras .keras file (a .keras file is a zip archive with config.json)")
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise Refused(f"{path} is a zip archive without config.json, not a Keras .keras file")
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
        return {"format": "keras", "keras_version": metadata.get("keras_version")}
    if lower.endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version")
        except OSError as error:
            raise Refused(f"{path} is not an HDF5 file ({error})") from None
        return {"format": "h5", "keras_version": version.decode() if isinstance(version, bytes) else version}
    if lower.endswith(".json"):
        return {"format": "json", "keras_version": None}
    raise Refused(f"{path}: a Keras model file ends in .keras, .h5, .hdf5 or .json")


def _is_keras_3(version):
    return isinstance(version, str) and version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 3


# -- Keras 3 config -> Keras 2 config ------------------------------------------------------------

def to_keras_2_config(config):
    """A Keras 3 model config (config.json of a .keras file) as tf_keras reads it."""
    return _translate(config, "the model")


def _translate(value, where):
    if isinstance(value, list):
        return [_translate(item, where) for item in value]
    if not isinstance(value, dict):
        return value
    if "class_name" not in value or not isinstance(value.get("config"), dict):
        return {key: _translate(item, where) for key, item in value.items()}
    class_name = value["class_name"]
    if class_name in ("DTypePolicy", "FloatDTypePolicy"):
        return value["config"]["name"]  # Keras 2 takes a policy by name
    module = value.get("module") or ""
    if value.get("registered_name") not in (None, class_name) or not (module == "keras" or module.startswith("keras.")):
        raise Refused(f"{where} uses {value.get('registered_name') or class_name} from {module or 'an unknown module'}, "
                      "which is not a Keras layer dlflow can rebuild in Keras 2")
    config = value["config"]
    name = config.get("name", class_name) if isinstance(config.get("name"), str) else class_name
    here = f"layer '{name}' ({class_name})" if "layers" in module or class_name == "InputLayer" else f"{class_name} of {where}"
    if class_name in ("Sequential", "Functional", "Model"):
        config = _model_config(class_name, config, here)
    else:
        config = {key: _translate(item, here) for key, item in config.items()}
        config = _fit_keywords(_keras_2_class(class_name, module, here), class_name, config, here)
    # Models by Keras 2's own module names; everything else resolves from "keras.layers" etc.
    module = _MODEL_MODULES.get(class_name, module.replace("keras.src.", "keras."))
    translated = {"module": module, "class_name": class_name, "config": config, "registered_name": None}
    if "build_config" in value:
        translated["build_config"] = value["build_config"]
    return translated


def _model_config(class_name, config, where):
    layers = []
    for layer in config.get("layers", []):
        translated = _translate({k: v for k, v in layer.items() if k != "inbound_nodes"}, where)
        if "inbound_nodes" in layer:
            translated["inbound_nodes"] = [_node(node, translated["config"].get("name")) for node in layer["inbound_nodes"]]
            translated["name"] = translated["config"].get("name")
        layers.append(translated)
    result = {key: config[key] for key in _MODEL_KEYS & config.keys() if key != "layers"}
    result["layers"] = layers
    for key in ("input_layers", "output_layers"):
        if key in result and result[key] and isinstance(result[key][0], str):
            result[key] = [result[key]]  # Keras 3 writes a single input or output unwrapped
    return result


def _node(node, layer):
    """Keras 3's {"args": [...], "kwargs": {...}} call of a layer as Keras 2's list of inputs."""
    if not isinstance(node, dict):
        return node  # already Keras 2's form
    args, kwargs = node.get("args", []), node.get("kwargs", {})
    if len(args) != 1:
        raise Refused(f"layer '{layer}' is called with {len(args)} positional arguments; Keras 2 takes one")
    tensors = args[0] if isinstance(args[0], list) else [args[0]]
    if any(_is_tensor(v) for v in _flatten(kwargs)):
        raise Refused(f"layer '{layer}' takes tensors as keyword arguments, which dlflow cannot rebuild in Keras 2")
    inputs = []
    for tensor in tensors:
        if not _is_tensor(tensor):
            raise Refused(f"layer '{layer}' is called with a constant, which dlflow cannot rebuild in Keras 2")
        inbound, node_index, tensor_index = tensor["config"]["keras_history"]
        inputs.append([inbound, node_index, tensor_index, kwargs])
    return inputs


def _is_tensor(value):
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _flatten(value):
    if isinstance(value, dict) and not _is_tensor(value):
        return [x for item in value.values() for x in _flatten(item)]
    if isinstance(value, list):
        return [x for item in value for x in _flatten(item)]
    return [value]


def _keras_2_class(class_name, module, where):
    import tensorflow as tf

    namespaces = [part for part in _NAMESPACES if part in module.split(".")] or list(_NAMESPACES)
    for namespace in namespaces:
        found = getattr(getattr(tf.keras, namespace), class_name, None)
        if isinstance(found, type):
            return found
    raise Refused(f"{where} has no Keras 2 (tf_keras) counterpart")


def _fit_keywords(cls, class_name, config, where):
    """The config with Keras 3 names renamed, and keys Keras 2 lacks dropped when neutral."""
    renamed = _RENAMED.get(class_name, {})
    config = {renamed.get(key, key): item for key, item in config.items()}
    accepted, open_ended = _parameters(cls)
    if issubclass(cls, _layer_base()):
        accepted |= _LAYER_KWARGS  # a layer's **kwargs take exactly these (Keras 2 checks them)
        open_ended = False
    result = {}
    for key, item in config.items():
        if key in accepted or open_ended:
            result[key] = item
        elif item not in (None, False):
            raise Refused(f"{where} sets '{key}' = {json.dumps(item)}, which Keras 2 (tf_keras) has no place for")
    return result


def _parameters(cls):
    """Keyword parameters of `cls.__init__` and its bases' (while they pass **kwargs on), and
    whether the class itself takes any keyword (**kwargs) it does not name."""
    accepted, first = set(), True
    open_ended = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        passes_on = any(p.kind == p.VAR_KEYWORD for p in params)
        if first:
            open_ended, first = passes_on, False
        if not passes_on:
            break
    return accepted, open_ended


def _layer_base():
    import tensorflow as tf

    return tf.keras.layers.Layer


# -- the rebuilt file ------------------------------------------------------------------------------

def rebuild(path, out_dir):
    """Writes the Keras 3 `.keras` file `path` as a tf_keras `.keras` file in `out_dir`; returns its path."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5") if "model.weights.h5" in archive.namelist() else None
    translated = to_keras_2_config({k: v for k, v in config.items() if k != "compile_config"})
    target = os.path.join(out_dir, "model-tf-keras.keras")
    with zipfile.ZipFile(target, "w") as out:
        out.writestr("metadata.json", json.dumps({"keras_version": tf_keras.__version__, "date_saved": "rebuilt by dlflow"}))
        out.writestr("config.json", json.dumps(translated))
        if weights is not None:
            out.writestr("model.weights.h5", weights)
    try:
        rebuilt = tf.keras.models.load_model(target, compile=False)
    except Exception as error:
        raise Refused(f"Keras 2 (tf_keras) cannot build the model from its config: {error}") from None
    _check_same_outputs(path, rebuilt, np)
    return target


def _check_same_outputs(path, rebuilt, np):
    """Refuses a rebuilt model whose outputs differ from Keras 3's on the same random inputs."""
    import keras  # Keras 3: `tf.keras` is tf_keras on the nodes and here

    original = keras.saving.load_model(path, compile=False)
    shapes = [tuple(t.shape) for t in rebuilt.inputs]
    if any(dim is None for shape in shapes for dim in shape[1:]):
        return  # inputs of unknown size: no batch to compare on; the config and weights loaded
    rng = np.random.default_rng(0)
    batch = [rng.uniform(-1, 1, size=(4, *shape[1:])).astype(t.dtype.name if t.dtype.is_floating else "float32")
             for shape, t in zip(shapes, rebuilt.inputs)]
    feed = batch[0] if len(batch) == 1 else batch
    expected = [np.asarray(x) for x in _as_list(original(feed, training=False))]
    got = [np.asarray(x) for x in _as_list(rebuilt(feed, training=False))]
    for want, have in zip(expected, got):
        if want.shape != have.shape or not np.allclose(want, have, rtol=1e-4, atol=1e-5):
            raise Refused("the model rebuilt in Keras 2 (tf_keras) computes other outputs than the Keras 3 file "
                          f"(largest difference {float(np.max(np.abs(want - have))) if want.shape == have.shape else 'in shape'})")


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def prepare(path, out_dir):
    """What the nodes load for the model file `path`: {"model", "saved_by", "converted"}."""
    if not os.path.isfile(path):
        raise Refused(f"the model file {path} does not exist")
    kind = describe(path)
    version = kind["keras_version"]
    saved_by = f"Keras {version}" if version else "an unknown Keras version"
    if not _is_keras_3(version):
        return {"model": path, "saved_by": saved_by, "converted": False}
    what = f"{path} is a {kind['format'] == 'keras' and '.keras' or '.h5'} file saved by Keras {version} " \
           "(TensorFlow 2.16 and later save Keras 3 files); dlflow's nodes train with Keras 2 (tf_keras)"
    if kind["format"] != "keras":
        raise Refused(f"{what}, and dlflow rebuilds only Keras 3 .keras files in Keras 2; {_WHAT_TO_DO}")
    try:
        return {"model": rebuild(path, out_dir), "saved_by": saved_by, "converted": True}
    except Refused as error:
        raise Refused(f"{what} and cannot rebuild this one: {error}; {_WHAT_TO_DO}") from None


def main(argv):
    if len(argv) != 3:
        print("usage: python -m dlflow.keras_file MODEL_FILE OUT_DIR", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        result = prepare(argv[1], argv[2])
    except Refused as error:
        print(json.dumps({"error": str(error)}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
