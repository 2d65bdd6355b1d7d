"""The Estimator's node entry: train a Keras model on a table without a training script.

dlflow starts every worker with this file as the entry and ``estimator_entry`` as the
function. Everything the entry needs comes from the job's properties (all strings):

    estimator.model             FILE.py:FUNCTION (a factory taking no arguments and returning a
                                tf.keras.Model), or a saved Keras model file (.keras, .h5,
                                .hdf5), or a .json file written from model.to_json().
                                Relative paths are looked up in the working directory, then
                                in every folder of sys.path (PYTHONPATH).
    estimator.loss              a tf.keras.losses name ("mse", "sparse_categorical_crossentropy",
                                "Huber", ...) or FILE.py:FUNCTION: a factory returning a loss,
                                or the loss function itself (y_true, y_pred).
    estimator.loss_params       optional JSON object: keyword arguments of the loss's class
                                ({"from_logits": true}), or of the loss factory.
    estimator.optimizer         a tf.keras.optimizers name ("adam", "sgd", ...) or
                                FILE.py:FUNCTION returning an optimizer. Default: adam.
    estimator.optimizer_params  optional JSON object: keyword arguments of the optimizer's
                                class ({"learning_rate": 0.01}), or of the factory.
    estimator.metrics           optional JSON list of tf.keras.metrics names (["accuracy"]).
    estimator.feature_cols      JSON list of the feature columns, in the order the model
                                wants them.
    estimator.label_col         the label column.
    estimator.batch_size        rows per step, all workers together (the global batch); each of
                                n workers takes batch_size / n rows per step. Default: 32.
    estimator.model_dir         where the chief (worker 0) saves the trained SavedModel.
    estimator.prediction_col    the name of the SavedModel's output. Default: the label column.
    estimator.epochs            passes over the rows. Default: the job's epochs.
    estimator.shuffle_seed      optional integer: train from memory in a shuffled order. The job
                                then deals each worker its share once (one engine epoch); the
                                worker keeps it in memory and trains on it in the order
                                dlflow.dataset.epoch_order(shuffle_seed, epoch, rows) every
                                epoch. Without it, every epoch streams from the job in the
                                table's order.
    estimator.seed              optional integer: seeds Python, NumPy and TensorFlow
                                (tf.keras.utils.set_random_seed) before the model is built, so
                                the initial weights and dropout are the same on every run.
    estimator.validation_file   optional Arrow IPC file with the feature and label columns: each
                                worker scores its equal part after every epoch (Keras's
                                validation_data), and the epoch's metrics gain val_loss and
                                val_<metric>.
    tensorboard_dir             where the chief writes TensorBoard events (loss and metrics per
                                epoch, the loss every 10 steps). Default: beside the model,
                                <estimator.model_dir>.tensorboard.

Features become the model's input one way for training and for serving:

- a model with one input gets one tensor [batch, width]: scalar columns give one value each,
  vector (fixed-size list) columns their width, concatenated in feature_cols order and cast
  to the input's dtype (float32 unless the model's Input says otherwise). An input whose
  shape has the same number of values ([28, 28, 1] for a 784 vector) gets them reshaped.
- a model with several inputs gets a dict: one input per feature column, named after it.

The label keeps one value per row: integers become int64, floats and booleans float32.

Epochs are ``estimator.epochs`` (or ``ctx.get_epochs()``). Streaming, each pass over the dataset
is one epoch of the table; shuffled, the worker's share is read once and every epoch gathers
batches from memory, as Keras does for NumPy arrays (the table is neither read nor sent again).
On the chief, every epoch's metrics go to the job as an ``epoch`` notice; shuffled, every worker
also sends ``loaded`` (its share is in memory), ``rows`` as it trains and ``epoch_end`` per epoch,
the notices the job's feed sends while streaming. At the end the chief saves
a SavedModel whose ``serving_default`` signature takes one input per feature column, named
and typed like the column ([None] for scalars, [None, k] for vectors), and returns
``{prediction_col: prediction}`` (a trailing dimension of 1 squeezed away), so that dlflow's
in-process inference can feed it the table's columns as they are. Next to it,
``dlflow_estimator.json`` records the feature, label and prediction column names.
"""

