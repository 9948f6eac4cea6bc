"""Pipeline 1 from a config: read, tokenize (cached), train, evaluate, save, predict.

Each step is a function an example script can call in turn; `train` runs
them all. Everything a run writes goes into `config.output.dir` (see
`toolkit.runs.RunFolder`).
"""

import hashlib
import itertools
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from toolkit import reports
from toolkit.batching import length_grouped_batches
from toolkit.classification.model import MultilabelTextClassifier
from toolkit.classification.preprocessor import TextPreprocessor
from toolkit.data import build_label_vocabulary, read_splits, to_multi_hot
from toolkit.distribution import Replicas, distributed_batches
from toolkit.encoders import load_encoder
from toolkit.losses import MultilabelCategoricalCrossentropy
from toolkit.metrics import MultilabelF1Score, MultilabelPrecision, MultilabelRecall, SubsetAccuracy
from toolkit.predictors import MultilabelPredictor
from toolkit.runs import RunFolder
from toolkit.streaming import stream_predictions
from toolkit.training import (
    dtype_policy,
    expected_warnings_silenced,
    make_optimizer,
    resolve_directory,
    run_callbacks,
    training_run,
)

__all__ = [
    "ClassificationData",
    "read_data",
    "EncodedSplit",
    "encode_split",
    "make_dataset",
    "make_stream",
    "build_model",
    "compile_model",
    "fit",
    "evaluate_run",
    "train",
    "predict_file",
]

logger = logging.getLogger("toolkit")


@dataclass
class ClassificationData:
    """The splits a config names (test may be None) and the label order."""

    train: object
    dev: object
    test: object
    label_names: list


def read_data(config, log=logger.info):
    """Read train, dev and test as `config.data` says; fix the label order.

    Lines skipped with `data.on_bad_line: skip` are counted in the log. With
    `data.dev_fraction`, dev is that share of train, held out with
    `training.seed` (`toolkit.data.split_off`): the same split every time.
    """
    splits = read_splits(config.data, config.training.seed, log=log)
    present = [split for split in splits if split is not None]
    label_names = build_label_vocabulary(present, label_names=config.data.label_names)
    return ClassificationData(*splits, label_names)


@dataclass
class EncodedSplit:
    """Token ids of every text, and the multi-hot targets."""

    token_ids: list
    targets: np.ndarray

    @property
    def lengths(self):
        return np.array([len(ids) for ids in self.token_ids])


