"""`python -m toolkit export RUN_DIR OUT_DIR`: a run's best model as a TensorFlow SavedModel that reads
raw texts, the tokenizer and the decision rule inside the graph.

The SavedModel needs neither the toolkit nor a Python tokenizer: TensorFlow Serving, or any TensorFlow
runtime, serves it (`tf.saved_model.load(OUT_DIR).signatures["serving_default"]`). Its ops are core
TensorFlow (no `tensorflow_text`): the tokenizer is `toolkit.serving.graph_tokenizer`, the decoders
`toolkit.serving.graph_decoders`.

`serving_default` takes `texts`, a `[n]` string tensor of UTF-8 texts, and returns what the run's
predictor returns, as padded tensors (ints padded with -1, strings with ""), character offsets into
each text (Python `str` indices):

| task | outputs |
|---|---|
| classification | `logits` float32 `[n, labels]`; `labels` bool `[n, labels]` (logit > 0, then the run's `predict.min_labels` / `max_labels`) |
| entities | `entity_start`, `entity_end` int32 `[n, most]`, `entity_type`, `entity_text` string `[n, most]`, `entity_count` int32 `[n]`; sorted by (start, end, type) |
| relations (both methods) | `subject_start`, `subject_end`, `object_start`, `object_end` int32, `subject`, `predicate`, `object`, `subject_type`, `object_type` string `[n, most]` (the types as the schema gives them, else ""), `triple_count` int32 `[n]`; in `RelationPredictor.span_triples`' order |

`metadata` (no inputs) returns `task`, `names` (the label names in the order of `logits`' columns,
the entity types or the predicates), `maxlen` and `long_texts` (the sentence below).

A text is read to `maxlen` tokens (`[CLS]` and `[SEP]` included): a text that fits gives what the
predictor gives; of a longer one the model reads its first `maxlen` tokens, as the predictor does with
`model.long_texts: truncate` (the predictor otherwise reads it in windows, `toolkit.windows`, which the
export does not). A DuIE 2.0 run's triples come out slot by slot (its predicates are the slots;
`RelationPredictor.extract` puts an object's slots back together, the export does not).

```python
from toolkit.serving.export import export_run
export_run("runs/demo_entities", "exported/entities")
```
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["ExportError", "export_predictor", "export_run"]

INPUT_NAME = "texts"
LONG_TEXTS = (
    "a text is read to its first maxlen tokens, [CLS] and [SEP] included (the predictor reads a longer text in "
    "windows unless model.long_texts is truncate)"
)


class ExportError(ValueError):
    """The export's output folder, or the run, cannot be used (the message says which and why)."""


def _check_output_folder(out_dir: Path, run_dir: Path | None = None) -> None:
    """OUT_DIR may be new, empty, or an earlier export (a `saved_model.pb`), which is replaced."""
    if run_dir is not None and out_dir.resolve() == Path(run_dir).resolve():
        raise ExportError(f"{out_dir}: the output folder is the run folder; give a folder of its own")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "saved_model.pb").is_file():
        raise ExportError(
            f"{out_dir}: the folder holds files and no earlier export (saved_model.pb); give a new or empty folder"
        )


def _check_backend() -> None:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            f"export writes a TensorFlow SavedModel and needs the TensorFlow backend; Keras runs on "
            f"{keras.backend.backend()} (set KERAS_BACKEND=tensorflow)"
        )


def export_run(run_dir, out_dir, *, log=print) -> Path:
    """Export the best model of the run in `run_dir` into `out_dir` (see the module docstring)."""
    from toolkit.pipeline import Pipeline

    _check_backend()
    out_dir = Path(out_dir)
    _check_output_folder(out_dir, run_dir)
    pipeline = Pipeline.from_run(run_dir, log=log)
    predictor = pipeline.load_predictor()
    export_predictor(predictor, out_dir)
    model = pipeline.config.model
    log(
        f"exported {pipeline.run_folder.best} ({pipeline.config.task}) to {out_dir}: serving_default takes "
        f"texts, [n] strings, and reads each to {model.maxlen} tokens"
    )
    if model.long_texts != "truncate":
        log(
            f"the run's predictor reads a text longer than {model.maxlen} tokens by {model.long_texts} "
            "(model.long_texts); the export reads its first maxlen tokens: send such texts in pieces"
        )
    return out_dir


