"""TensorFlow / tf-keras objects behind `toolkit.compat.bert4keras`.

Imported on first use through that module, never directly: importing it
imports TensorFlow, which must happen after `prepare_environment()`.

The loss repeats the formulation of `toolkit.losses` with `tf` ops, because
the Keras 3 functions cannot be imported in a bert4keras process (see
`toolkit.compat.bert4keras`). `tests/test_bert4keras_interop.py` checks that
both give the same values.
"""

import json
import math
import numbers
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

# --------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------


def _compute_dtype(dtype):
    """float32 for half precision and non-float inputs, the input's float type otherwise."""
    if dtype in (tf.float16, tf.bfloat16) or not dtype.is_floating:
        return tf.float32
    return dtype


def _log1p_sum_exp(x, weight):
    """`log(1 + sum(weight * exp(x)))` over the last axis, stable for any finite `x`.

    As in `toolkit.losses`: entries with `weight == 0` drop out, the shift is
    held constant for the gradient, and log1p/expm1 keep a loss near 0 exact.
    """
    present = weight > 0
    shifted = tf.where(present, x + tf.math.log(tf.where(present, weight, tf.ones_like(weight))), tf.zeros_like(x))
    peak = tf.stop_gradient(tf.maximum(tf.reduce_max(shifted, axis=-1), 0.0))
    total = tf.reduce_sum(tf.where(present, tf.exp(shifted - peak[..., None]), tf.zeros_like(x)), axis=-1)
    return peak + tf.math.log1p(tf.math.expm1(-peak) + total)


def _usable(y_pred, mask):
    """True where a class takes part in the loss: not masked, logit not -inf."""
    usable = tf.logical_not(tf.logical_and(tf.math.is_inf(y_pred), y_pred < 0))
    if mask is not None:
        usable = tf.logical_and(usable, tf.cast(mask, tf.bool))
    return usable


def multilabel_categorical_crossentropy(y_true, y_pred, mask=None):
    """Multi-label categorical crossentropy over the last axis of raw logits.

    `log(1 + sum_{j not in P} exp(s_j)) + log(1 + sum_{i in P} exp(-s_i))`,
    or for soft targets `t` in [0, 1],
    `log(1 + sum (1 - t_j) exp(s_j)) + log(1 + sum t_i exp(-s_i))`: the value
    of bert4keras' `multilabel_categorical_crossentropy`, computed without
    overflow at any logit scale. Logits equal to `-inf` (and bert4keras'
    `-1e12` masking value, whose terms are 0) and entries where `mask` is
    False take no part.

    Args:
        y_true: multi-hot or soft targets, the shape of `y_pred`.
        y_pred: logits (no sigmoid), `[..., num_classes]`.
        mask: optional boolean tensor broadcastable to `y_pred`.

    Returns:
        The loss per row, `y_pred.shape[:-1]` (float32 for half precision).

    Example:

    >>> import numpy as np
    >>> loss = multilabel_categorical_crossentropy(np.array([[1.0, 0.0, 1.0]]), np.array([[3.0, -2.0, 0.5]]))
    >>> round(float(loss[0]), 4)
    0.6315
    """
    y_pred = tf.convert_to_tensor(y_pred)
    dtype = _compute_dtype(y_pred.dtype)
    y_pred = tf.cast(y_pred, dtype)
    y_true = tf.cast(y_true, dtype)
    usable = tf.cast(_usable(y_pred, mask), dtype)
    logits = tf.where(usable > 0, y_pred, tf.zeros_like(y_pred))
    negative = _log1p_sum_exp(logits, (1.0 - y_true) * usable)
    positive = _log1p_sum_exp(-logits, y_true * usable)
    return negative + positive


