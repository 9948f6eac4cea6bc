"""Pipeline 2, `task: relation_extraction`: what differs from `toolkit.pipeline.Pipeline`.

The data are sentences with gold (subject, predicate, object) triples; the
model is `RelationExtractor` (bert4keras's semi-pointer semi-tagging design)
inside a `RelationPredictor`; the gold triples become token-span targets and
each training step feeds one sampled subject per sentence; every epoch ends
by decoding dev and scoring exact triples, logged as `val_micro_f1` (with
`val_precision` and `val_recall`); the saved model's predictions are written
in the input layout.

```python
pipeline = RelationPipeline(load_config("configs/lic2019_sample.yaml"))
results = pipeline.train()                    # metrics.json's scores
pipeline.predict_file("texts.jsonl", "triples.jsonl")
```
"""

from dataclasses import dataclass
from pathlib import Path

from toolkit.atomic import replace_file, write_json_atomic
from toolkit.data import DataError, read_splits
from toolkit.data.duie import assemble
from toolkit.data.schema import RelationSchema, load_schema, schema_from_data
from toolkit.encoders import WordPieceTokenizer
from toolkit.pipeline import Pipeline, TrainingFeed
from toolkit.relations.decoder import decode_relation_spans
from toolkit.relations.evaluation import evaluate_relations, write_predictions_jsonl
from toolkit.windows import ReadCounts, decode_windows, describe_windows, window_unit, windowed_split

__all__ = ["RelationData", "RelationPredictor", "distribute_feed", "dev_scores", "RelationPipeline"]

_MODEL_FILE = "model.keras"
_META_FILE = "extractor.json"
_TOKENIZER = "tokenizer"


@dataclass
class RelationData:
    """The splits a config names (test may be None) and the schema (`toolkit.data.schema`)."""

    train: object
    dev: object
    test: object
    schema: RelationSchema

    @property
    def predicates(self) -> list:
        """The predicates in the model's order."""
        return self.schema.predicates


