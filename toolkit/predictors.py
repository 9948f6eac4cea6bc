"""A threshold-free, scikit-learn style predictor over any logits model."""

import importlib
from pathlib import Path

import numpy as np

from toolkit.atomic import replace_file, write_json_atomic
from toolkit.inference import predict_batch
from toolkit.saved import load_saved_model, read_saved_json

__all__ = ["MultilabelPredictor"]

_MODEL_FILE = "model.keras"
_META_FILE = "predictor.json"


def _sigmoid(values):
    # exp of a non-positive number only: no overflow warning for large |values|.
    positive = values >= 0
    exp_neg_abs = np.exp(-np.abs(values))
    return np.where(positive, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs))


class MultilabelPredictor:
    """Multi-label predictions from a model that outputs logits.

    The decision rule of multilabel categorical crossentropy is `logit > 0`:
    there is no threshold to tune, so `predict` has none.

    Args:
        model: a Keras model whose output is `[n, num_classes]` logits.
        label_names: the class names, in the order of the model's outputs.
        batch_size: rows per `model.predict` call.
        at_least_one: when True, a row with no positive logit gets its
            highest-scoring label (opt-in; off by default). The same as
            `min_labels=1`.
        min_labels: a row with fewer logits above the threshold gets its
            `min_labels` highest-scoring labels (a top-k fallback; 0, the
            default, is off).
        max_labels: a row with more logits above the threshold keeps only
            its `max_labels` highest (None, the default, is off).
        preprocessor: optional callable turning raw inputs (texts, say) into
            the model's inputs. It is saved with the predictor if it has
            `get_config()` and is registered as Keras serializable.
        decision_threshold: the logit above which a label is predicted. Leave
            it at 0.0 for models trained with multilabel categorical
            crossentropy; it exists for baselines (a sigmoid BCE model whose
            threshold was tuned on dev).

    Example:

    ```python
    predictor = MultilabelPredictor(model, label_names=["sports", "politics", "tech"])
    predictor.predict_labels(x)        # [["sports"], [], ["politics", "tech"]]
    predictor.save("run/predictor")
    predictor = MultilabelPredictor.load("run/predictor")
    ```
    """

    def __init__(
        self,
        model,
        label_names,
        *,
        batch_size=256,
        at_least_one=False,
        preprocessor=None,
        decision_threshold=0.0,
        min_labels=0,
        max_labels=None,
    ):
        label_names = [str(name) for name in label_names]
        if len(set(label_names)) != len(label_names):
            duplicates = sorted({name for name in label_names if label_names.count(name) > 1})
            raise ValueError(f"label_names must be unique; repeated: {duplicates}.")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Got {batch_size!r} instead.")
        output_dim = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
        if output_dim is not None and output_dim != len(label_names):
            raise ValueError(
                f"The model outputs {output_dim} logits per row but {len(label_names)} label names "
                "were given; they must match, in the model's output order."
            )
        for name, value, least in (("min_labels", min_labels, 0), ("max_labels", max_labels, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise ValueError(f"{name} must be an integer >= {least}{' or None' if least else ''}; got {value!r}.")
        if min_labels > len(label_names):
            raise ValueError(f"min_labels ({min_labels}) is more than the {len(label_names)} labels.")
        if max_labels is not None and max(min_labels, int(bool(at_least_one))) > max_labels:
            raise ValueError(f"min_labels ({max(min_labels, 1)}) is more than max_labels ({max_labels}).")
        self.model = model
        self.label_names = label_names
        self.batch_size = batch_size
        self.at_least_one = bool(at_least_one)
        self.min_labels = min_labels
        self.max_labels = max_labels
        self.preprocessor = preprocessor
        self.decision_threshold = float(decision_threshold)

    def with_settings(self, **settings):
        """A predictor sharing this one's model and preprocessor, with some settings replaced
        (`min_labels=2`, say): what `load(directory, **settings)` gives, without loading the model
        again. The settings are checked as the constructor checks them (ValueError)."""
        current = {
            "batch_size": self.batch_size,
            "at_least_one": self.at_least_one,
            "min_labels": self.min_labels,
            "max_labels": self.max_labels,
            "decision_threshold": self.decision_threshold,
            "preprocessor": self.preprocessor,
        }
        known = set(current) - {"preprocessor"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"with_settings takes {sorted(known)}; got {unknown}.")
        return type(self)(self.model, self.label_names, **{**current, **settings})

    @property
    def classes_(self):
        """The label names as an array (scikit-learn's attribute name)."""
        return np.asarray(self.label_names, dtype=object)

    def _model_inputs(self, x):
        return self.preprocessor(x) if self.preprocessor is not None else x

    def decision_function(self, x):
        """Logits, `[n, num_classes]` float32: `> 0` means the label applies."""
        if self.preprocessor is not None and hasattr(self.preprocessor, "batches"):
            # The preprocessor groups inputs of similar length: little padding. A row may be one window of a
            # long text (the same index once per window): its rows are pooled, by max or by mean.
            mean = getattr(self.preprocessor, "window_pooling", "max") == "mean"
            logits = np.full((len(x), len(self.label_names)), 0.0 if mean else -np.inf, dtype=np.float32)
            counts = np.zeros(len(x), dtype=np.float32)
            for indices, inputs in self.preprocessor.batches(x, self.batch_size):
                rows = np.asarray(predict_batch(self.model, inputs), dtype=np.float32)[: len(indices)]
                if mean:
                    np.add.at(logits, indices, rows)
                    np.add.at(counts, indices, 1.0)
                else:
                    np.maximum.at(logits, indices, rows)
            return logits / np.maximum(counts, 1.0)[:, None] if mean else logits
        logits = self.model.predict(self._model_inputs(x), batch_size=self.batch_size, verbose=0)
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim != 2 or logits.shape[-1] != len(self.label_names):
            raise ValueError(
                f"The model returned logits of shape {logits.shape}; expected [n, {len(self.label_names)}]."
            )
        return logits

    def predict_from_logits(self, logits):
        """`predict` for logits already computed by `decision_function`."""
        return self._decide(np.asarray(logits))

    def _decide(self, logits):
        decisions = (logits > self.decision_threshold).astype(np.int8)
        least = max(self.min_labels, int(self.at_least_one))
        if not len(logits) or (not least and self.max_labels is None):
            return decisions
        ranks = np.argsort(-logits, axis=-1, kind="stable")  # per row, labels from the highest logit down
        rows = np.arange(len(logits))[:, None]
        counts = decisions.sum(axis=-1)
        if least:
            short = counts < least
            decisions[rows[short], ranks[short, :least]] = 1
        if self.max_labels is not None:
            long = counts > self.max_labels
            decisions[rows[long], ranks[long, self.max_labels :]] = 0
        return decisions

    def predict(self, x):
        """The 0/1 indicator matrix `logits > 0`, `[n, num_classes]` int8.

        (`logits > decision_threshold` for a baseline with a tuned threshold;
        then `min_labels` and `max_labels`, when set, add the highest missing
        labels or drop the lowest extra ones.)
        """
        return self._decide(self.decision_function(x))

    def predict_labels(self, x):
        """Lists of label names, one list per row, in label order."""
        decisions = self.predict(x)
        return [[self.label_names[i] for i in np.flatnonzero(row)] for row in decisions]

    def predict_proba(self, x):
        """Independent per-label probabilities `sigmoid(2 * logit)`.

        For soft targets `t`, the loss of one label alone,
        `log(1 + (1 - t) e^s) + log(1 + t e^-s)`, is minimised at
        `t = sigmoid(2 s)`: that is the probability a logit stands for. The
        columns are marginals and need not sum to 1; `> 0.5` is the same rule
        as `predict`.
        """
        return _sigmoid(2.0 * self.decision_function(x).astype(np.float64)).astype(np.float32)

    def predict_scored(self, x):
        """Per row, a list of `(label, logit)` for the predicted labels, highest first."""
        logits = self.decision_function(x)
        decisions = self._decide(logits)
        results = []
        for row_logits, row in zip(logits, decisions):
            chosen = np.flatnonzero(row)
            chosen = chosen[np.argsort(-row_logits[chosen], kind="stable")]
            results.append([(self.label_names[i], float(row_logits[i])) for i in chosen])
        return results

    def save(self, directory):
        """Write the model, the label names and the settings to a folder.

        Each file is written atomically (`toolkit.atomic`), so an interrupted
        save never leaves a half-written file behind.
        """
        import keras

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "label_names": self.label_names,
            "batch_size": self.batch_size,
            "at_least_one": self.at_least_one,
            "min_labels": self.min_labels,
            "max_labels": self.max_labels,
            "decision_threshold": self.decision_threshold,
            "preprocessor": None,
            # Toolkit modules whose import registers the saved classes.
            "modules": sorted(
                {
                    type(obj).__module__
                    for obj in (self.model, self.preprocessor)
                    if obj is not None and type(obj).__module__.startswith("toolkit.")
                }
            ),
        }
        if self.preprocessor is not None:
            if hasattr(self.preprocessor, "save_assets"):
                self.preprocessor.save_assets(directory)
            meta["preprocessor"] = keras.saving.serialize_keras_object(self.preprocessor)
        replace_file(directory / _MODEL_FILE, self.model.save)
        write_json_atomic(directory / _META_FILE, meta)

    @classmethod
    def read_meta(cls, directory):
        """The settings `save` wrote into `directory` (`predictor.json`); `SavedModelError` naming
        the file when it is missing or unreadable."""
        return read_saved_json(Path(directory) / _META_FILE, writer=f"{cls.__name__}.save()")

    @classmethod
    def load(cls, directory, **overrides):
        """Load a predictor written by `save`; keyword arguments override settings."""
        import keras

        directory = Path(directory)
        meta = cls.read_meta(directory)
        for module in meta.get("modules", []):
            if module.startswith("toolkit."):
                importlib.import_module(module)
        preprocessor = None
        if meta.get("preprocessor") is not None:
            preprocessor = keras.saving.deserialize_keras_object(meta["preprocessor"])
            if hasattr(preprocessor, "load_assets"):
                preprocessor.load_assets(directory)
        model = load_saved_model(directory / _MODEL_FILE, compile=False)
        settings = {
            "batch_size": meta.get("batch_size", 256),
            "at_least_one": meta.get("at_least_one", False),
            "min_labels": meta.get("min_labels", 0),
            "max_labels": meta.get("max_labels"),
            "decision_threshold": meta.get("decision_threshold", 0.0),
            "preprocessor": preprocessor,
        }
        settings.update(overrides)
        return cls(model, meta["label_names"], **settings)
