"""`task: entity_recognition`: what differs from `toolkit.pipeline.Pipeline`.

The data are texts with typed character spans (`toolkit.data.entities`); the
model is an `EntityRecognizer` (encoder + GlobalPointer) inside an
`EntityPredictor`; training uses the sparse loss over every (start, end) pair
of each type; every epoch ends by decoding dev and scoring entities strictly
(span and type), logged as `val_micro_f1` (with `val_precision`,
`val_recall`). Nested and overlapping entities are kept throughout.

```python
pipeline = EntityPipeline(load_config("configs/conll04_entities.yaml"))
results = pipeline.train()
pipeline.predict_file("texts.txt", "entities.jsonl")
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.atomic import replace_file, write_json_atomic
from toolkit.batching import batches_by_length
from toolkit.data import DataError, read_splits
from toolkit.data.entities import read_entity_types
from toolkit.encoders import WordPieceTokenizer
from toolkit.inference import predict_batch
from toolkit.pipeline import Pipeline, TrainingFeed
from toolkit.relations.evaluation import evaluate_triples
from toolkit.windows import ReadCounts, decode_windows, describe_windows, window_unit, windowed_split

__all__ = ["EntityData", "EntityPipeline", "EntityPredictor", "decode_entities", "entity_scores"]

_MODEL_FILE = "model.keras"
_META_FILE = "recognizer.json"
_TOKENIZER = "tokenizer"


@dataclass
class EntityData:
    """The splits a config names (test may be None) and the entity types, in the model's order."""

    train: object
    dev: object
    test: object
    types: list


def decode_entities(model, tokenizer, texts, *, maxlen=None, batch_size=32, threshold=0.0):
    """Per text, `(start, end, type)` character spans scoring above `threshold`, decoded a batch at a time.

    The encoder and head run once per batch of similar-length texts, padded
    to a few fixed shapes (`toolkit.batching.batches_by_length`: one trace or
    compilation per shape); every span above the threshold is read from the
    whole batch's scores at once (`toolkit.spans.decode_spans`) and mapped to
    characters through the tokenizer's offsets. Spans touching
    `[CLS]`/`[SEP]` are dropped.
    """
    from toolkit.spans.targets import decode_spans

    texts = list(texts)
    encodings = tokenizer.encode_batch(texts, maxlen=maxlen)
    limit = maxlen if maxlen is not None else getattr(tokenizer, "maxlen", None)
    results = [[] for _ in texts]
    for rows, batch, token_ids, segment_ids in batches_by_length(encodings, batch_size, model.pad_id, limit=limit):
        scores = np.asarray(predict_batch(model, {"token_ids": token_ids, "segment_ids": segment_ids}))
        found = decode_spans(scores[: len(batch)], threshold, lengths=[len(encoding.token_ids) for encoding in batch])
        for position, spans in enumerate(found):
            encoding = batch[position]
            for head, start, end in spans:
                chars = tokenizer.token_span_to_char_span(encoding, start, end)
                if chars is not None:
                    results[rows[position]].append((chars[0], chars[1], model.types[head]))
    return [sorted(set(found)) for found in results]


def entity_scores(predictions, references, *, types=None) -> dict:
    """Strict entity scores (span and type equal): `{"micro": ..., "per_type": ...}`.

    >>> entity_scores([[(0, 3, "PER"), (4, 9, "LOC")]], [[(0, 3, "PER"), (4, 9, "ORG")]])["micro"]["f1"]
    0.5
    """
    # (start, end, type) as (span, type, span): evaluate_triples reads the middle item as the class.
    keyed = [[((start, end), entity_type, ()) for start, end, entity_type in sentence] for sentence in predictions]
    gold = [[((start, end), entity_type, ()) for start, end, entity_type in sentence] for sentence in references]
    scores = evaluate_triples(keyed, gold, predicates=types)
    return {"micro": scores["micro"], "per_type": scores["per_predicate"]}