import importlib.util
import inspect
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

import pyarrow as pa
import tensorflow as tf

# Absolute import: dlflow's node runner loads this file by path (module "estimator", not
# "dlflow.estimator"), where a relative import has no package to resolve against.
from dlflow import training_data
from dlflow._types import element_of
from dlflow.context import TFContext
from dlflow.errors import JobError
from dlflow import tensorboard_callback

ESTIMATOR_FILE = "dlflow_estimator.json"

_MODEL_FORMS = ("FILE.py:FUNCTION (a factory returning a tf.keras.Model), a saved Keras model "
                "(.keras, .h5 or .hdf5 file) or a .json file from model.to_json()")


# Keras loss short names whose class name is not their CamelCase form.
_LOSS_CLASS_ALIASES = {
    "mse": "MeanSquaredError",
    "mae": "MeanAbsoluteError",
    "mape": "MeanAbsolutePercentageError",
    "msle": "MeanSquaredLogarithmicError",
    "kld": "KLDivergence",
    "kl_divergence": "KLDivergence",
    "kullback_leibler_divergence": "KLDivergence",
    "huber_loss": "Huber",
    "logcosh": "LogCosh",
}

# Metric names that Keras's compile resolves itself (to the variant that fits the loss).
_COMPILE_METRIC_NAMES = {"accuracy", "acc", "crossentropy", "ce"}


# -- the entry -------------------------------------------------------------------------------

def estimator_entry(context):
    """Trains the configured Keras model on this worker's rows and saves it (on the chief)."""
    ctx = TFContext(context)
    config = _Config.from_context(ctx)
    # Checks that need no TensorFlow op come first: MultiWorkerMirroredStrategy must be
    # created before the first op runs, and a bad property should fail before any training.
    if ctx.get_node_type() != "worker":
        raise JobError(f"the estimator trains with MultiWorkerMirroredStrategy and has no use for "
                         f"'{ctx.get_node_type()}' nodes; set the parameter-server count to 0")
    schema = ctx.get_input_schema()
    if schema is None:
        raise JobError("the estimator trains on an input table, and this job has none")
    if len(set(config.feature_cols)) != len(config.feature_cols):
        raise JobError(f"estimator.feature_cols names a column twice: {config.feature_cols}")
    features = [_feature_column(schema, name) for name in config.feature_cols]
    label_dtype = _label_dtype(schema, config.label_col)

    ctx.export_tf_config()
    strategy = _strategy(ctx)
    if config.seed is not None:
        tf.keras.utils.set_random_seed(config.seed)
    with strategy.scope():  # variables (model and optimizer) must be created in the scope
        model = _build_model(config.model)
        model.compile(optimizer=_build_optimizer(config.optimizer, config.optimizer_params),
                      loss=_build_loss(config.loss, config.loss_params),
                      metrics=_check_metrics(config.metrics))
    _check_outputs(model)
    to_inputs = _input_adapter(model, features)

    batch_size = _worker_batch_size(config.batch_size, ctx.get_worker_count())
    # An unbounded input has no epoch count: it is read once, until it ends.
    epochs = config.epochs or ctx.get_epochs() or 1
    callbacks = []
    steps = None
    initial_epoch = 0
    if config.shuffle_seed is None:
        dataset = training_data.streaming(ctx, to_inputs, config.label_col, label_dtype, batch_size)
        # Recovery: restore the latest checkpoint (after a restart), save as the job says; the
        # input is replayed from the checkpoint's rows. (A share held in memory is dealt again
        # whole after a restart, so it starts over instead.)
        checkpoints = ctx.checkpoint(model, batch_size=batch_size)
        callbacks.append(checkpoints.keras_callback())
        initial_epoch = checkpoints.initial_epoch
    else:
        share = training_data.Share.read(context, ctx.get_input_schema(), to_inputs, config.label_col, label_dtype)
        ctx.report("loaded", rows=share.rows)
        dataset, steps = share.dataset(config.shuffle_seed, epochs, batch_size), share.steps(batch_size)
        callbacks.append(training_data.RowNotices(ctx, share.rows, batch_size))
    validation = None
    if config.validation_file is not None:
        rows = _validation_rows(ctx, config.validation_file, features, config.label_col)
        validation = training_data.from_rows(rows, to_inputs, config.label_col, label_dtype, batch_size)
    # Every worker computes the same all-reduced metrics; one report per epoch is enough.
    if ctx.is_chief():
        callbacks.append(_EpochReport(ctx))
    # TensorBoard events, written by the chief: the tensorboard_dir property, else beside the model.
    # Per epoch only: the loss every few steps needs a batch hook, and any batch hook makes Keras
    # run Python between every two steps (about a tenth of a small model's speed, decision 0008).
    callbacks.append(tensorboard_callback(ctx, log_dir=ctx.get_property("tensorboard_dir") or config.model_dir.rstrip("/") + ".tensorboard",
                                          update_freq="epoch"))
    model.fit(dataset, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps, verbose=0, callbacks=callbacks,
              validation_data=validation)

    _save(ctx, model, features, to_inputs, config, label_dtype)