def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False):
    """Multi-label categorical crossentropy with targets given as class indices.

    `y_true` holds per row the indices of the target classes, padded with -1,
    or with `mask_zero=True` padded with 0, class 0 being reserved and never
    scored (bert4keras' `mask_zero=True`). An index listed twice counts once,
    and a row whose every class is a target is exact (bert4keras clips it).

    Args:
        y_true: integer tensor `[..., max_targets]`.
        y_pred: logits `[..., num_classes]`, same leading shape; the number of
            classes must be static.
        mask_zero: whether index 0 is padding and class 0 is left out.

    Returns:
        The loss per row, `y_pred.shape[:-1]`.

    Example:

    >>> import numpy as np
    >>> loss = sparse_multilabel_categorical_crossentropy(np.array([[0, 2, -1]]), np.array([[3.0, -2.0, 0.5]]))
    >>> round(float(loss[0]), 4)
    0.6315
    """
    y_pred = tf.convert_to_tensor(y_pred)
    num_classes = y_pred.shape[-1]
    if num_classes is None:
        raise ValueError(
            "sparse_multilabel_categorical_crossentropy needs the number of classes (the last axis of "
            f"y_pred) to be known; got y_pred of shape {y_pred.shape}."
        )
    dtype = _compute_dtype(y_pred.dtype)
    leading_shape = tf.shape(y_pred)[:-1]
    logits = tf.reshape(tf.cast(y_pred, dtype), (-1, num_classes))
    y_true = tf.convert_to_tensor(y_true)
    indices = tf.cast(y_true, tf.int32)
    indices = tf.reshape(indices, (-1, tf.shape(indices)[-1]))

    first_valid = 1 if mask_zero else 0
    valid_index = tf.logical_and(indices >= first_valid, indices < num_classes)
    # An index listed twice counts once: sort, then drop repeats of the previous one.
    ordered = tf.sort(tf.where(valid_index, indices, -tf.ones_like(indices)), axis=-1)
    repeat = tf.concat([tf.zeros_like(ordered[:, :1], dtype=tf.bool), ordered[:, 1:] == ordered[:, :-1]], axis=-1)
    valid_index = tf.logical_and(ordered >= first_valid, tf.logical_not(repeat))
    safe_index = tf.where(valid_index, ordered, tf.zeros_like(ordered))

    rows = tf.shape(logits)[0]
    row_ids = tf.broadcast_to(tf.range(rows)[:, None], tf.shape(safe_index))
    scatter_at = tf.stack([tf.reshape(row_ids, (-1,)), tf.reshape(safe_index, (-1,))], axis=-1)
    is_target = tf.scatter_nd(scatter_at, tf.reshape(tf.cast(valid_index, dtype), (-1,)), (rows, num_classes))

    usable = _usable(logits, None)
    if mask_zero:
        usable = tf.logical_and(usable, tf.range(num_classes)[None, :] > 0)
    usable = tf.cast(usable, dtype)
    safe_logits = tf.where(usable > 0, logits, tf.zeros_like(logits))
    negative = _log1p_sum_exp(safe_logits, (1.0 - tf.minimum(is_target, 1.0)) * usable)

    target_logits = tf.gather(safe_logits, safe_index, batch_dims=1)
    target_usable = tf.gather(usable, safe_index, batch_dims=1)
    positive = _log1p_sum_exp(-target_logits, tf.cast(valid_index, dtype) * target_usable)
    return tf.reshape(negative + positive, leading_shape)


@tf_keras.saving.register_keras_serializable(package="toolkit")
class MultilabelCategoricalCrossentropy(tf_keras.losses.Loss):
    """tf-keras loss wrapping `multilabel_categorical_crossentropy`.

    Multi-hot or soft targets in [0, 1]; `-inf` logits take no part. The
    model outputs raw logits, and a class is predicted when its logit is > 0.

    Example:

    ```python
    model.compile(optimizer=Adam(2e-5), loss=MultilabelCategoricalCrossentropy())
    ```
    """

    def __init__(self, reduction="auto", name="multilabel_categorical_crossentropy"):
        super().__init__(reduction=reduction, name=name)

    def call(self, y_true, y_pred):
        return multilabel_categorical_crossentropy(y_true, y_pred)


@tf_keras.saving.register_keras_serializable(package="toolkit")
class SparseMultilabelCategoricalCrossentropy(tf_keras.losses.Loss):
    """tf-keras loss wrapping `sparse_multilabel_categorical_crossentropy`.

    Args:
        mask_zero: index 0 in the targets is padding and class 0 is reserved.

    Example:

    ```python
    # y: int array [batch, max_labels] of class ids, padded with 0; class 0 is never a label
    model.compile(optimizer=Adam(2e-5), loss=SparseMultilabelCategoricalCrossentropy(mask_zero=True))
    ```
    """

    def __init__(self, mask_zero=False, reduction="auto", name="sparse_multilabel_categorical_crossentropy"):
        super().__init__(reduction=reduction, name=name)
        self.mask_zero = bool(mask_zero)

    def call(self, y_true, y_pred):
        return sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=self.mask_zero)

    def get_config(self):
        config = super().get_config()
        config["mask_zero"] = self.mask_zero
        return config


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------

