"""Use the toolkit's loss, metrics and predictor from a bert4keras 0.11.5 script.

bert4keras builds Keras 2 models through tf-keras (`TF_KERAS=1`), and a Keras 3
layer, metric or optimizer cannot go into such a model. Keras 3 cannot even be
imported beside it: bert4keras runs `from keras.layers import *` after
pointing `sys.modules["keras"]` at tf-keras, so if Keras 3 was imported first
(and `import tensorflow` imports it unless `TF_USE_LEGACY_KERAS=1` is set) its
modules are picked up instead and the model fails to build. This module
therefore never imports Keras 3; it offers the same loss and metrics written
with TensorFlow ops for tf-keras:

- `prepare_environment()`: the settings bert4keras 0.11.5 needs on
  TensorFlow 2.21. Call it once, before anything imports TensorFlow.
- `multilabel_categorical_crossentropy(y_true, y_pred, mask=None)` and
  `sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False)`:
  the formulation of `toolkit.losses` (stable at any logit scale, `-inf`
  logits and `mask=False` entries take no part, repeated sparse indices count
  once), as TensorFlow functions.
- `MultilabelCategoricalCrossentropy`, `SparseMultilabelCategoricalCrossentropy`:
  the same as `tf_keras.losses.Loss` classes, with `get_config`.
- `MultilabelF1Score`, `MultilabelPrecision`, `MultilabelRecall`,
  `SubsetAccuracy`: tf-keras stateful metrics that read logits with the rule
  `logit > 0`, averaged as in scikit-learn.
- `TFKerasMultilabelPredictor`: `toolkit.predictors.MultilabelPredictor` for a
  tf-keras model, saved in tf-keras' own format (or as a SavedModel), not as
  a Keras 3 `.keras` file.

The loss and the metrics compute with the same code as `toolkit.losses` and
`toolkit.metrics` (`toolkit._formulas`), run on TensorFlow ops instead of
`keras.ops`.

Importing this module is free of side effects: it imports neither
TensorFlow nor any Keras. TensorFlow and tf-keras are imported the first time
one of the objects above (other than `prepare_environment`) is used.

Example (a bert4keras script; the marked lines are the change):

```python
from toolkit.compat import bert4keras as zlpr   # new
zlpr.prepare_environment()                      # new: before TensorFlow is imported

from bert4keras.backend import keras
from bert4keras.models import build_transformer_model
from bert4keras.optimizers import Adam

bert = build_transformer_model(config_path, checkpoint_path)
logits = keras.layers.Dense(num_labels)(bert.output[:, 0])   # raw logits, no activation
model = keras.models.Model(bert.input, logits)
model.compile(
    optimizer=Adam(2e-5),
    loss=zlpr.MultilabelCategoricalCrossentropy(),          # was multilabel_categorical_crossentropy
    metrics=[zlpr.MultilabelF1Score(average="micro"), zlpr.SubsetAccuracy()],
)
```
"""

import importlib
import os
import sys

__all__ = [
    "prepare_environment",
    "multilabel_categorical_crossentropy",
    "sparse_multilabel_categorical_crossentropy",
    "MultilabelCategoricalCrossentropy",
    "SparseMultilabelCategoricalCrossentropy",
    "MultilabelF1Score",
    "MultilabelPrecision",
    "MultilabelRecall",
    "SubsetAccuracy",
    "TFKerasMultilabelPredictor",
]

_TRUE = ("1", "true", "True")


def _is_keras3(module):
    return module is not None and str(getattr(module, "__version__", "")).startswith("3.")


def _keras3_imported():
    """Whether Keras 3 sits in sys.modules under its own name (`keras`, `keras.layers`, ...)."""
    return _is_keras3(sys.modules.get("keras")) or _is_keras3(sys.modules.get("keras.src.version"))


def _tf_keras_resolution():
    """What `tf.keras` resolved to so far: None (not yet), "tf_keras", "keras_3", ..."""
    tensorflow = sys.modules.get("tensorflow")
    loader = vars(tensorflow).get("keras") if tensorflow is not None else None
    if loader is None:
        return None
    state = vars(loader)
    if "_tfll_initialized" not in state:  # not TensorFlow's lazy loader (an older TensorFlow)
        return "tf_keras" if getattr(loader, "__name__", "").startswith("tf_keras") else "unknown"
    if not state["_tfll_initialized"]:
        return None
    return state.get("_tfll_keras_version")