# -- properties -------------------------------------------------------------------------------

_REQUIRED = object()


@dataclass
class _Config:
    model: str
    loss: str
    loss_params: dict
    optimizer: str
    optimizer_params: dict
    metrics: list
    feature_cols: list
    label_col: str
    batch_size: int
    model_dir: str
    prediction_col: str
    seed: int | None
    validation_file: str | None
    epochs: int | None
    shuffle_seed: int | None

    @classmethod
    def from_context(cls, ctx):
        label_col = _property(ctx, "label_col")
        return cls(
            model=_property(ctx, "model"),
            loss=_property(ctx, "loss"),
            loss_params=_json_property(ctx, "loss_params", dict, {}),
            optimizer=_property(ctx, "optimizer", "adam"),
            optimizer_params=_json_property(ctx, "optimizer_params", dict, {}),
            metrics=_string_list(ctx, "metrics", []),
            feature_cols=_string_list(ctx, "feature_cols", _REQUIRED),
            label_col=label_col,
            batch_size=_positive_int(ctx, "batch_size", 32),
            model_dir=_property(ctx, "model_dir"),
            prediction_col=_property(ctx, "prediction_col", label_col),
            seed=_int_property(ctx, "seed"),
            validation_file=_property(ctx, "validation_file", None),
            epochs=_int_property(ctx, "epochs"),
            shuffle_seed=_int_property(ctx, "shuffle_seed"),
        )


def _property(ctx, name, default=_REQUIRED):
    value = ctx.get_property(f"estimator.{name}")
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is _REQUIRED:
            hint = f" (give {_MODEL_FORMS})" if name == "model" else ""
            raise JobError(f"the estimator needs the property 'estimator.{name}'{hint}")
        return default
    return value.strip() if isinstance(value, str) else value