class EntityPredictor:
    """A trained recognizer with its tokenizer: texts in, typed character spans out.

    ```python
    predictor = EntityPredictor.load("runs/demo_entities/best")
    predictor.predict(["Ada Lovelace met Babbage in London."])
    # [[{"start": 0, "end": 12, "type": "PER", "text": "Ada Lovelace"}, ...]]
    ```
    """

    def __init__(self, model, tokenizer, maxlen, batch_size=32, *, long_texts="sentences", window_stride=None):
        window_unit(long_texts)  # a ValueError for an unknown value
        self.model = model
        self.tokenizer = tokenizer
        self.maxlen = int(maxlen)
        self.batch_size = int(batch_size)
        self.long_texts = long_texts
        self.window_stride = None if window_stride is None else int(window_stride)
        self.read_counts = ReadCounts()

    @property
    def types(self):
        return self.model.types

    def spans(self, texts):
        """Per text, the sorted `(start, end, type)` character spans found.

        A text longer than `maxlen` tokens is read in windows (`toolkit.windows`;
        `long_texts="truncate"`: its first `maxlen` tokens only): an entity is
        kept from a window unless it touches an edge where the window cuts the
        text, and one found in two windows is one.
        """

        def decode(pieces):
            return decode_entities(self.model, self.tokenizer, pieces, maxlen=self.maxlen, batch_size=self.batch_size)

        found = decode_windows(
            self.tokenizer,
            texts,
            decode,
            _place_entity,
            maxlen=self.maxlen,
            stride=self.window_stride,
            long_texts=self.long_texts,
            counts=self.read_counts,
        )
        return [sorted(spans) for spans in found]

    def predict(self, texts):
        """Per text, `{"start", "end", "type", "text"}` records; `text` is `texts[i][start:end]`."""
        texts = list(texts)
        return [
            [
                {"start": start, "end": end, "type": entity_type, "text": text[start:end]}
                for start, end, entity_type in found
            ]
            for text, found in zip(texts, self.spans(texts))
        ]

    def save(self, directory):
        """Write the model, the tokenizer and the settings to a folder (each file atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        replace_file(directory / _MODEL_FILE, self.model.save)
        self.tokenizer.save(directory / _TOKENIZER)
        write_json_atomic(
            directory / _META_FILE,
            {
                "maxlen": self.maxlen,
                "batch_size": self.batch_size,
                "types": list(self.types),
                "long_texts": self.long_texts,
                "window_stride": self.window_stride,
            },
        )

    @classmethod
    def load(cls, directory, batch_size=None):
        """Load a predictor written by `save`; `batch_size` overrides the saved one."""
        from toolkit.entities.model import EntityRecognizer
        from toolkit.saved import read_saved_json

        directory = Path(directory)
        meta = read_saved_json(directory / _META_FILE, writer="EntityPredictor.save()")
        model = EntityRecognizer.load(directory / _MODEL_FILE, compile=False)
        tokenizer = WordPieceTokenizer.from_directory(directory / _TOKENIZER, maxlen=meta["maxlen"])
        return cls(
            model,
            tokenizer,
            meta["maxlen"],
            batch_size or meta["batch_size"],
            long_texts=meta.get("long_texts", "sentences"),
            window_stride=meta.get("window_stride"),
        )


def _place_entity(window, entity):
    """A window's `(start, end, type)` on its text's characters, or None when it touches a cut edge."""
    start, end = window.shift(entity[:2])
    return (start, end, entity[2]) if window.keeps(start, end) else None


def _moved_entity(entity, offset):
    return (entity[0] + offset, entity[1] + offset, entity[2])


def _entity_spans(entity):
    return [(entity[0], entity[1])]


class EntityPipeline(Pipeline):
    """Entity recognition from a config (`toolkit.config.EntityConfig`); the steps are `Pipeline.train`'s."""

    task = "entity_recognition"
    predictor_class = EntityPredictor
    prediction_chunk_size = 256
    demo_description = (
        "sentences from a fixed set of templates over invented names, nested entities included; a model "
        "trained on them finds entities in sentences like those, not in free text "
        "(configs/conll04_entities.yaml trains on real text)"
    )

    @staticmethod
    def write_demo_data(data_dir):
        from toolkit.data.synthetic import write_entity_demo

        write_entity_demo(data_dir)

    def read_data(self):
        """Train, dev and test as `config.data` says; the types come from `data.types` or, without it,
        from the training data; logged with their counts either way."""
        data_config = self.config.data
        splits = read_splits(data_config, self.config.training.seed, log=self.log)
        types = read_entity_types(data_config.types) if data_config.types else sorted(splits.train.type_counts())
        if not types:
            raise DataError(
                splits.train.path, None, "no entity in the training data and no data.types", reason="no types"
            )
        counts = splits.train.type_counts()
        source = data_config.types or "the training data"
        self.log(
            f"types: {len(types)} from {source}; training entities each: "
            + ", ".join(f"{t} {counts[t]}" for t in types)
        )
        nested = sum(
            1
            for entities in splits.train.entities
            for a in entities
            for b in entities
            if a != b and a[0] <= b[0] and b[1] <= a[1]
        )
        if nested:
            self.log(f"{nested} training entities lie inside another (nested entities are kept)")
        return EntityData(*splits, types)

    def build(self, data):
        """The encoder `model.encoder` names and a GlobalPointer head over the types."""
        from toolkit.encoders import load_encoder
        from toolkit.entities.model import EntityRecognizer

        settings = self.config.model
        encoder = load_encoder(settings.encoder, maxlen=settings.maxlen)
        model = EntityRecognizer(
            encoder.backbone,
            data.types,
            head=settings.head,
            head_size=settings.head_size,
            pad_id=encoder.tokenizer.pad_id,
        )
        return EntityPredictor(
            model,
            encoder.tokenizer,
            settings.maxlen,
            batch_size=self.config.training.batch_size,
            long_texts=settings.long_texts,
            window_stride=settings.window_stride,
        )

    def training_feed(self, predictor, data, run=None, *, initial_epoch=0):
        """Gold spans on their tokens (those cut by `maxlen` are counted); length-grouped batches
        from epoch `initial_epoch` on; a dev decode at every epoch end."""
        from toolkit.distribution import feed_stream, local_evaluation
        from toolkit.entities.feed import EntityDataFeed, encode_entities

        config, replicas = self.config, self.replicas
        if replicas is not None and replicas.name != "none":
            from toolkit.config.errors import ConfigError

            raise ConfigError(
                f"{config.source}: training.distribution: task entity_recognition trains on one device for now; "
                f"got {config.training.distribution!r}"
            )
        texts, entities = data.train.texts, data.train.entities
        windows = self.describe_lengths(predictor, data, run)
        if config.model.long_texts != "truncate":
            texts, _, moved = windows["train"].examples()
            entities = [
                [(start, end, entity[2]) for entity, ((start, end),) in zip(found, spans)]
                for found, spans in zip(windows["train"].per_window, moved)
            ]
        if config.model.join_texts > 1:
            joined = self.joined_windows(predictor, data.train.texts, data.train.entities, _moved_entity, _entity_spans)
            texts = list(texts) + joined.pieces
            entities = list(entities) + [
                [(start, end, entity[2]) for entity, ((start, end),) in zip(found, spans)]
                for found, spans in zip(joined.per_window, joined.moved)
            ]
        encoded, report = encode_entities(texts, entities, predictor.tokenizer, data.types, config.model.maxlen)
        if report.dropped:
            self.log(f"{data.train.path}: {report.summary()}")
        feed = EntityDataFeed(
            encoded,
            config.training.batch_size,
            len(data.types),
            shuffle=True,
            seed=config.training.seed,
            pad_id=predictor.tokenizer.pad_id,
            first_epoch=initial_epoch,
        )

        def evaluate():
            with local_evaluation(replicas):
                micro = entity_scores(predictor.spans(data.dev.texts), data.dev.entities)["micro"]
            return {"val_micro_f1": micro["f1"], "val_precision": micro["precision"], "val_recall": micro["recall"]}

        summary = {"train_entities": report.as_dict(), "train_windows": windows["train"].report.as_dict()}
        if replicas is None:  # outside training_run (a library call): Keras reads the feed itself
            return TrainingFeed(predictor.model, feed, evaluate=evaluate, summary=summary)
        return TrainingFeed(predictor.model, feed_stream(feed, replicas), len(feed), evaluate=evaluate, summary=summary)

    def describe_lengths(self, predictor, data, run=None):
        """Per split, the windows its texts are read in and what `model.maxlen` would cut without them
        (`toolkit.windows.WindowedSplit`); logged, and written to `run/data_summary.json`."""
        model = self.config.model
        found = {
            name: windowed_split(
                predictor.tokenizer,
                split.texts,
                split.entities,
                model.maxlen,
                model.window_stride,
                _entity_spans,
                long_texts=model.long_texts,
            )
            for name, split in (("train", data.train), ("dev", data.dev), ("test", data.test))
            if split is not None
        }
        return describe_windows(found, model, "entities", run=run, log=self.log)

    def compile(self, predictor, feed):
        """AdamW + warmup/decay with the sparse loss over the flattened spans."""
        from toolkit.optimization import make_optimizer

        steps = feed.steps_per_epoch if feed.steps_per_epoch is not None else len(feed.train)
        predictor.model.compile(make_optimizer(self.config.training, steps))

    def score(self, run, predictor, data, *, calibrate=False):
        """Decode dev and test; strict micro and per-type scores, a per-type plot, predictions in JSON lines."""
        from toolkit.plots import plot_per_label_f1
        from toolkit.scores import span_class_report

        results = {"type_count": len(predictor.types)}
        lines = []
        for split in ("dev", "test"):
            dataset = getattr(data, split)
            if dataset is None:
                continue
            predictions = predictor.spans(dataset.texts)
            scores = entity_scores(predictions, dataset.entities, types=predictor.types)
            micro = results[split] = scores["micro"]
            run.write_json(f"per_type_{split}.json", scores["per_type"])
            _write_entities(run / f"predictions_{split}.jsonl", dataset.texts, predictions, dataset.entities)
            plot_per_label_f1(
                span_class_report(scores["per_type"], scores["micro"]),
                run.plots / f"per_type_f1_{split}.png",
                title=f"Per-type F1 ({split})",
            )
            lines.append(
                f"{split}: precision {micro['precision']:.4f} recall {micro['recall']:.4f} f1 {micro['f1']:.4f} "
                f"({micro['num_correct']} correct of {micro['num_predicted']} predicted, {micro['num_gold']} gold)\n"
            )
            self.log(lines[-1].strip())
        return results, "".join(lines)

    def training_summary(self, data, feed_summary):
        return {"train_sentences": len(data.train), **feed_summary}

    def prediction_input(self):
        """One text a line, or JSON lines with `data.text_field` (`text`); a blank line gives no entity."""
        from toolkit.streaming import PredictionInput

        return PredictionInput(text_field=self.config.data.text_field or "text", blank={"entities": []})

    def prediction_records(self, predictor, texts):
        """`{"text", "entities": [{"start", "end", "type", "text"}]}` per text."""
        return [{"text": text, "entities": found} for text, found in zip(texts, predictor.predict(texts))]


def _write_entities(path, texts, predictions, references):
    import json

    def records(text, spans):
        return [{"start": s, "end": e, "type": t, "text": text[s:e]} for s, e, t in spans]

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            for text, predicted, gold in zip(texts, predictions, references):
                line = {"text": text, "entities": records(text, predicted), "entities_gold": records(text, gold)}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")

    replace_file(path, write)