def export_predictor(predictor, out_dir) -> Path:
    """Write `predictor` (a `MultilabelPredictor` with a `TextPreprocessor`, an `EntityPredictor` or a
    `RelationPredictor`) as a SavedModel into `out_dir`, replacing an earlier export there."""
    import keras
    import tensorflow as tf

    from toolkit.atomic import replace_directory

    _check_backend()
    out_dir = Path(out_dir)
    _check_output_folder(out_dir)
    task, names, maxlen, graph, serve, models = _serving(predictor)
    archive = keras.export.ExportArchive()
    for model in models:
        archive.track(model)
    archive.track(graph.table)
    archive.add_endpoint("serving_default", serve, input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])

    def metadata():
        return {
            "task": tf.constant(task),
            "names": tf.constant(names),
            "maxlen": tf.constant(maxlen, tf.int32),
            "long_texts": tf.constant(LONG_TEXTS),
        }

    archive.add_endpoint("metadata", metadata, input_signature=[])
    # TensorFlow logs "Assets written to: <the temporary folder>" at INFO: not news, and a wrong name.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(max(level, logging.WARNING))
    try:
        replace_directory(lambda folder: archive.write_out(str(folder), verbose=False), out_dir)
    finally:
        tf_logger.setLevel(level)
    return out_dir


def _serving(predictor):
    """`(task, names, maxlen, graph tokenizer, serving function, models to track)` of a predictor."""
    from toolkit.entities.pipeline import EntityPredictor
    from toolkit.predictors import MultilabelPredictor
    from toolkit.relations.pipeline import RelationPredictor

    if isinstance(predictor, MultilabelPredictor):
        return _classification(predictor)
    if isinstance(predictor, EntityPredictor):
        return _entities(predictor)
    if isinstance(predictor, RelationPredictor):
        return _relations(predictor)
    raise ExportError(f"cannot export a {type(predictor).__name__}: not a predictor of the toolkit's tasks")


def _encoder_inputs(encoded):
    import tensorflow as tf

    token_ids = encoded["token_ids"]
    return {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids)}


def _classification(predictor):
    import tensorflow as tf

    from toolkit.serving.graph_decoders import classification_outputs
    from toolkit.serving.graph_tokenizer import GraphTokenizer

    preprocessor = predictor.preprocessor
    if getattr(preprocessor, "tokenizer", None) is None:
        raise ExportError("cannot export a MultilabelPredictor without its TextPreprocessor (the run's tokenizer)")
    graph = GraphTokenizer(preprocessor.tokenizer, preprocessor.maxlen)
    model = predictor.model
    rule = {
        "threshold": predictor.decision_threshold,
        "min_labels": max(predictor.min_labels, int(predictor.at_least_one)),
        "max_labels": predictor.max_labels,
    }

    def serve(texts):
        encoded = graph(texts)
        inputs = _encoder_inputs(encoded)
        width = tf.shape(encoded["token_ids"])[1]
        inputs["padding_mask"] = tf.sequence_mask(encoded["lengths"], width, tf.int32)
        logits = tf.cast(model(inputs, training=False), tf.float32)
        return classification_outputs(logits, **rule)

    return "multilabel_classification", list(predictor.label_names), preprocessor.maxlen, graph, serve, [model]


def _entities(predictor):
    import tensorflow as tf

    from toolkit.serving.graph_decoders import entity_outputs
    from toolkit.serving.graph_tokenizer import GraphTokenizer

    graph = GraphTokenizer(predictor.tokenizer, predictor.maxlen)
    model = predictor.model

    def serve(texts):
        encoded = graph(texts)
        scores = tf.cast(model(_encoder_inputs(encoded), training=False), tf.float32)
        return entity_outputs(texts, scores, encoded, list(model.types))

    return "entity_recognition", list(model.types), predictor.maxlen, graph, serve, [model]


def _relations(predictor):
    import tensorflow as tf

    from toolkit.serving.graph_decoders import gplinker_outputs, semi_pointer_outputs
    from toolkit.serving.graph_tokenizer import GraphTokenizer

    graph = GraphTokenizer(predictor.tokenizer, predictor.maxlen)
    extractor = predictor.extractor
    predicates = list(extractor.predicates)
    signatures = dict(predictor.schema.signatures)

    if predictor.method == "gplinker":

        def serve(texts):
            encoded = graph(texts)
            outputs = extractor(_encoder_inputs(encoded), training=False)
            outputs = {name: tf.cast(value, tf.float32) for name, value in outputs.items()}
            return gplinker_outputs(texts, outputs, encoded, predicates, signatures)

    else:

        def serve(texts):
            encoded = graph(texts)
            outputs = extractor.subject_model(_encoder_inputs(encoded), training=False)
            sequence = outputs["sequence_output"]
            padding_mask = tf.cast(encoded["token_ids"] != extractor.pad_id, tf.int32)

            def object_logits(rows, spans):
                inputs = {
                    "sequence_output": tf.gather(sequence, rows),
                    "padding_mask": tf.gather(padding_mask, rows),
                    "subject_span": spans,
                }
                return tf.cast(extractor.object_model(inputs, training=False), tf.float32)

            subject_logits = tf.cast(outputs["subject_logits"], tf.float32)
            return semi_pointer_outputs(texts, subject_logits, object_logits, encoded, predicates, signatures)

    return "relation_extraction", predicates, predictor.maxlen, graph, serve, [extractor]