def _json_property(ctx, name, kind, default):
    text = _property(ctx, name, None)
    if text is None:
        return default
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise JobError(f"estimator.{name} is not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, kind):
        want = "object" if kind is dict else "list"
        raise JobError(f"estimator.{name} must be a JSON {want}, got {text!r}")
    return value


def _string_list(ctx, name, default):
    if default is _REQUIRED and _property(ctx, name, None) is None:
        raise JobError(f"the estimator needs the property 'estimator.{name}' (a JSON list of names)")
    values = _json_property(ctx, name, list, default)
    if not all(isinstance(v, str) and v for v in values):
        raise JobError(f"estimator.{name} must be a JSON list of names, got {values!r}")
    if default is _REQUIRED and not values:
        raise JobError(f"estimator.{name} is empty: name at least one column")
    return values


def _int_property(ctx, name):
    text = _property(ctx, name, None)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise JobError(f"estimator.{name} must be an integer, got {text!r}") from None


def _positive_int(ctx, name, default):
    text = _property(ctx, name, None)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise JobError(f"estimator.{name} must be a positive integer, got {text!r}")
    return value


# -- columns ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Column:
    """A feature column: its tensor dtype and width (None for a scalar, k for a k-vector)."""

    name: str
    dtype: tf.DType
    width: int | None

    @property
    def values_per_row(self):
        return 1 if self.width is None else self.width

    def spec(self):
        shape = [None] if self.width is None else [None, self.width]
        return tf.TensorSpec(shape, self.dtype, name=self.name)


def _feature_column(schema, name):
    if name not in schema.names:
        raise JobError(f"feature column '{name}' is not in the input; it has {', '.join(schema.names)}")
    dtype, width = _number_type(schema.field(name), f"feature column '{name}'")
    # TensorFlow renames signature inputs that are not Python-like identifiers ("x-1" becomes
    # "x_1"); the SavedModel's inputs must keep the columns' names, or inference cannot match them.
    if not (name[0].isalpha() and all(c.isalnum() or c == "_" for c in name)):
        raise JobError(f"feature column '{name}' cannot name a SavedModel input (TensorFlow accepts "
                         "letters, digits and '_', starting with a letter); rename it in the table")
    return _Column(name, dtype, width)


def _label_dtype(schema, name):
    if name not in schema.names:
        raise JobError(f"label column '{name}' is not in the input; it has {', '.join(schema.names)}")
    dtype, _ = _number_type(schema.field(name), f"label column '{name}'")
    # Keras's sparse losses want int64 class ids; every other loss computes in float32.
    return tf.int64 if dtype.is_integer else tf.float32


def _number_type(field, what):
    """(tf dtype, width or None) of a numeric column, or an error naming it."""
    t = field.type
    element = element_of(t)
    if element is not None and element.number:
        return tf.as_dtype(element.tf_name), t.list_size if pa.types.is_fixed_size_list(t) else None
    if any(check(t) for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view,
                                  pa.types.is_binary, pa.types.is_large_binary)):
        raise JobError(f"{what} is a string; the estimator needs numbers")
    raise JobError(f"{what} has type {t}; the estimator needs numbers (float32/64, int32/64, bool) "
                    "or fixed-size lists of them")


# -- model, loss, optimizer, metrics ------------------------------------------------------------

def _strategy(ctx):
    if ctx.get_worker_count() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _build_model(value):
    factory = _factory(value, "estimator.model")
    if factory is not None:
        model = factory()
        _check_model(model, f"estimator.model: {value} returned")
        return model
    lower = value.lower()
    if lower.endswith((".keras", ".h5", ".hdf5")):
        path = _find_file(value, "estimator.model")
        try:
            # Not compiled: the estimator's loss, optimizer and metrics replace the saved ones.
            model = tf.keras.models.load_model(path, compile=False)
        except Exception as error:
            raise JobError(f"estimator.model: cannot load the Keras model {path}: {error}") from error
    elif lower.endswith(".json"):
        path = _find_file(value, "estimator.model")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            model = tf.keras.models.model_from_json(text)
        except Exception as error:
            raise JobError(f"estimator.model: {path} is not a Keras model.to_json() file: {error}") from error
    else:
        raise JobError(f"estimator.model {value!r} is not a model the estimator can build; "
                         f"give {_MODEL_FORMS}")
    _check_model(model, f"estimator.model: {value} holds")
    return model