AVERAGES = ("micro", "macro", "weighted", "samples", None)


def _check_threshold(owner, threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise ValueError(
            f"The 'threshold' argument of {owner} must be a finite number on the logit scale "
            f"(0.0 for this loss). Got {threshold!r} instead."
        )
    return float(threshold)


def _prepare(y_true, y_pred, threshold, mask, sample_weight):
    """Predicted and true 0/1 tensors and per-entry weights, all float32."""
    y_pred = tf.convert_to_tensor(y_pred)
    predicted = tf.cast(tf.cast(y_pred, tf.float32) > threshold, tf.float32)
    actual = tf.cast(tf.cast(y_true, tf.float32) > 0.5, tf.float32)
    weight = tf.ones_like(predicted)
    if mask is not None:
        weight = weight * tf.cast(mask, tf.float32)
    if sample_weight is not None:
        sample_weight = tf.cast(sample_weight, tf.float32)
        # A per-row weight: align it with the leading axes, then broadcast.
        while sample_weight.shape.rank < y_pred.shape.rank:
            sample_weight = sample_weight[..., None]
        weight = weight * sample_weight
    return actual, predicted, weight


def _divide(numerator, denominator, zero_division):
    numerator = tf.convert_to_tensor(numerator)
    denominator = tf.convert_to_tensor(denominator)
    safe = tf.where(denominator > 0, denominator, tf.ones_like(denominator))
    return tf.where(denominator > 0, numerator / safe, tf.fill(tf.shape(numerator), zero_division))


class _MultilabelConfusionMetric(tf_keras.metrics.Metric):
    """Shared state and averaging of the F1, precision and recall metrics."""

    _metric_name = None  # "f1", "precision" or "recall"

    def __init__(self, threshold=0.0, average="micro", num_classes=None, zero_division=0.0, name=None, dtype=None):
        owner = type(self).__name__
        if average not in AVERAGES:
            raise ValueError(
                f"The 'average' argument of {owner} must be one of 'micro', 'macro', 'weighted', "
                f"'samples' or None. Got {average!r} instead."
            )
        if isinstance(zero_division, bool) or zero_division not in (0, 1):
            raise ValueError(
                f"The 'zero_division' argument of {owner} must be 0.0 or 1.0. Got {zero_division!r} instead."
            )
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1
        ):
            raise ValueError(
                f"The 'num_classes' argument of {owner} must be a positive integer or None. "
                f"Got {num_classes!r} instead."
            )
        if name is None:
            name = self._metric_name if average is None else f"{average}_{self._metric_name}"
        super().__init__(name=name, dtype=dtype or "float32")
        self.threshold = _check_threshold(owner, threshold)
        self.average = average
        self.num_classes = None if num_classes is None else int(num_classes)
        self.zero_division = float(zero_division)
        self._state_built = False
        if average == "samples":
            self.score_sum = self.add_weight(name="score_sum", shape=(), initializer="zeros")
            self.row_weight = self.add_weight(name="row_weight", shape=(), initializer="zeros")
            self._state_built = True
        elif average == "micro":
            self._build_counts(())
        elif self.num_classes is not None:
            self._build_counts((self.num_classes,))

    def _build_counts(self, shape):
        self.true_positives = self.add_weight(name="true_positives", shape=shape, initializer="zeros")
        self.false_positives = self.add_weight(name="false_positives", shape=shape, initializer="zeros")
        self.false_negatives = self.add_weight(name="false_negatives", shape=shape, initializer="zeros")
        self._state_built = True

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        y_pred = tf.convert_to_tensor(y_pred)
        if not self._state_built:
            if y_pred.shape[-1] is None:
                raise ValueError(
                    f"{type(self).__name__}(average={self.average!r}) keeps one count per class and needs "
                    f"the number of classes: pass num_classes=... Got logits of shape {y_pred.shape}."
                )
            self.num_classes = int(y_pred.shape[-1])
            with tf.init_scope():  # the first update may run inside tf-keras' tf.function
                self._build_counts((self.num_classes,))
        if self.average not in ("micro", "samples") and y_pred.shape[-1] != self.num_classes:
            raise ValueError(
                f"{self.name}: expected logits with {self.num_classes} classes on the last axis, "
                f"got shape {y_pred.shape}."
            )
        actual, predicted, weight = _prepare(y_true, y_pred, self.threshold, mask, sample_weight)
        hit = actual * predicted * weight
        false_alarm = (1.0 - actual) * predicted * weight
        miss = actual * (1.0 - predicted) * weight
        if self.average == "samples":
            scores = self._score(
                tf.reduce_sum(hit, axis=-1), tf.reduce_sum(false_alarm, axis=-1), tf.reduce_sum(miss, axis=-1)
            )
            # A row counts with its weight; a row whose every entry is masked does not count.
            row_weight = tf.reduce_max(weight, axis=-1)
            self.score_sum.assign_add(tf.reduce_sum(scores * row_weight))
            self.row_weight.assign_add(tf.reduce_sum(row_weight))
            return
        axes = None if self.average == "micro" else list(range(y_pred.shape.rank - 1))
        self.true_positives.assign_add(tf.reduce_sum(hit, axis=axes))
        self.false_positives.assign_add(tf.reduce_sum(false_alarm, axis=axes))
        self.false_negatives.assign_add(tf.reduce_sum(miss, axis=axes))

    def _score(self, tp, fp, fn):
        raise NotImplementedError

    def result(self):
        if self.average == "samples":
            return _divide(self.score_sum, self.row_weight, 0.0)
        if not self._state_built:
            raise ValueError(f"{self.name}: result() called before any update_state().")
        true_positives = tf.convert_to_tensor(self.true_positives)
        false_negatives = tf.convert_to_tensor(self.false_negatives)
        scores = self._score(true_positives, tf.convert_to_tensor(self.false_positives), false_negatives)
        if self.average in ("micro", None):
            return scores
        if self.average == "macro":
            return tf.reduce_mean(scores)
        support = true_positives + false_negatives
        return _divide(tf.reduce_sum(scores * support), tf.reduce_sum(support), self.zero_division)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))

    def get_config(self):
        config = super().get_config()
        config.update(
            threshold=self.threshold,
            average=self.average,
            num_classes=self.num_classes,
            zero_division=self.zero_division,
        )
        return config


