"""Pipeline 2 from a config: read, build targets, train, decode, evaluate, save, predict.

The same run folder, optimizer, schedule, EMA and best-model machinery as
pipeline 1 (`toolkit.runs`, `toolkit.training`); the model is
`RelationExtractor` and the dev score is the micro F1 of exact
(subject, predicate, object) triples after decoding, logged as
`val_micro_f1` (with `val_precision` and `val_recall`) at every epoch end.
"""

import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from toolkit import reports
from toolkit.data import read_schema, read_splits
from toolkit.distribution import distributed_batches, local_evaluation
from toolkit.encoders import WordPieceTokenizer, load_encoder
from toolkit.relations.decoder import decode_relations
from toolkit.relations.evaluation import evaluate_triples, write_predictions_jsonl
from toolkit.relations.targets import build_targets
from toolkit.runs import RunFolder, write_json_atomic
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
    "RelationData",
    "read_data",
    "build_model",
    "RelationPredictor",
    "build_training_targets",
    "make_feed",
    "distribute_feed",
    "dev_scores",
    "train",
    "evaluate_run",
    "predict_file",
]

logger = logging.getLogger("toolkit")

_MODEL_FILE = "model.keras"
_META_FILE = "extractor.json"
_TOKENIZER = "tokenizer"


@dataclass
class RelationData:
    """The splits a config names (test may be None) and the predicate order."""

    train: object
    dev: object
    test: object
    predicates: list


def read_data(config, log=logger.info):
    """Read train, dev and test as `config.data` says; the predicates come from the schema.

    With `data.dev_fraction`, dev is that share of train, held out with
    `training.seed` (`toolkit.data.split_off`): the same split every time.
    """
    predicates = read_schema(config.data.schema_path)
    return RelationData(*read_splits(config.data, config.training.seed, log=log), predicates)


def _loss_placement():
    # The metrics layer cannot update state inside JAX's stateless step.
    return "compile" if keras.backend.backend() == "jax" else "layer"


def build_model(config, predicates):
    """The encoder named by `model.encoder` and the semi-pointer semi-tagging extractor on it."""
    from toolkit.relations.model import RelationExtractor

    encoder = load_encoder(config.model.encoder, maxlen=config.model.maxlen)
    extractor = RelationExtractor(
        encoder.backbone, predicates, pad_id=encoder.tokenizer.pad_id, loss_in=_loss_placement()
    )
    return extractor, encoder.tokenizer