def _check_model(model, what):
    if isinstance(model, tf.keras.Model):
        return
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    hint = ""
    if kind.startswith("keras."):
        # `import keras` is Keras 3; dlflow's nodes train with Keras 2 (tf.keras, tf-keras).
        hint = "; it is a Keras 3 model: build it with tf.keras (Keras 2 on dlflow's nodes), not `import keras`"
    raise JobError(f"{what} a {kind}, not a tf.keras.Model{hint}")


def _check_outputs(model):
    outputs = model.outputs  # None until a Sequential without an Input is first called
    if outputs is not None and len(outputs) != 1:
        raise JobError(f"the model has {len(outputs)} outputs; the estimator trains a model with one "
                         "output against one label column")


def _build_loss(value, params):
    factory = _factory(value, "estimator.loss")
    if factory is not None:
        if _positional_params(factory) >= 2 and not params:
            return factory  # the loss function itself: loss(y_true, y_pred)
        loss = factory(**params)
        if not callable(loss):
            raise JobError(f"estimator.loss: {value} returned {type(loss).__name__}, not a loss")
        return loss
    if not params:
        try:
            return tf.keras.losses.get(value)
        except ValueError:
            raise JobError(f"estimator.loss {value!r} is not a Keras loss; give a tf.keras.losses name "
                             "('mse', 'sparse_categorical_crossentropy', ...) or FILE.py:FUNCTION") from None
    # Keras resolves {"class_name": "sparse_categorical_crossentropy", "config": ...} to the
    # plain function and drops the config without a word: parameters need the loss's class.
    cls = _loss_class(value)
    if cls is None:
        raise JobError(f"estimator.loss {value!r} names no tf.keras.losses class, so it cannot take "
                         f"estimator.loss_params; give a class name such as 'SparseCategoricalCrossentropy'")
    try:
        return cls(**params)
    except TypeError as error:
        raise JobError(f"estimator.loss_params do not fit {cls.__name__}: {error}") from None


def _loss_class(name):
    candidates = [_LOSS_CLASS_ALIASES.get(name.lower()),
                  "".join(part[:1].upper() + part[1:] for part in name.split("_"))]
    for candidate in candidates:
        cls = getattr(tf.keras.losses, candidate, None) if candidate else None
        if isinstance(cls, type) and issubclass(cls, tf.keras.losses.Loss):
            return cls
    return None


def _build_optimizer(value, params):
    factory = _factory(value, "estimator.optimizer")
    if factory is not None:
        optimizer = factory(**params)
        if not isinstance(optimizer, (tf.keras.optimizers.Optimizer, tf.keras.optimizers.legacy.Optimizer)):
            raise JobError(f"estimator.optimizer: {value} returned {type(optimizer).__name__}, "
                            "not a tf.keras optimizer")
        return optimizer
    try:
        optimizer = tf.keras.optimizers.get(value)
    except ValueError:
        raise JobError(f"estimator.optimizer {value!r} is not a Keras optimizer; give a tf.keras.optimizers "
                         "name ('adam', 'sgd', ...) or FILE.py:FUNCTION") from None
    if not params:
        return optimizer
    # The class of the named optimizer, not optimizers.get({"class_name": ...}): Keras 2
    # turns a lower-case class_name in a dict into its legacy optimizer.
    try:
        return type(optimizer)(**params)
    except (TypeError, ValueError) as error:
        raise JobError(f"estimator.optimizer_params do not fit {type(optimizer).__name__}: {error}") from None


def _check_metrics(names):
    for name in names:
        # metrics.get returns an unknown name unchanged; fit would fail on it much later.
        if name not in _COMPILE_METRIC_NAMES and not callable(_keras_metric(name)):
            raise JobError(f"estimator.metrics: {name!r} is not a Keras metric (names are tf.keras.metrics "
                             "functions or classes, e.g. 'accuracy', 'mae', 'AUC')")
    return list(names)


def _keras_metric(name):
    try:
        return tf.keras.metrics.get(name)
    except ValueError:
        return None


# -- FILE.py:FUNCTION ----------------------------------------------------------------------------