@tf_keras.saving.register_keras_serializable(package="toolkit")
class MultilabelF1Score(_MultilabelConfusionMetric):
    """tf-keras F1 score of multi-label predictions `logits > threshold`.

    Same arguments and values as `toolkit.metrics.MultilabelF1Score` and
    `sklearn.metrics.f1_score(y_true, logits > 0, average=..., zero_division=...)`.

    Args:
        threshold: decision threshold on the logits; 0.0 for this loss.
        average: "micro", "macro", "weighted", "samples" or None (per class).
        num_classes: number of classes, for the per-class averages; taken
            from the first batch when None.
        zero_division: the score of an undefined ratio: 0.0 or 1.0.

    Example:

    >>> import numpy as np
    >>> metric = MultilabelF1Score(average="micro")
    >>> metric.update_state(np.array([[1.0, 0.0, 1.0]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.5
    """

    _metric_name = "f1"

    def _score(self, tp, fp, fn):
        return _divide(2.0 * tp, 2.0 * tp + fp + fn, self.zero_division)


@tf_keras.saving.register_keras_serializable(package="toolkit")
class MultilabelPrecision(_MultilabelConfusionMetric):
    """tf-keras precision of `logits > threshold`; arguments as `MultilabelF1Score`.

    Example:

    >>> import numpy as np
    >>> metric = MultilabelPrecision(average="macro")
    >>> metric.update_state(np.array([[1.0, 0.0, 1.0]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.3333
    """

    _metric_name = "precision"

    def _score(self, tp, fp, fn):
        return _divide(tp, tp + fp, self.zero_division)


