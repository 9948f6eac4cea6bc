"""Pipeline 1, `task: multilabel_classification`: what differs from `toolkit.pipeline.Pipeline`.

The data are texts with label lists; the model is `MultilabelTextClassifier`
(an encoder, pooling, one logit a label) inside a `MultilabelPredictor`; texts
are tokenized once (cached in the run folder) and batched by length; Keras
validates on dev each epoch with the threshold-0 metrics; the saved model is
scored with scikit-learn, per label, and against the decision threshold.

```python
pipeline = ClassificationPipeline(load_config("configs/reuters.yaml"))
results = pipeline.train()              # metrics.json's scores
pipeline.predict_file("texts.jsonl", "labels.jsonl")
```
"""

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from toolkit.atomic import replace_file, resolve_directory
from toolkit.batching import length_grouped_batches
from toolkit.config import ConfigError
from toolkit.data import build_label_vocabulary, read_splits, to_multi_hot
from toolkit.data.summary import SplitData, check_warnings, data_summary, data_warnings, summary_lines
from toolkit.pipeline import Pipeline, TrainingFeed
from toolkit.predictors import MultilabelPredictor

__all__ = ["ClassificationData", "EncodedSplit", "encode_split", "make_stream", "ClassificationPipeline"]


@dataclass
class ClassificationData:
    """The splits a config names (test may be None) and the label order."""

    train: object
    dev: object
    test: object
    label_names: list


@dataclass
class EncodedSplit:
    """Token ids of every text (cut to `maxlen`) as one `toolkit.encoders.EncodedBatch`, the
    multi-hot targets, and each text's length in tokens before the cut (`[CLS]` and `[SEP]`
    included).

    `pending_cache` is the cache file still to write (`save_cache`), when
    `encode_split` was told to wait.
    """

    tokens: object
    targets: np.ndarray
    text_lengths: Optional[np.ndarray] = None
    pending_cache: Optional[Path] = field(default=None, repr=False)

    @property
    def lengths(self):
        """Tokens per text, after the cut."""
        return self.tokens.lengths

    def save_cache(self):
        """Write the pending cache file (atomically); nothing when there is none.

        The file holds `flat` (every text's ids one after another), `lengths`
        and `text_lengths`.
        """
        if self.pending_cache is None:
            return
        flat, lengths, text_lengths = self.tokens.flat_token_ids, self.tokens.lengths, self.text_lengths
        replace_file(
            self.pending_cache,
            lambda temporary: np.savez(temporary, flat=flat, lengths=lengths, text_lengths=text_lengths),
        )
        self.pending_cache = None