_LOADED_FILES = {}  # real path -> module: model and loss factories in one file share it


def _factory(value, what):
    """The function named by "FILE.py:FUNCTION", or None when the value has another form."""
    path, sep, name = value.rpartition(":")
    if not sep or not path.endswith(".py"):
        return None
    if not name.isidentifier():
        raise JobError(f"{what} {value!r}: '{name}' is not a function name (FILE.py:FUNCTION)")
    module = _import_file(_find_file(path, what))
    function = getattr(module, name, None)
    if not callable(function):
        raise JobError(f"{what} {value!r}: {module.__file__} has no function '{name}'")
    return function


def _find_file(path, what):
    """A user file: as given (absolute, or relative to the working directory), else on sys.path."""
    places = [path] if os.path.isabs(path) else [path] + [os.path.join(p or os.getcwd(), path) for p in sys.path]
    for place in places:
        if os.path.isfile(place):
            return os.path.realpath(place)
    raise JobError(f"{what}: no file {path} in the working directory ({os.getcwd()}) "
                            "or on the Python path (the node's PYTHONPATH)")


def _import_file(path):
    if path in _LOADED_FILES:
        return _LOADED_FILES[path]
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.append(folder)  # the factory may import modules next to it
    stem = os.path.splitext(os.path.basename(path))[0]
    # Under its own name when free, so that pickling and `from stem import ...` find it.
    name = stem if stem not in sys.modules else f"dlflow_estimator_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise JobError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _LOADED_FILES[path] = module
    return module


def _positional_params(function):
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in parameters
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


# -- features -> model input -----------------------------------------------------------------------

def _input_adapter(model, columns):
    """A function from a batch's columns ({name: [batch] or [batch, k]}) to the model's input.

    Training and serving both use it, so a saved model sees features exactly as in training.
    """
    inputs = model.inputs  # None until a Sequential without an Input is first called
    if inputs is not None and len(inputs) > 1:
        return _dict_adapter(model, columns)
    return _concat_adapter(inputs[0] if inputs else None, columns)


def _concat_adapter(model_input, columns):
    width = sum(c.values_per_row for c in columns)
    dtype, inner = _input_shape(model_input, width, f"the feature columns give {width} ({_widths(columns)})")

    def to_input(batch):
        x = tf.concat([_as_matrix(batch[c.name], c, dtype) for c in columns], axis=-1)
        return x if inner is None else tf.reshape(x, [-1, *inner])

    return to_input


def _dict_adapter(model, columns):
    names = list(model.input_names)
    if sorted(names) != sorted(c.name for c in columns):
        raise JobError(f"the model has {len(names)} inputs ({', '.join(names)}); with several inputs the "
                         f"estimator feeds one feature column to each input of the same name, and "
                         f"estimator.feature_cols is {', '.join(c.name for c in columns)}")
    by_name = {c.name: c for c in columns}
    plan = {}
    for name, model_input in zip(names, model.inputs):
        column = by_name[name]
        given = f"column '{name}' gives {column.values_per_row}"
        plan[name] = (column, *_input_shape(model_input, column.values_per_row, given))

    def to_inputs(batch):
        result = {}
        for name, (column, dtype, inner) in plan.items():
            x = _as_matrix(batch[name], column, dtype)
            result[name] = x if inner is None else tf.reshape(x, [-1, *inner])
        return result

    return to_inputs


def _input_shape(model_input, width, given):
    """(dtype, inner shape to reshape to or None) for feeding `width` values per row to an input."""
    if model_input is None:
        return tf.float32, None
    dtype = model_input.dtype if model_input.dtype.is_floating or model_input.dtype.is_integer else tf.float32
    inner = model_input.shape[1:]
    if not inner.is_fully_defined():
        return dtype, None
    inner = inner.as_list()
    if math.prod(inner) != width:
        raise JobError(f"the model's input '{model_input.name}' takes {math.prod(inner)} value(s) per row "
                         f"(shape {[None, *inner]}), but {given}")
    return dtype, (None if inner == [width] else inner)