@tf_keras.saving.register_keras_serializable(package="toolkit")
class MultilabelRecall(_MultilabelConfusionMetric):
    """tf-keras recall of `logits > threshold`; arguments as `MultilabelF1Score`.

    Example:

    >>> import numpy as np
    >>> metric = MultilabelRecall(average="micro")
    >>> metric.update_state(np.array([[1.0, 0.0, 1.0]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.5
    """

    _metric_name = "recall"

    def _score(self, tp, fp, fn):
        return _divide(tp, tp + fn, self.zero_division)


@tf_keras.saving.register_keras_serializable(package="toolkit")
class SubsetAccuracy(tf_keras.metrics.Metric):
    """tf-keras fraction of rows whose every label is predicted right (`logit > 0`).

    `sklearn.metrics.accuracy_score` on indicator arrays; report it rather
    than binary accuracy, which is near 1 for any model when labels are sparse.

    Example:

    >>> import numpy as np
    >>> metric = SubsetAccuracy()
    >>> metric.update_state(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[3.0, -1.0], [2.0, 1.0]]))
    >>> float(metric.result())
    0.5
    """

    def __init__(self, threshold=0.0, name="subset_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype or "float32")
        self.threshold = _check_threshold(type(self).__name__, threshold)
        self.exact_rows = self.add_weight(name="exact_rows", shape=(), initializer="zeros")
        self.row_weight = self.add_weight(name="row_weight", shape=(), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        actual, predicted, weight = _prepare(y_true, y_pred, self.threshold, mask, sample_weight)
        present = tf.cast(weight > 0, tf.float32)
        wrong = tf.reduce_max(tf.abs(actual - predicted) * present, axis=-1)
        row_weight = tf.reduce_max(weight, axis=-1)
        self.exact_rows.assign_add(tf.reduce_sum((1.0 - wrong) * row_weight))
        self.row_weight.assign_add(tf.reduce_sum(row_weight))

    def result(self):
        return _divide(self.exact_rows, self.row_weight, 0.0)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))

    def get_config(self):
        config = super().get_config()
        config["threshold"] = self.threshold
        return config


# --------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------

_META_FILE = "predictor.json"
# tf-keras' own zip format: not a Keras 3 `.keras` file, hence the name.
_MODEL_FILES = {"keras": "tf_keras_model.keras", "tf": "saved_model"}
_predictor_class = None


def predictor_class():
    """`TFKerasMultilabelPredictor`, defined on first use.

    `toolkit.predictors` imports Keras 3 at its top, which must not happen
    before bert4keras is imported (see `toolkit.compat.bert4keras`), so the
    subclass is defined only when first asked for.
    """
    global _predictor_class
    if _predictor_class is None:
        _predictor_class = _define_predictor_class()
    return _predictor_class


def _keras3_in_sys_modules():
    module = sys.modules.get("keras")
    return module is not None and str(getattr(module, "__version__", "")).startswith("3.")


