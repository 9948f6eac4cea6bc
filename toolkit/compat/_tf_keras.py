"""TensorFlow / tf-keras objects behind `toolkit.compat.bert4keras`.

Imported on first use through that module, never directly: importing it
imports TensorFlow, which must happen after `prepare_environment()`.

The loss and the metrics are the code of the Keras 3 `toolkit.losses` and
`toolkit.metrics`, `toolkit._formulas`, run on `toolkit.compat._tf_ops` (the
`keras.ops` names written with TensorFlow) instead of `keras.ops`: Keras 3
itself cannot be imported in a bert4keras process (see
`toolkit.compat.bert4keras`). What is written here is tf-keras' own: the
classes' bases and registration, and the predictor's saving.
`tests/test_bert4keras_interop.py` checks that both give the same values.
"""

from pathlib import Path

import tensorflow as tf
import tf_keras

from toolkit import _formulas
from toolkit.atomic import replace_directory, replace_file, write_json_atomic
from toolkit.compat import _tf_ops
from toolkit.predictors import MultilabelPredictor

# --------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------


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
    return _formulas.multilabel_categorical_crossentropy(_tf_ops, y_true, y_pred, mask=mask)


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
    return _formulas.sparse_multilabel_categorical_crossentropy(_tf_ops, y_true, y_pred, mask_zero=mask_zero)


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
        mask_zero: index 0 in the targets is padding and class 0 is reserved,
            as with bert4keras' `mask_zero=True`.

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
        return {**super().get_config(), "mask_zero": self.mask_zero}


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


class _MultilabelConfusionMetric(_formulas.ConfusionMetric, tf_keras.metrics.Metric):
    """The F1, precision and recall metrics in tf-keras: `toolkit._formulas.ConfusionMetric` on `tf` ops."""

    _ops = _tf_ops

    def _state_scope(self):
        # Per-class counts are made on the first update, which may run inside tf-keras' tf.function.
        return tf.init_scope()


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

    Example (in a process set up by `prepare_environment()`):

    >>> import numpy as np
    >>> metric = MultilabelF1Score(average="micro")
    >>> metric.update_state(np.array([[1.0, 0.0, 1.0]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.5

    In a bert4keras model: `model.compile(..., metrics=[MultilabelF1Score(average="micro")])`.
    """

    _metric_name = "f1"


@tf_keras.saving.register_keras_serializable(package="toolkit")
class MultilabelPrecision(_MultilabelConfusionMetric):
    """tf-keras precision of `logits > threshold`; arguments as `MultilabelF1Score`.

    Example (in a process set up by `prepare_environment()`):

    >>> import numpy as np
    >>> metric = MultilabelPrecision(average="macro")
    >>> metric.update_state(np.array([[1.0, 0.0, 1.0]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.3333

    Matches `sklearn.metrics.precision_score`.
    """

    _metric_name = "precision"


@tf_keras.saving.register_keras_serializable(package="toolkit")
class MultilabelRecall(_MultilabelConfusionMetric):
    """tf-keras recall of `logits > threshold`; arguments as `MultilabelF1Score`.

    Example (in a process set up by `prepare_environment()`):

    >>> import numpy as np
    >>> metric = MultilabelRecall(average="micro")
    >>> metric.update_state(np.array([[1.0, 0.0, 1.0]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.5

    Matches `sklearn.metrics.recall_score`.
    """

    _metric_name = "recall"


@tf_keras.saving.register_keras_serializable(package="toolkit")
class SubsetAccuracy(_formulas.SubsetAccuracyMetric, tf_keras.metrics.Metric):
    """tf-keras fraction of rows whose every label is predicted right (`logit > 0`).

    Example (in a process set up by `prepare_environment()`):

    >>> import numpy as np
    >>> metric = SubsetAccuracy()
    >>> metric.update_state(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[3.0, -1.0], [2.0, 1.0]]))
    >>> float(metric.result())
    0.5

    `sklearn.metrics.accuracy_score` on indicator arrays; report it rather
    than binary accuracy, which is near 1 for any model when labels are sparse.
    """

    _ops = _tf_ops


# --------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------

_META_FILE = "predictor.json"
# tf-keras' own zip format: not a Keras 3 `.keras` file, hence the name.
_MODEL_FILES = {"keras": "tf_keras_model.keras", "tf": "saved_model"}


class TFKerasMultilabelPredictor(MultilabelPredictor):
    """`toolkit.predictors.MultilabelPredictor` over a tf-keras (bert4keras) model.

    Prediction is inherited unchanged (`predict`, `predict_labels`,
    `predict_proba`, `predict_scored`, `decision_function`; the rule is
    `logit > 0`, or `logit > decision_threshold` for a baseline's tuned
    threshold, which `save` keeps). Saving differs, as a Keras 3 `.keras` file cannot hold a
    tf-keras model: `save` writes the model in tf-keras' own format
    (`tf_keras_model.keras`, the default) or as a SavedModel folder
    (`save_format="tf"`, for TensorFlow Serving; much slower to write)
    beside `predictor.json`, and `load` reads it back with tf-keras. HDF5
    is not offered: bert4keras' `FeedForward` layer saves its activation
    in a form tf-keras cannot read back from HDF5. The preprocessor (a
    bert4keras tokenizer call, say) is not saved: pass it again to `load`.

    Args:
        model: a tf-keras model whose output is `[n, num_classes]` logits.
        label_names, batch_size, at_least_one, min_labels, max_labels,
            decision_threshold, preprocessor: as for `MultilabelPredictor`.
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

    def __init__(self, model, label_names, *, save_format="keras", **settings):
        if save_format not in _MODEL_FILES:
            raise ValueError(f"The 'save_format' argument must be 'keras' or 'tf'. Got {save_format!r} instead.")
        super().__init__(model, label_names, **settings)
        self.save_format = save_format

    def save(self, directory):
        """Write the model, the label names and the settings to a folder.

        The model and `predictor.json` are written atomically
        (`toolkit.atomic`), so an interrupted save leaves no
        half-written file. The preprocessor is not saved (`predictor.json`
        says `"preprocessor": null`): pass it to `load` again.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model_name = _MODEL_FILES[self.save_format]
        if self.save_format == "keras":
            replace_file(directory / model_name, self.model.save)
        else:
            replace_directory(
                lambda temporary: self.model.save(temporary, save_format="tf", include_optimizer=False),
                directory / model_name,
            )
        meta = {
            "label_names": self.label_names,
            "batch_size": self.batch_size,
            "at_least_one": self.at_least_one,
            "min_labels": self.min_labels,
            "max_labels": self.max_labels,
            "decision_threshold": self.decision_threshold,
            "preprocessor": None,
            "keras": "tf_keras",
            "model": model_name,
        }
        write_json_atomic(directory / _META_FILE, meta)

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
            **overrides: `preprocessor=`, `batch_size=`, `at_least_one=`, `min_labels=`, `max_labels=`,
                `decision_threshold=`.
        """
        directory = Path(directory)
        meta = cls.read_meta(directory)
        if meta.get("keras") != "tf_keras":
            raise ValueError(
                f"{directory} holds a Keras 3 predictor: load it with toolkit.predictors.MultilabelPredictor.load()."
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
            "min_labels": meta.get("min_labels", 0),
            "max_labels": meta.get("max_labels"),
            "decision_threshold": meta.get("decision_threshold", 0.0),
            "save_format": "tf" if meta["model"] == _MODEL_FILES["tf"] else "keras",
        }
        settings.update(overrides)
        return cls(model, meta["label_names"], **settings)