def _cache_key(preprocessor, texts):
    digest = hashlib.sha1()
    digest.update(preprocessor.tokenizer._tokenizer.to_str().encode("utf-8"))
    digest.update(f"maxlen={preprocessor.maxlen}".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def encode_split(preprocessor, dataset, label_names, cache_dir=None):
    """Tokenize a split once; with `cache_dir`, reuse the result across runs and resumes."""
    targets = to_multi_hot(dataset.labels, label_names, dtype="float32")
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"tokens-{_cache_key(preprocessor, dataset.texts)}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as cached:
                flat, lengths = cached["flat"], cached["lengths"]
            return EncodedSplit(np.split(flat, np.cumsum(lengths)[:-1]), targets)
    token_ids = [np.asarray(ids, dtype="int32") for ids in preprocessor.encode(dataset.texts)]
    if cache_file is not None:
        temporary = cache_file.with_name(cache_file.stem + ".tmp.npz")
        np.savez(temporary, flat=np.concatenate(token_ids), lengths=np.array([len(ids) for ids in token_ids]))
        temporary.replace(cache_file)
    return EncodedSplit(token_ids, targets)


def _epoch_batches(preprocessor, encoded, batch_size, *, shuffle, seed=0):
    """A function `epoch -> iterator of (inputs, targets)` padded NumPy batches."""
    lengths = encoded.lengths

    def batches(epoch):
        for indices in length_grouped_batches(lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch):
            yield preprocessor.pad([encoded.token_ids[i] for i in indices]), encoded.targets[indices]

    return batches


def _batch_signature(num_labels):
    import tensorflow as tf

    sequence = tf.TensorSpec((None, None), tf.int32)
    return (
        {"token_ids": sequence, "segment_ids": sequence, "padding_mask": sequence},
        tf.TensorSpec((None, num_labels), tf.float32),
    )


def make_dataset(preprocessor, encoded, batch_size, *, shuffle, seed=0):
    """A prefetching `tf.data.Dataset` of length-grouped, padded batches.

    With `shuffle`, each pass over the data draws a new order (seeded).
    """
    import tensorflow as tf

    num_batches = len(length_grouped_batches(encoded.lengths, batch_size, shuffle=False))
    epoch_batches = _epoch_batches(preprocessor, encoded, batch_size, shuffle=shuffle, seed=seed)
    epochs = iter(range(1 << 30))

    def batches():
        return epoch_batches(next(epochs))

    dataset = tf.data.Dataset.from_generator(batches, output_signature=_batch_signature(encoded.targets.shape[1]))
    return dataset.apply(tf.data.experimental.assert_cardinality(num_batches)).prefetch(tf.data.AUTOTUNE)


def make_stream(preprocessor, encoded, batch_size, replicas=None, *, shuffle, seed=0):
    """What `fit` reads, on one device or several: `(stream, steps per epoch)`.

    The batches of `make_dataset`, epoch after epoch, as one endless stream
    (`toolkit.distribution.distributed_batches`), split over `replicas` when
    there are several; pass the steps to `fit`. Each epoch's order depends on
    the seed and the epoch number only, however often Keras opens the
    stream. On JAX the dev batches (`shuffle=False`) carry sample weights, so
    that padding them to a multiple of the device count changes no score.
    """
    replicas = replicas or Replicas()
    epoch_batches = _epoch_batches(preprocessor, encoded, batch_size, shuffle=shuffle, seed=seed)

    def endless():
        for epoch in itertools.count() if shuffle else itertools.repeat(0):
            yield from epoch_batches(epoch)

    weighted = not shuffle and replicas.name == "data_parallel"
    signature = _batch_signature(encoded.targets.shape[1]) if keras.backend.backend() == "tensorflow" else None
    stream = distributed_batches(replicas, endless, signature, weighted=weighted, seed=seed)
    return stream, len(length_grouped_batches(encoded.lengths, batch_size, shuffle=False))


def build_model(config, num_labels):
    """The encoder named by `model.encoder`, its preprocessor, and the classifier on top."""
    encoder = load_encoder(config.model.encoder, maxlen=config.model.maxlen)
    preprocessor = TextPreprocessor(encoder.tokenizer, maxlen=config.model.maxlen)
    model = MultilabelTextClassifier(
        encoder.backbone, num_labels, pooling=config.model.pooling, dropout=config.model.dropout
    )
    return model, preprocessor


def compile_model(model, config, steps_per_epoch, num_labels, *, weighted_batches=False):
    """AdamW + warmup/decay, the configured loss, and threshold-0 metrics.

    With `weighted_batches` (batches padded with rows of sample weight 0, see
    `make_stream`) the loss is averaged over the weights, so the
    padding rows count for nothing.
    """
    reduction = "mean_with_sample_weight" if weighted_batches else "sum_over_batch_size"
    if config.loss.name == "multilabel_categorical_crossentropy":
        loss = MultilabelCategoricalCrossentropy(reduction=reduction)
    else:
        loss = keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
    model.compile(
        optimizer=make_optimizer(config.training, steps_per_epoch),
        loss=loss,
        metrics=[
            MultilabelF1Score(average="micro"),
            MultilabelF1Score(average="macro", num_classes=num_labels),
            MultilabelPrecision(average="micro"),
            MultilabelRecall(average="micro"),
            SubsetAccuracy(),
        ],
    )
    return model


def fit(
    model,
    preprocessor,
    label_names,
    train_set,
    dev_set,
    config,
    run,
    resume=False,
    log=logger.warning,
    *,
    steps_per_epoch=None,
    validation_steps=None,
):
    """Train; keep the best model (by `training.monitor` on dev) in `run.best`.

    The steps are needed for the endless streams of `make_stream`.
    """

    def save_best(folder):
        MultilabelPredictor(model, label_names, preprocessor=preprocessor).save(folder)

    callbacks, best = run_callbacks(run, config.training, save_best, resume=resume, log=log)
    with expected_warnings_silenced():
        history = model.fit(
            train_set,
            validation_data=dev_set,
            epochs=config.training.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            callbacks=callbacks,
            shuffle=False,
            verbose="auto" if sys.stdout.isatty() else 2,
        )
    best.require_model()
    return history, best


def _split_scores(predictor, dataset, label_names):
    logits = predictor.decision_function(dataset.texts)
    targets = to_multi_hot(dataset.labels, label_names, dtype="int8")
    decisions = predictor.predict_from_logits(logits)
    return logits, targets, decisions


def evaluate_run(run, data, log=logger.info, history=None, tune_threshold=False):
    """Score the best model on dev and test; write metrics, reports and plots.

    Metrics are computed here from the predictions of the saved model (not
    copied from training logs). With `tune_threshold` (the BCE baseline), the
    decision threshold that maximises dev micro-F1 is chosen first and saved
    with the model.
    """
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    best_folder = resolve_directory(run.best)
    predictor = MultilabelPredictor.load(best_folder)
    label_names = predictor.label_names
    dev_logits, dev_targets, _ = _split_scores(predictor, data.dev, label_names)
    sweep = reports.threshold_sweep(dev_targets, dev_logits, np.linspace(-4.0, 4.0, 81))
    if tune_threshold:
        predictor.decision_threshold = reports.best_threshold(dev_targets, dev_logits, metric="micro_f1")
        predictor.save(best_folder)
        log(f"decision threshold tuned on dev: {predictor.decision_threshold:.3f} (logit scale)")
    results = {"decision_threshold": predictor.decision_threshold, "label_count": len(label_names)}
    text_reports = []
    for split in ("dev", "test"):
        dataset = getattr(data, split)
        if dataset is None:
            continue
        logits, targets, decisions = (
            (dev_logits, dev_targets, predictor.predict_from_logits(dev_logits))
            if split == "dev"
            else _split_scores(predictor, dataset, label_names)
        )
        results[split] = reports.multilabel_scores(targets, decisions)
        report_text, report_dict = reports.per_label_report(targets, decisions, label_names)
        text_reports.append(f"== {split} ({len(dataset)} examples, threshold {predictor.decision_threshold:g})\n")
        text_reports.append(report_text + "\n")
        run.write_json(f"report_{split}.json", report_dict)
        reports.plot_per_label_f1(report_dict, run.plots / f"per_label_f1_{split}.png", title=f"Per-label F1 ({split})")
        log(
            f"{split}: micro-F1 {results[split]['micro_f1']:.4f}  macro-F1 {results[split]['macro_f1']:.4f}  "
            f"samples-F1 {results[split]['samples_f1']:.4f}  subset accuracy {results[split]['subset_accuracy']:.4f}"
        )
    reports.plot_threshold_curve(
        sweep, run.plots / "f1_vs_threshold.png", chosen_threshold=predictor.decision_threshold,
        title="Dev F1 against the decision threshold",
    )
    history = history if history is not None else run.read_history()
    if history:
        reports.plot_learning_curves(history, run.plots / "learning_curves.png", title="Learning curves")
    run.write_text("report.txt", "".join(text_reports))
    return results


def _build_and_fit(config, data, run, replicas, resume, log):
    """Build, compile and train inside the distribution scope; returns `(history, best)`."""
    batch_size, seed = config.training.batch_size, config.training.seed
    model, preprocessor = build_model(config, len(data.label_names))
    train_encoded = encode_split(preprocessor, data.train, data.label_names, run.cache)
    dev_encoded = encode_split(preprocessor, data.dev, data.label_names, run.cache)
    train_set, steps_per_epoch = make_stream(preprocessor, train_encoded, batch_size, replicas, shuffle=True, seed=seed)
    dev_set, validation_steps = make_stream(preprocessor, dev_encoded, batch_size, replicas, shuffle=False)
    compile_model(
        model, config, steps_per_epoch, len(data.label_names), weighted_batches=replicas.name == "data_parallel"
    )
    return fit(
        model,
        preprocessor,
        data.label_names,
        train_set,
        dev_set,
        config,
        run,
        resume=resume,
        log=log,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
    )


def train(config, *, resume=False, log=logger.info):
    """Run the whole pipeline for a config; returns the scores written to metrics.json.

    With `training.distribution`, the model is built, compiled and trained on
    every device (`toolkit.distribution`); the saved best model is then scored
    on one. A non-chief worker of `multi_worker_mirrored` only trains, and
    returns `{}`.
    """
    started = time.time()
    with training_run(config, resume=resume) as (run, replicas):
        data = read_data(config, log=log)
        with dtype_policy(config.training.mixed_precision):
            history, best = _build_and_fit(config, data, run, replicas, resume, log)
    if not replicas.is_chief:
        log(f"worker done (best epoch {best.best_epoch}); the chief writes the run folder {config.output.dir}")
        return {}
    log(f"best epoch {best.best_epoch}: {config.training.monitor} {best.best_score:.4f}")
    results = evaluate_run(
        run,
        data,
        log=log,
        tune_threshold=config.loss.name == "binary_crossentropy",
    )
    results.update(
        loss=config.loss.name,
        best_epoch=best.best_epoch,
        monitor={config.training.monitor: best.best_score},
        stopped_on_nan=best.stopped_on_nan,
        train_seconds=round(time.time() - started, 1),
        train_examples=len(data.train),
        skipped_lines={
            split: getattr(data, split).report.num_skipped
            for split in ("train", "dev", "test")
            if getattr(data, split) is not None
        },
    )
    run.write_json("metrics.json", results)
    log(f"run folder: {run.path} (best model in {run.best})")
    return results


def predict_file(run_dir, input_path, output_path, *, text_field="text", chunk_size=2048, log=logger.info):
    """Predict labels for every text of a file, streaming; write JSON lines.

    Input: JSON lines with a `text_field`, or plain text, one text a line.
    Output: one line per input, `{"text", "labels", "scores"}` with `scores`
    the logits of the predicted labels. Lines are written as they are
    predicted, so an error (reported with file and line) keeps everything
    written before it.
    """
    predictor = MultilabelPredictor.load(resolve_directory(Path(run_dir) / "best"))

    def records(texts):
        return [
            {"text": text, "labels": [name for name, _ in scored], "scores": dict(scored)}
            for text, scored in zip(texts, predictor.predict_scored(texts))
        ]

    count = stream_predictions(input_path, output_path, records, text_field=text_field, chunk_size=chunk_size)
    log(f"wrote {count} predictions to {output_path}")
    return count