def _define_predictor_class():
    keras3_before = _keras3_in_sys_modules()
    from toolkit.predictors import MultilabelPredictor

    if not keras3_before and _keras3_in_sys_modules() and "bert4keras.backend" not in sys.modules:
        raise ImportError(
            "TFKerasMultilabelPredictor was used before bert4keras was imported, and its base class "
            "(toolkit.predictors) imports Keras 3, which breaks bert4keras. Import bert4keras "
            "(e.g. `from bert4keras.models import build_transformer_model`) before using "
            "TFKerasMultilabelPredictor."
        )

    class TFKerasMultilabelPredictor(MultilabelPredictor):
        """`toolkit.predictors.MultilabelPredictor` over a tf-keras (bert4keras) model.

        Prediction is inherited unchanged (`predict`, `predict_labels`,
        `predict_proba`, `predict_scored`, `decision_function`; the rule is
        `logit > 0`). Saving differs, as a Keras 3 `.keras` file cannot hold a
        tf-keras model: `save` writes the model in tf-keras' own format
        (`tf_keras_model.keras`, the default) or as a SavedModel folder
        (`save_format="tf"`, for TensorFlow Serving; much slower to write)
        beside `predictor.json`, and `load` reads it back with tf-keras. HDF5
        is not offered: bert4keras' `FeedForward` layer saves its activation
        in a form tf-keras cannot read back from HDF5. The preprocessor (a
        bert4keras tokenizer call, say) is not saved: pass it again to `load`.

        Args:
            model: a tf-keras model whose output is `[n, num_classes]` logits.
            label_names, batch_size, at_least_one, preprocessor: as for
                `MultilabelPredictor`.
            save_format: "keras" (default) or "tf" (SavedModel).

        Example:

        ```python
        predictor = TFKerasMultilabelPredictor(model, label_names, preprocessor=encode_texts)
        predictor.predict_labels(["a text", "another"])
        predictor.save("run/predictor")
        # bert4keras' layers register with tf-keras when bert4keras.models is
        # imported: import it before loading a bert4keras model.
        predictor = TFKerasMultilabelPredictor.load("run/predictor", preprocessor=encode_texts)
        ```
        """

        def __init__(
            self, model, label_names, *, batch_size=256, at_least_one=False, preprocessor=None, save_format="keras"
        ):
            if save_format not in _MODEL_FILES:
                raise ValueError(
                    f"The 'save_format' argument must be 'keras' or 'tf'. Got {save_format!r} instead."
                )
            super().__init__(
                model, label_names, batch_size=batch_size, at_least_one=at_least_one, preprocessor=preprocessor
            )
            self.save_format = save_format

        def save(self, directory):
            """Write the model, the label names and the settings to a folder.

            The model and `predictor.json` are written under temporary names
            and renamed into place, so an interrupted save leaves no
            half-written file. The preprocessor is not saved (`predictor.json`
            says `"preprocessor": null`): pass it to `load` again.
            """
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            model_name = _MODEL_FILES[self.save_format]
            target = directory / model_name
            if self.save_format == "keras":
                temporary = directory / "tf_keras_model.tmp.keras"
                self.model.save(temporary)
            else:
                temporary = directory / "saved_model.tmp"
                self.model.save(temporary, save_format="tf", include_optimizer=False)
                if target.exists():
                    shutil.rmtree(target)
            os.replace(temporary, target)
            meta = {
                "label_names": self.label_names,
                "batch_size": self.batch_size,
                "at_least_one": self.at_least_one,
                "preprocessor": None,
                "keras": "tf_keras",
                "model": model_name,
            }
            temporary_meta = directory / (_META_FILE + ".tmp")
            temporary_meta.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(temporary_meta, directory / _META_FILE)

        @classmethod
        def load(cls, directory, *, custom_objects=None, safe_mode=True, **overrides):
            """Load a predictor written by `save`; keyword arguments override settings.

            Args:
                directory: the folder `save` wrote.
                custom_objects: layers the model needs that are not registered
                    with tf-keras (bert4keras' own are, once
                    `bert4keras.models` is imported).
                safe_mode: False to allow `Lambda` layers, whose Python code
                    is run from the file: only for files you trust.
                **overrides: `preprocessor=`, `batch_size=`, `at_least_one=`.
            """
            directory = Path(directory)
            meta_path = directory / _META_FILE
            if not meta_path.is_file():
                raise FileNotFoundError(
                    f"{meta_path} not found: {directory} is not a folder written by "
                    "TFKerasMultilabelPredictor.save()."
                )
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("keras") != "tf_keras":
                raise ValueError(
                    f"{directory} holds a Keras 3 predictor: load it with "
                    "toolkit.predictors.MultilabelPredictor.load()."
                )
            model_path = directory / meta["model"]
            if meta["model"] == _MODEL_FILES["keras"]:
                model = tf_keras.models.load_model(
                    model_path, custom_objects=custom_objects, compile=False, safe_mode=safe_mode
                )
            else:
                model = tf_keras.models.load_model(model_path, custom_objects=custom_objects, compile=False)
            settings = {
                "batch_size": meta.get("batch_size", 256),
                "at_least_one": meta.get("at_least_one", False),
                "save_format": "tf" if meta["model"] == _MODEL_FILES["tf"] else "keras",
            }
            settings.update(overrides)
            return cls(model, meta["label_names"], **settings)

    TFKerasMultilabelPredictor.__module__ = "toolkit.compat.bert4keras"
    TFKerasMultilabelPredictor.__qualname__ = "TFKerasMultilabelPredictor"
    return TFKerasMultilabelPredictor