def _as_matrix(tensor, column, dtype):
    """A column's batch as [batch, width] in the input's dtype: a scalar column is one wide."""
    tensor = tf.cast(tensor, dtype)
    return tf.expand_dims(tensor, -1) if column.width is None else tensor


def _widths(columns):
    return ", ".join(f"{c.name}: {c.values_per_row}" for c in columns)


# -- training -------------------------------------------------------------------------------------

def _worker_batch_size(global_batch, workers):
    if global_batch % workers:
        raise JobError(f"estimator.batch_size {global_batch} is the global batch, split evenly across the "
                         f"{workers} workers: give a multiple of {workers}")
    return global_batch // workers


def _validation_rows(ctx, path, features, label_col):
    """This worker's equal part of the validation rows in the Arrow file `path`, checked
    against the training columns (every worker scores the same number of rows; the rest of an
    uneven count is not scored)."""
    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    for column in features:
        if column.name not in table.schema.names:
            raise JobError(f"feature column '{column.name}' is not in the validation rows; they have "
                             f"{', '.join(table.schema.names)}")
        _, width = _number_type(table.schema.field(column.name), f"validation feature column '{column.name}'")
        if width != column.width:
            raise JobError(f"validation feature column '{column.name}' has {width or 1} value(s) per row, the "
                             f"training rows have {column.values_per_row}")
    _label_dtype(table.schema, label_col)
    share = table.num_rows // ctx.get_worker_count()
    return table.slice(ctx.get_index() * share, share).select([c.name for c in features] + [label_col])


class _EpochReport(tf.keras.callbacks.Callback):
    """Sends every epoch's metrics to the job: ``epoch`` (from 0, like dlflow's epochs) and the logs."""

    def __init__(self, ctx):
        super().__init__()
        self._ctx = ctx

    def on_epoch_end(self, epoch, logs=None):
        self._ctx.report("epoch", epoch=int(epoch), **{k: float(v) for k, v in (logs or {}).items()})


# -- saving ---------------------------------------------------------------------------------------

def _serving_function(model, columns, to_inputs, prediction_col, label_dtype):
    # One positional argument per column: a TensorSpec's name becomes the signature input's
    # name, which is how dlflow's inference matches inputs to the table's columns.
    @tf.function(input_signature=[c.spec() for c in columns])
    def serve(*tensors):
        batch = dict(zip((c.name for c in columns), tensors))
        prediction = model(to_inputs(batch), training=False)
        if prediction.shape.rank is not None and prediction.shape.rank >= 2 and prediction.shape[-1] == 1:
            prediction = tf.squeeze(prediction, axis=-1)  # [n, 1] -> [n]: one value per row
        elif label_dtype.is_integer and prediction.shape.rank == 2:
            # An integer label with one score per class: the prediction is the class, like the label.
            prediction = tf.argmax(prediction, axis=-1, output_type=label_dtype)
        return {prediction_col: prediction}

    return serve


def _save(ctx, model, columns, to_inputs, config, label_dtype):
    serve = _serving_function(model, columns, to_inputs, config.prediction_col, label_dtype)
    chief = ctx.is_chief()
    # Under MultiWorkerMirroredStrategy saving reads variables with collective ops, so every
    # worker saves; only the chief keeps its copy.
    path = config.model_dir if chief else tempfile.mkdtemp(prefix="dlflow-estimator-")
    try:
        tf.saved_model.save(model, path, signatures={"serving_default": serve})
    finally:
        if not chief:
            shutil.rmtree(path, ignore_errors=True)
    if chief:
        description = {"feature_cols": config.feature_cols, "label_col": config.label_col,
                       "prediction_col": config.prediction_col}
        with open(os.path.join(path, ESTIMATOR_FILE), "w", encoding="utf-8") as f:
            json.dump(description, f, indent=2)
            f.write("\n")