def prepare_environment(patch_optimizers=True):
    """Make bert4keras 0.11.5 run on TensorFlow 2.21 through tf-keras.

    Call it once at the top of the script, before anything imports
    TensorFlow, Keras or bert4keras. It:

    1. sets `TF_KERAS=1` (bert4keras builds on `tf.keras`) and
       `TF_USE_LEGACY_KERAS=1` (`tf.keras` is tf-keras 2.x, not Keras 3) in
       `os.environ`;
    2. raises `RuntimeError` when it is too late for that: Keras 3 already
       imported (by `import keras`, by `import tensorflow` without
       `TF_USE_LEGACY_KERAS=1`, or by a Keras 3 library such as
       `toolkit.losses` or keras-hub), `tf.keras` already resolved to Keras 3,
       or bert4keras already imported on the wrong Keras. Each would otherwise
       fail later with an unrelated-looking error;
    3. when `patch_optimizers` is True (the default), sets
       `tf.keras.optimizers.Optimizer = tf.keras.optimizers.legacy.Optimizer`,
       the base class bert4keras' optimizers are written for (`_set_hyper`,
       `add_slot`). This changes tf-keras for the rest of the process; pass
       False if the script uses no `bert4keras.optimizers`.

    Nothing of this happens on import: only this call changes anything.
    Calling it again is harmless. Setting `TF_KERAS=1 TF_USE_LEGACY_KERAS=1`
    in the shell does steps 1 and 2's job; step 3 still needs this call.

    Example:

    ```python
    from toolkit.compat import bert4keras as zlpr
    zlpr.prepare_environment()
    from bert4keras.optimizers import Adam   # works on TensorFlow 2.21
    ```
    """
    backend = sys.modules.get("bert4keras.backend")
    if backend is not None:
        layers = sys.modules.get("bert4keras.layers")
        wrong_layers = (
            layers is not None
            and getattr(layers, "Input", None) is not None
            and not (layers.Input.__module__.startswith("tf_keras"))
        )
        if _is_keras3(getattr(backend, "keras", None)) or wrong_layers:
            raise RuntimeError(
                "bert4keras was imported before prepare_environment() and built on Keras 3, which it does "
                "not support. Call prepare_environment() at the top of the script, before TensorFlow, "
                "Keras or bert4keras are imported."
            )
    else:
        if _keras3_imported():
            raise RuntimeError(
                "Keras 3 is already imported (by `import keras`, by `import tensorflow` without "
                "TF_USE_LEGACY_KERAS=1, or by a Keras 3 library such as toolkit.losses or keras_hub). "
                "bert4keras would then build Keras 3 layers into its tf-keras model. Call "
                "prepare_environment() at the top of the script, before anything imports TensorFlow or "
                "Keras, and use toolkit.compat.bert4keras rather than the Keras 3 toolkit modules."
            )
        os.environ["TF_KERAS"] = "1"
        os.environ["TF_USE_LEGACY_KERAS"] = "1"

    resolution = _tf_keras_resolution()
    if resolution not in (None, "tf_keras"):
        raise RuntimeError(
            f"tf.keras was already resolved to {resolution!r}, so bert4keras would get it instead of "
            "tf-keras. Call prepare_environment() before anything touches tf.keras."
        )

    if patch_optimizers:
        import tensorflow as tf

        optimizers = tf.keras.optimizers  # the module bert4keras knows as `keras.optimizers`
        if optimizers.Optimizer is not optimizers.legacy.Optimizer:
            if "bert4keras.optimizers" in sys.modules:
                raise RuntimeError(
                    "bert4keras.optimizers was imported before prepare_environment(), so its optimizers "
                    "are built on the new tf-keras Optimizer and will fail. Call prepare_environment() "
                    "before the first bert4keras import."
                )
            optimizers.Optimizer = optimizers.legacy.Optimizer


def _implementation():
    """The TensorFlow module behind the public names, imported on first use."""
    if "tensorflow" not in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") not in _TRUE:
        raise RuntimeError(
            "toolkit.compat.bert4keras: call prepare_environment() (or set TF_USE_LEGACY_KERAS=1) before "
            "using its losses, metrics or predictor: they import TensorFlow, which without that setting "
            "imports Keras 3, and bert4keras then fails to build its model."
        )
    return importlib.import_module("toolkit.compat._tf_keras")


def __getattr__(name):
    # Only the names not yet defined here arrive: the TensorFlow ones, on first use.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(_implementation(), name)
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