def _cache_key(preprocessor, texts):
    digest = hashlib.sha1()
    digest.update(preprocessor.tokenizer.to_json().encode("utf-8"))
    digest.update(f"maxlen={preprocessor.maxlen}".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


# Longer than any text: tokenizing with this limit cuts nothing.
_NO_CUT = 2**31 - 1
_ENCODE_CHUNK = 4096


def _encode_and_measure(preprocessor, texts):
    """`(EncodedBatch of token ids cut to maxlen, length of each text before the cut)`, tokenizing each text once.

    Texts are tokenized uncut; one that fits in `maxlen` has exactly the ids
    the preprocessor gives it, and only the longer ones are tokenized again,
    cut, by the preprocessor itself (so training and prediction see the same ids).
    """
    from toolkit.encoders import EncodedBatch

    tokenizer, maxlen = preprocessor.tokenizer, preprocessor.maxlen
    pieces, text_lengths = [], []
    for start in range(0, len(texts), _ENCODE_CHUNK):
        chunk = list(texts[start : start + _ENCODE_CHUNK])
        uncut = tokenizer.encode_batch_arrays(chunk, maxlen=_NO_CUT, offsets=False)
        long = np.flatnonzero(uncut.lengths > maxlen)
        if len(long):
            cut = preprocessor.encode_arrays([chunk[i] for i in long])
            rows = np.arange(len(chunk))
            rows[long] = len(chunk) + np.arange(len(long))  # the long texts' rows from `cut`
            pieces.append(EncodedBatch.concatenate([uncut, cut]).select(rows))
        else:
            pieces.append(uncut)
        text_lengths.append(uncut.lengths)
    if not pieces:
        return preprocessor.encode_arrays([]), np.zeros(0, dtype="int64")
    return EncodedBatch.concatenate(pieces), np.concatenate(text_lengths).astype("int64")


def encode_split(preprocessor, dataset, label_names, cache_dir=None, *, write_cache=True):
    """Tokenize a split once; with `cache_dir`, reuse the result across runs and resumes.

    The ids are the preprocessor's (cut to `maxlen`); `text_lengths` are the
    uncut lengths, measured in the same pass. With `write_cache=False` a new
    cache file is left to `EncodedSplit.save_cache`.
    """
    from toolkit.encoders import EncodedBatch

    targets = to_multi_hot(dataset.labels, label_names, dtype="float32")
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"tokens-{_cache_key(preprocessor, dataset.texts)}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as cached:
                tokens = EncodedBatch(cached["lengths"], cached["flat"], preprocessor.tokenizer.pad_id)
                text_lengths = cached["text_lengths"] if "text_lengths" in cached.files else None
            if text_lengths is None:  # a cache written before text lengths were kept
                text_lengths = _encode_and_measure(preprocessor, dataset.texts)[1]
            return EncodedSplit(tokens, targets, text_lengths)
    tokens, text_lengths = _encode_and_measure(preprocessor, dataset.texts)
    encoded = EncodedSplit(tokens, targets, text_lengths, pending_cache=cache_file)
    if write_cache:
        encoded.save_cache()
    return encoded


def _batch_signature(num_labels):
    import tensorflow as tf

    sequence = tf.TensorSpec((None, None), tf.int32)
    return (
        {"token_ids": sequence, "segment_ids": sequence, "padding_mask": sequence},
        tf.TensorSpec((None, num_labels), tf.float32),
    )


def make_stream(preprocessor, encoded, batch_size, replicas=None, *, shuffle, seed=0, first_epoch=0):
    """What `fit` reads, on one device or several: `(stream, steps per epoch)`.

    Length-grouped, padded batches (`toolkit.batching.length_grouped_batches`),
    epoch after epoch, as one endless stream
    (`toolkit.distribution.distributed_batches`), split over `replicas` when
    there are several; pass the steps to `fit`. With `shuffle`, each epoch's
    order depends on the seed and the epoch number only, however often Keras
    opens the stream; the stream starts at epoch `first_epoch` (from 0), as
    a resumed run needs. On JAX the dev batches (`shuffle=False`) carry sample
    weights, so that padding them to a multiple of the device count changes
    no score.
    """
    import keras

    from toolkit.distribution import Replicas, distributed_batches

    replicas = replicas or Replicas()
    lengths = encoded.lengths

    def endless():
        for epoch in itertools.count(first_epoch) if shuffle else itertools.repeat(0):
            for indices in length_grouped_batches(lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch):
                yield preprocessor.inputs(encoded.tokens, indices), encoded.targets[indices]

    weighted = not shuffle and replicas.name == "data_parallel"
    signature = _batch_signature(encoded.targets.shape[1]) if keras.backend.backend() == "tensorflow" else None
    stream = distributed_batches(replicas, endless, signature, weighted=weighted, seed=seed)
    return stream, len(length_grouped_batches(lengths, batch_size, shuffle=False))


class ClassificationPipeline(Pipeline):
    """Multi-label text classification from a config (`toolkit.config.MultilabelConfig`).

    Example:

    ```python
    pipeline = ClassificationPipeline(config)
    with pipeline.training_run() as run:
        data = pipeline.read_data()
        predictor = pipeline.build(data)
        fitted = pipeline.fit(run, predictor, data)
    pipeline.evaluate(run, data, calibrate=True)
    ```
    """

    task = "multilabel_classification"
    predictor_class = MultilabelPredictor
    prediction_chunk_size = 2048
    demo_description = (
        "product reviews built from a fixed set of clause templates, tagged with the 10 aspects they discuss; "
        "a model trained on them knows those phrasings, not reviews at large (configs/goemotions.yaml and "
        "configs/reuters.yaml train on real text)"
    )

    @staticmethod
    def write_demo_data(data_dir):
        from toolkit.data.synthetic import write_multilabel_demo

        write_multilabel_demo(data_dir)

    def read_data(self):
        """Read train, dev and test as `config.data` says; fix the label order.

        The label order is the label file's (`data.label_names`) when given,
        else every label seen, sorted; a label outside the file is an error.
        Lines skipped with `data.on_bad_line: skip` are counted in the log.
        With `data.max_examples`, each file is read whole and a seeded sample
        of it kept (`toolkit.data.splits.sample`), the same every run.
        With `data.dev_fraction`, dev is that share of train, held out with
        `training.seed` (`toolkit.data.split_off`): the same split every time.
        """
        splits = read_splits(self.config.data, self.config.training.seed, log=self.log)
        present = [split for split in splits if split is not None]
        label_names = build_label_vocabulary(present, label_names=self.config.data.label_names)
        if self.config.predict.min_labels > len(label_names):
            raise ConfigError(
                f"{self.config.source}: predict.min_labels: {self.config.predict.min_labels} is more than the "
                f"{len(label_names)} labels of the data"
            )
        return ClassificationData(*splits, label_names)

    def build(self, data):
        """The encoder `model.encoder` names, its preprocessor and the classifier, in a `MultilabelPredictor`."""
        from toolkit.classification.model import MultilabelTextClassifier
        from toolkit.classification.preprocessor import TextPreprocessor
        from toolkit.encoders import load_encoder

        settings = self.config.model
        encoder = load_encoder(settings.encoder, maxlen=settings.maxlen)
        preprocessor = TextPreprocessor(
            encoder.tokenizer,
            maxlen=settings.maxlen,
            long_texts=settings.long_texts,
            window_stride=settings.window_stride,
            window_pooling=settings.window_pooling,
        )
        model = MultilabelTextClassifier(
            encoder.backbone, len(data.label_names), pooling=settings.pooling, dropout=settings.dropout
        )
        rule = self.config.predict
        return MultilabelPredictor(
            model,
            data.label_names,
            preprocessor=preprocessor,
            min_labels=rule.min_labels,
            max_labels=rule.max_labels,
        )

    def training_feed(self, predictor, data, run=None, *, initial_epoch=0):
        """Train and dev tokenized once (cached in `run/cache`), as length-grouped streams
        (train's from epoch `initial_epoch` on).

        Before that, what was read is described and checked (`describe_data`):
        a few lines in the log and `run/data_summary.json`. Under
        `data.on_warning: error` a warning stops the run here with a
        `DataError` listing them all, before the summary or the token cache is
        written; the run folder is then reused by the next try.
        """
        batch_size, seed = self.config.training.batch_size, self.config.training.seed
        cache = run.cache if run is not None else None
        preprocessor = predictor.preprocessor
        encoded = {
            name: encode_split(preprocessor, split, data.label_names, cache, write_cache=False)
            for name, split in _present_splits(data)
        }
        summary, warnings = self.describe_data(data, {name: split.text_lengths for name, split in encoded.items()})
        for line in summary_lines(summary):
            self.log(line)
        check_warnings(warnings, self.config.data.on_warning, data.train.path)
        if run is not None:
            run.write_json("data_summary.json", summary)
        for split in encoded.values():
            split.save_cache()
        train, dev = encoded["train"], encoded["dev"]
        train_stream, steps = make_stream(
            preprocessor, train, batch_size, self.replicas, shuffle=True, seed=seed, first_epoch=initial_epoch
        )
        dev_stream, dev_steps = make_stream(preprocessor, dev, batch_size, self.replicas, shuffle=False)
        return TrainingFeed(predictor.model, train_stream, steps, dev_stream, dev_steps)

    def describe_data(self, data, token_lengths=None):
        """What was read, and the likely mistakes in reading it: `(summary, warnings)`.

        `summary` is what `data_summary.json` holds (`toolkit.data.summary.data_summary`):
        examples per split, the labels and their train counts, labels per
        example, token lengths (`token_lengths`: each split's uncut lengths,
        as `encode_split` measures them) and how many texts `model.maxlen`
        cuts, two rows as parsed, and the warnings
        (`toolkit.data.summary.data_warnings`), each naming the key to check.

        ```python
        summary, warnings = pipeline.describe_data(pipeline.read_data())   # without token lengths
        ```
        """
        settings, token_lengths = self.config.data, token_lengths or {}
        maxlen = self.config.model.maxlen
        splits = {
            name: SplitData(split.texts, split.labels, token_lengths.get(name), lines=split.lines, path=split.path)
            for name, split in _present_splits(data)
        }
        sampled = ", data.max_examples" if settings.max_examples is not None else ""
        keys = {
            "dev": ("data.dev" if settings.dev is not None else "data.dev_fraction") + sampled,
            "test": "data.test" + sampled,
        }
        warnings = data_warnings(
            splits,
            label_separator=settings.label_separator,
            labels_in_lists=settings.format == "jsonl" and settings.label_separator is None,
            maxlen=maxlen if token_lengths else None,
            split_keys=keys,
        )
        read_as = {
            "format": settings.format,
            "text_field": settings.text_field,
            "labels_field": settings.labels_field,
            "label_separator": settings.label_separator,
            "max_examples": settings.max_examples,
            "on_warning": settings.on_warning,
        }
        summary = data_summary(
            splits,
            label_names=data.label_names,
            maxlen=maxlen if token_lengths else None,
            warnings=warnings,
            extra={"read_as": read_as},
        )
        return summary, warnings

    def compile(self, predictor, feed):
        """AdamW + warmup/decay, the configured loss, and the threshold-0 metrics.

        Under JAX's `data_parallel` the dev batches are padded with rows of
        sample weight 0 (see `make_stream`), so the loss is averaged over the
        weights and the padding counts for nothing.
        """
        import keras

        from toolkit.losses import MultilabelCategoricalCrossentropy
        from toolkit.metrics import MultilabelF1Score, MultilabelPrecision, MultilabelRecall, SubsetAccuracy
        from toolkit.optimization import make_optimizer

        weighted = self.replicas is not None and self.replicas.name == "data_parallel"
        reduction = "mean_with_sample_weight" if weighted else "sum_over_batch_size"
        if self.config.loss.name == "multilabel_categorical_crossentropy":
            loss = MultilabelCategoricalCrossentropy(reduction=reduction)
        else:
            loss = keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
        metrics = [
            MultilabelF1Score(average="micro"),
            MultilabelF1Score(average="macro", num_classes=len(predictor.label_names)),
            MultilabelPrecision(average="micro"),
            MultilabelRecall(average="micro"),
            SubsetAccuracy(),
        ]
        feed.model.compile(
            optimizer=make_optimizer(self.config.training, feed.steps_per_epoch), loss=loss, metrics=metrics
        )

    def score(self, run, predictor, data, *, calibrate=False):
        """Scores per split from the saved model's predictions; per-label reports and plots.

        With `calibrate` and the BCE baseline (`loss.name: binary_crossentropy`),
        the decision threshold that maximises dev micro-F1 is chosen first and
        saved with the model.
        """
        from toolkit import plots, scores

        dev_logits = predictor.decision_function(data.dev.texts)
        dev_targets = to_multi_hot(data.dev.labels, predictor.label_names)
        sweep = scores.threshold_sweep(dev_targets, dev_logits, np.linspace(-4.0, 4.0, 81))
        if calibrate and self.config.loss.name == "binary_crossentropy":
            predictor.decision_threshold = scores.best_threshold(dev_targets, dev_logits, metric="micro_f1")
            predictor.save(resolve_directory(run.best))
            self.log(f"decision threshold tuned on dev: {predictor.decision_threshold:.3f} (logit scale)")
        threshold = predictor.decision_threshold
        results = {"decision_threshold": threshold, "label_count": len(predictor.label_names)}
        report = []
        for split in ("dev", "test"):
            dataset = getattr(data, split)
            if dataset is None:
                continue
            logits = dev_logits if split == "dev" else predictor.decision_function(dataset.texts)
            targets = dev_targets if split == "dev" else to_multi_hot(dataset.labels, predictor.label_names)
            decisions = predictor.predict_from_logits(logits)
            split_scores = results[split] = scores.multilabel_scores(targets, decisions)
            text, per_label = scores.per_label_report(targets, decisions, predictor.label_names)
            report.append(f"== {split} ({len(dataset)} examples, threshold {threshold:g})\n{text}\n")
            run.write_json(f"report_{split}.json", per_label)
            plots.plot_per_label_f1(per_label, run.plots / f"per_label_f1_{split}.png", title=f"Per-label F1 ({split})")
            self.log(
                f"{split}: micro-F1 {split_scores['micro_f1']:.4f}  macro-F1 {split_scores['macro_f1']:.4f}  "
                f"samples-F1 {split_scores['samples_f1']:.4f}  subset accuracy {split_scores['subset_accuracy']:.4f}"
            )
        plots.plot_threshold_curve(
            sweep,
            run.plots / "f1_vs_threshold.png",
            chosen_threshold=threshold,
            title="Dev F1 against the decision threshold",
        )
        return results, "".join(report)

    def training_summary(self, data, feed_summary):
        splits = [(name, getattr(data, name)) for name in ("train", "dev", "test")]
        return {
            "loss": self.config.loss.name,
            "train_examples": len(data.train),
            "skipped_lines": {name: split.report.num_skipped for name, split in splits if split is not None},
        }

    def prediction_input(self):
        """Read `predict`'s input as training read its data: a file of the run's
        `data.format` (by its extension) with the same `header` and
        `text_field`; a blank text predicts no label (`{"labels": [], "scores": {}}`)."""
        from toolkit.streaming import PredictionInput

        data = self.config.data
        return PredictionInput(
            format=data.format,
            text_field=data.text_field,
            header=data.header,
            blank={"labels": [], "scores": {}},
        )

    def decision_rule(self, given: dict, *, spell=str) -> dict:
        """`min_labels` and `max_labels` for one call: the run's `predict` section with `given`
        applied, checked (`Pipeline.decision_rule`)."""
        given = {name: value for name, value in given.items() if value is not None}
        unknown = sorted(set(given) - {"min_labels", "max_labels"})
        if unknown:
            raise ValueError(f"decision_rule takes min_labels and max_labels; got {unknown}")
        if not given:
            return {}
        rule = self.config.predict.model_copy(update=given)
        if rule.min_labels < 0 or (rule.max_labels is not None and rule.max_labels < 1):
            values = ", ".join(f"{spell(name)} {value}" for name, value in given.items())
            raise ConfigError(f"{spell('min_labels')} must be >= 0 and {spell('max_labels')} >= 1; got {values}")
        if rule.max_labels is not None and rule.min_labels > rule.max_labels:
            raise ConfigError(
                f"{spell('min_labels')} ({rule.min_labels}) is more than {spell('max_labels')} ({rule.max_labels})"
            )
        return {"min_labels": rule.min_labels, "max_labels": rule.max_labels}

    def prediction_records(self, predictor, texts):
        """`{"text", "labels", "scores"}` per text; `scores` are the logits of the predicted labels."""
        return [
            {"text": text, "labels": [name for name, _ in scored], "scores": dict(scored)}
            for text, scored in zip(texts, predictor.predict_scored(texts))
        ]


def _present_splits(data):
    """`(name, split)` of train, dev and test, leaving out a missing test."""
    return [(name, getattr(data, name)) for name in ("train", "dev", "test") if getattr(data, name) is not None]