class RelationPredictor:
    """A trained extractor with its tokenizer: texts in, (subject, predicate, object) triples out.

    Example:

    ```python
    predictor = RelationPredictor.load("runs/demo_relations/best")
    predictor.predict(["Alice founded Acme in Paris."])  # [[("Alice", "founder_of", "Acme"), ...]]
    ```
    """

    def __init__(
        self,
        extractor,
        tokenizer,
        maxlen,
        batch_size=32,
        *,
        schema=None,
        scoring="text",
        long_texts="sentences",
        window_stride=None,
    ):
        window_unit(long_texts)  # a ValueError for an unknown value
        self.extractor = extractor
        self.tokenizer = tokenizer
        self.maxlen = int(maxlen)
        self.batch_size = int(batch_size)
        self.schema = schema if schema is not None else RelationSchema(predicates=list(extractor.predicates))
        self.scoring = scoring
        self.long_texts = long_texts
        self.window_stride = None if window_stride is None else int(window_stride)
        self.read_counts = ReadCounts()

    @property
    def predicates(self):
        return self.extractor.predicates

    @property
    def method(self):
        """`"gplinker"` for a `GPLinkerExtractor`, else `"semi_pointer"`."""
        return "gplinker" if type(self.extractor).__name__ == "GPLinkerExtractor" else "semi_pointer"

    def span_triples(self, texts):
        """Per text, the distinct `SpanTriple`s (strings and their characters) the model finds.

        A text longer than `maxlen` tokens is read in windows (`toolkit.windows`;
        `long_texts="truncate"`: its first `maxlen` tokens only): a triple is
        kept from a window unless an entity touches an edge where the window
        cuts the text, and a triple found in two windows is one.
        """
        if self.method == "gplinker":
            from toolkit.relations.gplinker import decode_gplinker_spans

            decode = decode_gplinker_spans
        else:
            decode = decode_relation_spans

        def decode_texts(pieces):
            return decode(self.extractor, self.tokenizer, pieces, maxlen=self.maxlen, batch_size=self.batch_size)

        return decode_windows(
            self.tokenizer,
            texts,
            decode_texts,
            _place_triple,
            maxlen=self.maxlen,
            stride=self.window_stride,
            long_texts=self.long_texts,
            counts=self.read_counts,
        )

    def predict(self, texts):
        """Per text, the list of distinct triples; each entity is an exact slice of its text."""
        return [list(dict.fromkeys(tuple(found[:3]) for found in triples)) for triples in self.span_triples(texts)]

    def extract(self, texts):
        """Per text, the relations found as records in the training data's layout.

        Each is `{"subject", "predicate", "object", "subject_span",
        "object_span"}` (the spans are characters of the text), with
        `subject_type` and `object_type` when the schema or the training data
        gave the predicate's entity types. A model trained on DuIE 2.0 data
        (`scoring == "duie2"`) returns DuIE 2.0 records instead, the slots of
        each object put back together (`toolkit.data.duie.assemble`).
        """
        signatures = self.schema.signatures
        results = []
        for triples in self.span_triples(texts):
            records = []
            for triple in triples:
                record = {
                    "subject": triple.subject,
                    "predicate": triple.predicate,
                    "object": triple.object,
                    "subject_span": list(triple.subject_span),
                    "object_span": list(triple.object_span),
                }
                if triple.predicate in signatures:
                    record["subject_type"], record["object_type"] = signatures[triple.predicate]
                records.append(record)
            if self.scoring == "duie2":
                records = assemble(records, self.schema.slots, signatures)
            results.append(records)
        return results

    def save(self, directory):
        """Write the extractor, the tokenizer and the settings to a folder (each file atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        replace_file(directory / _MODEL_FILE, self.extractor.save)
        self.tokenizer.save(directory / _TOKENIZER)
        write_json_atomic(
            directory / _META_FILE,
            {
                "maxlen": self.maxlen,
                "batch_size": self.batch_size,
                "predicates": self.predicates,
                "schema": self.schema.to_json(),
                "scoring": self.scoring,
                "method": self.method,
                "long_texts": self.long_texts,
                "window_stride": self.window_stride,
            },
        )

    @classmethod
    def load(cls, directory, batch_size=None):
        """Load a predictor written by `save`; `batch_size` overrides the saved one."""
        from toolkit.relations.model import RelationExtractor
        from toolkit.saved import read_saved_json

        directory = Path(directory)
        meta = read_saved_json(directory / _META_FILE, writer="RelationPredictor.save()")
        if meta.get("method") == "gplinker":
            from toolkit.relations.gplinker import GPLinkerExtractor as model_class
        else:
            model_class = RelationExtractor
        extractor = model_class.load(directory / _MODEL_FILE, compile=False)
        tokenizer = WordPieceTokenizer.from_directory(directory / _TOKENIZER, maxlen=meta["maxlen"])
        schema = RelationSchema.from_json(meta["schema"]) if "schema" in meta else None
        return cls(
            extractor,
            tokenizer,
            meta["maxlen"],
            batch_size or meta["batch_size"],
            schema=schema,
            scoring=meta.get("scoring", "text"),
            long_texts=meta.get("long_texts", "sentences"),
            window_stride=meta.get("window_stride"),
        )


def _triple_spans(annotation):
    triple, spans = annotation
    return None if spans is None else list(spans)


def _triple_found_in(piece, annotation):
    (subject, _, object_), _ = annotation
    return subject in piece and object_ in piece


def _triple_annotations(split):
    """Per text, its triples as `(triple, character spans or None)`."""
    return [
        list(zip(triples, spans if spans is not None else [None] * len(triples)))
        for triples, spans in zip(split.triples, split.spans)
    ]


def _moved_triple(annotation, offset):
    triple, spans = annotation
    return triple, None if spans is None else tuple((start + offset, end + offset) for start, end in spans)


def _windowed_triples(windowed):
    """`(texts, triples, spans)` of a split's windows, for `build_targets`: each window with the triples inside it
    (their spans on its characters; None where the data give strings only)."""
    pieces, per_window, moved = windowed.examples()
    window_triples = [[triple for triple, _ in annotations] for annotations in per_window]
    window_spans = [None if any(spans is None for spans in shifted) else list(shifted) for shifted in moved]
    return pieces, window_triples, window_spans


def _place_triple(window, triple):
    """A window's `SpanTriple` on its text's characters, or None when an entity touches a cut edge."""
    subject, object_ = window.shift(triple.subject_span), window.shift(triple.object_span)
    if not (window.keeps(*subject) and window.keeps(*object_)):
        return None
    return triple._replace(subject_span=subject, object_span=object_)


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
    """A `RelationDataFeed`'s batches for training on several devices (`toolkit.distribution`).

    The same batches, epoch by epoch, as Keras draws from `feed` on one device
    (it calls `on_epoch_end` once before the first epoch, then after each), as
    an endless stream split over `replicas`; pass `len(feed)` to `fit` as the
    steps per epoch.
    """
    import keras

    from toolkit.distribution import feed_stream

    return feed_stream(feed, replicas, _feed_signature(feed) if keras.backend.backend() == "tensorflow" else None)


def dev_scores(predictor, dataset):
    """Decode a split and score its relations (as `dataset.scoring` says), as epoch-end log values."""
    micro = evaluate_relations(predictor.extract(dataset.texts), dataset.gold, scoring=dataset.scoring)["micro"]
    return {"val_micro_f1": micro["f1"], "val_precision": micro["precision"], "val_recall": micro["recall"]}


def _scored_predicates(predictor):
    """The predicates scores are reported for: DuIE 2.0's own (the slots put together), else the model's."""
    if predictor.scoring == "duie2":
        return list(dict.fromkeys(predicate for predicate, _ in predictor.schema.slots.values())) or None
    return predictor.predicates


def describe_schema(schema, shown=12):
    """Log lines: where the predicates came from, how many training triples each has, the entity types."""
    counts = schema.counts
    order = {name: position for position, name in enumerate(schema.predicates)}
    ranked = sorted(schema.predicates, key=lambda name: (-counts[name], order[name]))
    listed = ", ".join(f"{name} {counts[name]}" for name in ranked[:shown])
    more = f", ... ({len(ranked) - shown} more)" if len(ranked) > shown else ""
    lines = [f"predicates: {len(schema.predicates)} from {schema.source}; training triples each: {listed}{more}"]
    unused = [name for name in schema.predicates if not counts[name]]
    if unused and counts:
        lines.append(f"{len(unused)} predicate(s) of the schema have no training triple: {', '.join(unused[:shown])}")
    slotted = sorted({predicate for predicate, slot in schema.slots.values() if slot != "@value"})
    if slotted:
        lines.append(f"objects with slots (each slot learnt as a predicate of its own): {', '.join(slotted)}")
    if schema.entity_types:
        lines.append(f"entity types: {', '.join(schema.entity_types)}")
    return lines


class RelationPipeline(Pipeline):
    """Relation extraction from a config (`toolkit.config.RelationConfig`).

    Example:

    ```python
    pipeline = RelationPipeline(config)
    with pipeline.training_run() as run:
        data = pipeline.read_data()
        predictor = pipeline.build(data)
        fitted = pipeline.fit(run, predictor, data)
    pipeline.evaluate(run, data)
    ```
    """

    task = "relation_extraction"
    predictor_class = RelationPredictor
    prediction_chunk_size = 256
    demo_description = (
        "sentences from a fixed set of templates over invented names, 7 predicates; a model trained on them "
        "finds triples in sentences like those, not in free text (configs/conll04.yaml and "
        "configs/webnlg_star.yaml train on real text)"
    )

    @staticmethod
    def write_demo_data(data_dir):
        from toolkit.data.synthetic import write_relation_demo

        write_relation_demo(data_dir)

    def read_data(self):
        """Read train, dev and test as `config.data` says; the predicates come from `data.schema`, or
        from the training data when the config names none (logged with their counts either way).

        With `data.dev_fraction`, dev is that share of train, held out with
        `training.seed` (`toolkit.data.split_off`): the same split every time.
        """
        data_config = self.config.data
        schema_file = load_schema(data_config.schema_path) if data_config.schema_path else None
        splits = read_splits(data_config, self.config.training.seed, log=self.log)
        schema = schema_from_data(splits.train, schema=schema_file)
        if not schema.predicates:
            raise DataError(
                splits.train.path,
                None,
                "no triple in the training data and no data.schema: there is no predicate to learn",
                reason="no predicates",
            )
        for line in describe_schema(schema):
            self.log(line)
        return RelationData(*splits, schema)

    def build(self, data):
        """The encoder `model.encoder` names and the semi-pointer semi-tagging extractor on it.

        The loss sits in the training graph (`loss_in="layer"`) except on JAX,
        whose stateless training step cannot update the metrics layer's state.
        """
        import keras

        from toolkit.encoders import load_encoder
        from toolkit.relations.model import RelationExtractor

        settings = self.config.model
        encoder = load_encoder(settings.encoder, maxlen=settings.maxlen)
        if settings.method == "gplinker":
            from toolkit.relations.gplinker import GPLinkerExtractor

            extractor = GPLinkerExtractor(
                encoder.backbone,
                data.predicates,
                head=settings.head,
                head_size=settings.head_size,
                pad_id=encoder.tokenizer.pad_id,
            )
        else:
            loss_in = "compile" if keras.backend.backend() == "jax" else "layer"
            extractor = RelationExtractor(
                encoder.backbone, data.predicates, pad_id=encoder.tokenizer.pad_id, loss_in=loss_in
            )
        return RelationPredictor(
            extractor,
            encoder.tokenizer,
            settings.maxlen,
            batch_size=self.config.training.batch_size,
            schema=data.schema,
            scoring=data.train.scoring,
            long_texts=settings.long_texts,
            window_stride=settings.window_stride,
        )

    def training_feed(self, predictor, data, run=None, *, initial_epoch=0):
        """Gold triples as token spans (those that cannot be placed are counted, or raise with
        `data.on_missing_entity: error`); one sampled subject per sentence, re-drawn every
        epoch (from epoch `initial_epoch` on), similar lengths together; a dev decode at every epoch end."""
        import keras

        from toolkit.distribution import feed_stream, local_evaluation
        from toolkit.relations.feed import RelationDataFeed
        from toolkit.relations.targets import build_targets

        config, replicas = self.config, self.replicas
        extractor, tokenizer = predictor.extractor, predictor.tokenizer
        texts, triples, spans = data.train.texts, data.train.triples, data.train.spans
        windows = self.describe_lengths(predictor, data, run)
        if config.model.long_texts != "truncate":
            texts, triples, spans = _windowed_triples(windows["train"])
        if config.model.join_texts > 1:
            joined = self.joined_windows(
                predictor,
                data.train.texts,
                _triple_annotations(data.train),
                _moved_triple,
                _triple_spans,
                _triple_found_in,
            )
            more = _windowed_triples(joined)
            texts, triples, spans = texts + more[0], triples + more[1], spans + more[2]
        targets, report = build_targets(
            texts,
            triples,
            tokenizer,
            data.predicates,
            config.model.maxlen,
            spans=spans if any(span is not None for span in spans) else None,
            on_missing="error" if config.data.on_missing_entity == "error" else "count",
        )
        if report.num_dropped:
            self.log(f"{data.train.path}: {report.summary()}")

        def evaluate():
            with local_evaluation(replicas):
                return dev_scores(predictor, data.dev)

        summary = {"train_triples_dropped": report.as_dict(), "train_windows": windows["train"].report.as_dict()}
        distributed = replicas is not None and replicas.name != "none"
        if config.model.method == "gplinker":
            from toolkit.relations.gplinker import GPLinkerFeed

            if distributed:
                from toolkit.config.errors import ConfigError

                raise ConfigError(
                    f"{config.source}: training.distribution: model.method 'gplinker' trains on one device for now; "
                    f"got {config.training.distribution!r}"
                )
            feed = GPLinkerFeed(
                targets,
                config.training.batch_size,
                len(data.predicates),
                seed=config.training.seed,
                pad_id=tokenizer.pad_id,
                first_epoch=initial_epoch,
            )
            if replicas is None:
                return TrainingFeed(extractor, feed, evaluate=evaluate, summary=summary)
            return TrainingFeed(extractor, feed_stream(feed, replicas), len(feed), evaluate=evaluate, summary=summary)
        feed = RelationDataFeed(
            targets,
            config.training.batch_size,
            shuffle=True,
            seed=config.training.seed,
            group_by_length=True,
            targets_as="inputs" if extractor.loss_in == "layer" else "y",
            pad_id=tokenizer.pad_id,
            length_multiple=8,
            first_epoch=initial_epoch,
        )
        # On TensorFlow the feed always goes to fit as a stream with unknown sequence axes: Keras
        # fixes a PyDataset's shapes from its first two batches, which may have the same length.
        streamed = distributed or (replicas is not None and keras.backend.backend() == "tensorflow")
        return TrainingFeed(
            extractor,
            distribute_feed(feed, replicas) if streamed else feed,
            len(feed) if streamed else None,
            evaluate=evaluate,
            summary=summary,
        )

    def describe_lengths(self, predictor, data, run=None):
        """Per split, the windows its texts are read in and what `model.maxlen` would cut without them
        (`toolkit.windows.WindowedSplit`); logged, and written to `run/data_summary.json`."""
        tokenizer, model = predictor.tokenizer, self.config.model
        found = {}
        for name in ("train", "dev", "test"):
            split = getattr(data, name)
            if split is None:
                continue
            found[name] = windowed_split(
                tokenizer,
                split.texts,
                _triple_annotations(split),
                model.maxlen,
                model.window_stride,
                _triple_spans,
                _triple_found_in,
                long_texts=model.long_texts,
            )
        return describe_windows(found, model, "triples", run=run, log=self.log)

    def compile(self, predictor, feed):
        """AdamW + warmup/decay; the loss is already in the graph (or added by the extractor)."""
        from toolkit.optimization import make_optimizer

        steps = feed.steps_per_epoch if feed.steps_per_epoch is not None else len(feed.train)
        predictor.extractor.compile(make_optimizer(self.config.training, steps))

    def score(self, run, predictor, data, *, calibrate=False):
        """Decode dev and test; triple scores, per-predicate scores and plots, predictions in JSON lines."""
        from toolkit.plots import plot_per_label_f1
        from toolkit.scores import span_class_report

        results = {"predicate_count": len(predictor.predicates)}
        lines = []
        for split in ("dev", "test"):
            dataset = getattr(data, split)
            if dataset is None:
                continue
            predictions = predictor.extract(dataset.texts)
            scores = evaluate_relations(
                predictions, dataset.gold, scoring=dataset.scoring, predicates=_scored_predicates(predictor)
            )
            micro = results[split] = dict(scores["micro"], scoring=dataset.scoring)
            run.write_json(f"per_predicate_{split}.json", scores["per_predicate"])
            write_predictions_jsonl(
                run / f"predictions_{split}.jsonl", dataset.texts, predictions, references=dataset.gold
            )
            plot_per_label_f1(
                span_class_report(scores["per_predicate"], scores["micro"]),
                run.plots / f"per_predicate_f1_{split}.png",
                title=f"Per-predicate F1 ({split})",
            )
            lines.append(
                f"{split}: precision {micro['precision']:.4f} recall {micro['recall']:.4f} f1 {micro['f1']:.4f} "
                f"({micro['num_correct']} correct of {micro['num_predicted']} predicted, {micro['num_gold']} gold)\n"
            )
            self.log(lines[-1].strip())
            if "entities" in scores:
                entities = results[split]["entities"] = scores["entities"]
                lines.append(
                    f"{split} entities in relations (span and type): precision {entities['precision']:.4f} "
                    f"recall {entities['recall']:.4f} f1 {entities['f1']:.4f}\n"
                )
                self.log(lines[-1].strip())
        return results, "".join(lines)

    def training_summary(self, data, feed_summary):
        return {"train_sentences": len(data.train), **feed_summary}

    def prediction_input(self):
        """Read `predict`'s input one text a line, or JSON lines with the run's text field
        (`text` unless `layout: custom` names another; token-level runs read raw text too);
        a blank line gives `{"text": "", "spo_list": []}`."""
        from toolkit.streaming import PredictionInput

        text_field = self.config.data.text_field if self.config.data.layout == "custom" else "text"
        return PredictionInput(text_field=text_field or "text", blank={"spo_list": []})

    def prediction_records(self, predictor, texts):
        """LIC2019-layout records: `{"text", "spo_list": [{"subject", "predicate", "object", ...}]}`
        (`RelationPredictor.extract`: with spans and types; DuIE 2.0 objects for a DuIE 2.0 model)."""
        return [{"text": text, "spo_list": records} for text, records in zip(texts, predictor.extract(texts))]