# --------------------------------------------------------------------------
# A tiny Google-format BERT checkpoint
# --------------------------------------------------------------------------

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def write_random_bert_checkpoint(
    directory,
    vocabulary,
    *,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    seed=0,
):
    """Write a randomly initialised BERT in Google's checkpoint format.

    The folder gets `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*`
    with the variable names of Google's BERT release (`bert/embeddings/...`,
    `bert/encoder/layer_0/...`, `bert/pooler/...`), which is what bert4keras'
    `build_transformer_model(config_path, checkpoint_path)` reads. Weights are
    drawn from N(0, 0.02) like BERT's initialiser; LayerNorm starts at
    identity. For tests and examples that must run without a download.

    Args:
        directory: folder to write into (created if missing).
        vocabulary: the tokens in id order; must include `[PAD]`, `[UNK]`,
            `[CLS]`, `[SEP]` and `[MASK]`.
        hidden_size, num_hidden_layers, num_attention_heads,
        intermediate_size, max_position_embeddings: the BERT size.
        seed: seed of the random weights.

    Returns:
        `(config_path, checkpoint_path, vocab_path)` as strings; the
        checkpoint path is the prefix `.../bert_model.ckpt`.

    Example:

    ```python
    config_path, checkpoint_path, vocab_path = write_random_bert_checkpoint(
        "/tmp/tiny_bert", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]
    )
    bert = build_transformer_model(config_path, checkpoint_path)
    ```
    """
    vocabulary = [str(token) for token in vocabulary]
    missing = [token for token in SPECIAL_TOKENS if token not in vocabulary]
    if missing:
        raise ValueError(f"The vocabulary must contain the special tokens {missing}.")
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError("The vocabulary has repeated tokens.")
    if hidden_size % num_attention_heads:
        raise ValueError(
            f"hidden_size ({hidden_size}) must be a multiple of num_attention_heads ({num_attention_heads})."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": max_position_embeddings,
        "num_attention_heads": num_attention_heads,
        "num_hidden_layers": num_hidden_layers,
        "type_vocab_size": 2,
        "vocab_size": len(vocabulary),
    }
    config_path = directory / "bert_config.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    vocab_path = directory / "vocab.txt"
    vocab_path.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")

    rng = np.random.default_rng(seed)
    variables = {}

    def dense(name, inputs, outputs):
        variables[f"{name}/kernel"] = rng.normal(0.0, 0.02, (inputs, outputs))
        variables[f"{name}/bias"] = np.zeros(outputs)

    def layer_norm(name):
        variables[f"{name}/gamma"] = np.ones(hidden_size)
        variables[f"{name}/beta"] = np.zeros(hidden_size)

    variables["bert/embeddings/word_embeddings"] = rng.normal(0.0, 0.02, (len(vocabulary), hidden_size))
    variables["bert/embeddings/token_type_embeddings"] = rng.normal(0.0, 0.02, (2, hidden_size))
    variables["bert/embeddings/position_embeddings"] = rng.normal(0.0, 0.02, (max_position_embeddings, hidden_size))
    layer_norm("bert/embeddings/LayerNorm")
    for index in range(num_hidden_layers):
        prefix = f"bert/encoder/layer_{index}"
        for projection in ("query", "key", "value"):
            dense(f"{prefix}/attention/self/{projection}", hidden_size, hidden_size)
        dense(f"{prefix}/attention/output/dense", hidden_size, hidden_size)
        layer_norm(f"{prefix}/attention/output/LayerNorm")
        dense(f"{prefix}/intermediate/dense", hidden_size, intermediate_size)
        dense(f"{prefix}/output/dense", intermediate_size, hidden_size)
        layer_norm(f"{prefix}/output/LayerNorm")
    dense("bert/pooler/dense", hidden_size, hidden_size)

    checkpoint_path = directory / "bert_model.ckpt"
    names = sorted(variables)
    # SaveV2 writes the V2 format of a TF1 Saver (.index + .data-*), eagerly.
    tf.raw_ops.SaveV2(
        prefix=str(checkpoint_path),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(variables[name], dtype=tf.float32) for name in names],
    )
    (directory / "checkpoint").write_text(
        'model_checkpoint_path: "bert_model.ckpt"\nall_model_checkpoint_paths: "bert_model.ckpt"\n',
        encoding="utf-8",
    )
    return str(config_path), str(checkpoint_path), str(vocab_path)