class RelationPredictor:
    """A trained extractor with its tokenizer: texts in, (subject, predicate, object) triples out.

    Example:

    ```python
    predictor = RelationPredictor.load("runs/demo_relations/best")
    predictor.predict(["Alice founded Acme in Paris."])  # [[("Alice", "founder_of", "Acme"), ...]]
    ```
    """

    def __init__(self, extractor, tokenizer, maxlen, batch_size=32):
        self.extractor = extractor
        self.tokenizer = tokenizer
        self.maxlen = int(maxlen)
        self.batch_size = int(batch_size)

    @property
    def predicates(self):
        return self.extractor.predicates

    def predict(self, texts):
        """Per text, the list of distinct triples; each entity is an exact slice of its text."""
        return decode_relations(
            self.extractor, self.tokenizer, list(texts), maxlen=self.maxlen, batch_size=self.batch_size
        )

    def save(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.extractor.save(directory / _MODEL_FILE)
        self.tokenizer.save(directory / _TOKENIZER)
        write_json_atomic(
            directory / _META_FILE,
            {"maxlen": self.maxlen, "batch_size": self.batch_size, "predicates": self.predicates},
        )

    @classmethod
    def load(cls, directory, batch_size=None):
        from toolkit.relations.model import RelationExtractor

        directory = Path(directory)
        meta_path = directory / _META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: {directory} is not a saved relation extractor.")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        extractor = RelationExtractor.load(directory / _MODEL_FILE, compile=False)
        tokenizer = WordPieceTokenizer.from_directory(directory / _TOKENIZER, maxlen=meta["maxlen"])
        return cls(extractor, tokenizer, meta["maxlen"], batch_size or meta["batch_size"])


def build_training_targets(dataset, tokenizer, predicates, config, log=logger.info):
    """Gold triples as token spans; the ones that cannot be placed are counted (or raise)."""
    targets, report = build_targets(
        dataset.texts,
        dataset.triples,
        tokenizer,
        predicates,
        config.model.maxlen,
        on_missing="error" if config.data.on_missing_entity == "error" else "count",
    )
    if report.num_dropped:
        log(f"{dataset.path}: {report.summary()}")
    return targets, report


def make_feed(targets, extractor, tokenizer, config):
    """Training batches: one sampled subject per sentence, re-drawn every epoch, similar lengths together."""
    from toolkit.relations.feed import RelationDataFeed

    return RelationDataFeed(
        targets,
        config.training.batch_size,
        shuffle=True,
        seed=config.training.seed,
        group_by_length=True,
        targets_as="inputs" if extractor.loss_in == "layer" else "y",
        pad_id=tokenizer.pad_id,
        length_multiple=8,
    )


def _feed_signature(feed):
    import tensorflow as tf

    sequence = tf.TensorSpec((None, None), tf.int32)
    inputs = {"token_ids": sequence, "segment_ids": sequence, "subject_span": tf.TensorSpec((None, 2), tf.int32)}
    subject = tf.TensorSpec((None, 2, None), tf.float32)
    objects = tf.TensorSpec((None, feed.num_predicates, 2, None), tf.float32)
    if feed.targets_as == "inputs":
        return {**inputs, "subject_labels": subject, "object_labels": objects}
    return inputs, {"subject_logits": subject, "object_logits": objects}


def distribute_feed(feed, replicas):
    """`make_feed`'s batches for training on several devices (`toolkit.distribution`).

    The same batches, epoch by epoch, as Keras draws from `feed` on one device
    (it calls `on_epoch_end` once before the first epoch, then after each), as
    an endless stream split over `replicas`; pass `len(feed)` to `fit` as the
    steps per epoch.
    """

    def endless():
        epochs = copy.copy(feed)  # its own epoch counter; the sentences are shared
        while True:
            epochs.on_epoch_end()
            for index in range(len(epochs)):
                yield epochs[index]

    signature = _feed_signature(feed) if keras.backend.backend() == "tensorflow" else None
    return distributed_batches(replicas, endless, signature, seed=feed.seed)


def dev_scores(predictor, dataset):
    """Decode a split and score its triples, as epoch-end log values."""
    predictions = predictor.predict(dataset.texts)
    micro = evaluate_triples(predictions, dataset.triples)["micro"]
    return {"val_micro_f1": micro["f1"], "val_precision": micro["precision"], "val_recall": micro["recall"]}


def _build_and_fit(config, data, run, replicas, resume, log):
    """Build, compile and train inside the distribution scope; returns `(best, target_report)`."""
    extractor, tokenizer = build_model(config, data.predicates)
    targets, target_report = build_training_targets(data.train, tokenizer, data.predicates, config, log)
    feed = make_feed(targets, extractor, tokenizer, config)
    steps = {} if replicas.name == "none" else {"steps_per_epoch": len(feed)}
    inputs = feed if replicas.name == "none" else distribute_feed(feed, replicas)
    extractor.compile(make_optimizer(config.training, len(feed)))
    predictor = RelationPredictor(extractor, tokenizer, config.model.maxlen, batch_size=config.training.batch_size)

    def evaluate():
        with local_evaluation(replicas):
            return dev_scores(predictor, data.dev)

    callbacks, best = run_callbacks(run, config.training, predictor.save, evaluate=evaluate, resume=resume, log=log)
    with expected_warnings_silenced():
        extractor.training_model.fit(
            inputs,
            epochs=config.training.epochs,
            callbacks=callbacks,
            shuffle=False,  # the feed draws its own order from (seed, epoch)
            verbose="auto" if sys.stdout.isatty() else 2,
            **steps,
        )
    return best, target_report


def train(config, *, resume=False, log=logger.info):
    """Run the whole pipeline for a config; returns the scores written to metrics.json.

    With `training.distribution`, the extractor is built, compiled and trained
    on every device (`toolkit.distribution`); decoding (dev at each epoch end,
    then dev and test with the saved best model) runs on one. A non-chief
    worker of `multi_worker_mirrored` only trains, and returns `{}`.
    """
    started = time.time()
    with training_run(config, resume=resume) as (run, replicas):
        data = read_data(config, log=log)
        with dtype_policy(config.training.mixed_precision):
            best, target_report = _build_and_fit(config, data, run, replicas, resume, log)
    best.require_model()
    if not replicas.is_chief:
        log(f"worker done (best epoch {best.best_epoch}); the chief writes the run folder {config.output.dir}")
        return {}
    log(f"best epoch {best.best_epoch}: {config.training.monitor} {best.best_score:.4f}")
    results = evaluate_run(run, data, log=log)
    results.update(
        best_epoch=best.best_epoch,
        monitor={config.training.monitor: best.best_score},
        stopped_on_nan=best.stopped_on_nan,
        train_seconds=round(time.time() - started, 1),
        train_sentences=len(data.train),
        train_triples_dropped=target_report.as_dict(),
    )
    run.write_json("metrics.json", results)
    log(f"run folder: {run.path} (best model in {run.best})")
    return results


def _per_predicate_report(per_predicate):
    """The per-predicate scores in the shape of scikit-learn's classification report."""
    return {
        name: {"precision": s["precision"], "recall": s["recall"], "f1-score": s["f1"], "support": s["num_gold"]}
        for name, s in per_predicate.items()
    }


def evaluate_run(run, data, log=logger.info):
    """Decode dev and test with the best model; write scores, predictions and plots."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    predictor = RelationPredictor.load(resolve_directory(run.best))
    results = {"predicate_count": len(predictor.predicates)}
    lines = []
    for split in ("dev", "test"):
        dataset = getattr(data, split)
        if dataset is None:
            continue
        predictions = predictor.predict(dataset.texts)
        scores = evaluate_triples(predictions, dataset.triples, predicates=predictor.predicates)
        results[split] = scores["micro"]
        run.write_json(f"per_predicate_{split}.json", scores["per_predicate"])
        write_predictions_jsonl(run / f"predictions_{split}.jsonl", dataset.texts, predictions, references=dataset.triples)
        reports.plot_per_label_f1(
            _per_predicate_report(scores["per_predicate"]),
            run.plots / f"per_predicate_f1_{split}.png",
            title=f"Per-predicate F1 ({split})",
        )
        micro = scores["micro"]
        lines.append(
            f"{split}: precision {micro['precision']:.4f} recall {micro['recall']:.4f} f1 {micro['f1']:.4f} "
            f"({micro['num_correct']} correct of {micro['num_predicted']} predicted, {micro['num_gold']} gold)\n"
        )
        log(lines[-1].strip())
    history = run.read_history()
    if history:
        reports.plot_learning_curves(history, run.plots / "learning_curves.png", title="Learning curves")
    run.write_text("report.txt", "".join(lines))
    return results


def predict_file(run_dir, input_path, output_path, *, text_field="text", chunk_size=256, log=logger.info):
    """Extract triples from every text of a file, streaming; write LIC2019-layout JSON lines.

    Input: JSON lines with a `text_field`, or plain text, one text a line.
    Lines are written as they are decoded, so an error (with file and line)
    keeps everything written before it.
    """
    predictor = RelationPredictor.load(resolve_directory(Path(run_dir) / "best"))

    def records(texts):
        return [
            {"text": text, "spo_list": [{"subject": s, "predicate": p, "object": o} for s, p, o in triples]}
            for text, triples in zip(texts, predictor.predict(texts))
        ]

    count = stream_predictions(input_path, output_path, records, text_field=text_field, chunk_size=chunk_size)
    log(f"wrote {count} predictions to {output_path}")
    return count
