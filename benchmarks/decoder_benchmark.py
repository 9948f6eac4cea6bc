"""Relation decoding speed: the batched decoder against bert4keras's per-sentence decode.

Both decode the same `RelationExtractor` (semi-pointer semi-tagging) over the same dev
sentences and give the same triples:

- batched (`toolkit.relations.decode_relations`): the encoder runs once per batch of 64
  sentences (sorted by length), then the object head runs once for every subject of the
  batch, on the encoder's outputs repeated per subject;
- per sentence (`decode_per_sentence_bert4keras_style`): as bert4keras's `extract_spoes`,
  one call for the subjects of a sentence and a second call that re-runs the encoder on
  the sentence repeated once per subject.

Both make their model calls with `predict_on_batch` (compiled `tf.function`s), so the
difference is batching and running the encoder once, not Keras call overhead.

Data and encoders (from `../shared`):

- `lic2019`: the LIC2019 dev sample (1,000 sentences, 49 predicates), the Chinese BERT
  vocabulary and a randomly initialised BERT (default 2 layers, hidden 128);
- `webnlg`: WebNLG* val (500 sentences, 171 predicates) with the pretrained
  all-MiniLM-L6-v2 (6 layers, hidden 384; `python -m toolkit get-encoder all-MiniLM-L6-v2`).

Untrained heads find either no span or spans everywhere, which would make the comparison
meaningless (the per-sentence decode re-runs the encoder only for sentences with a subject,
once per subject). So that decoding does a realistic amount of work:

1. the heads are fitted, cheaply: the encoder is frozen, its outputs for 1,024 training
   sentences are computed once, and the subject and object heads (with the conditional
   layer norm) are trained on them for 20 epochs with the model's loss;
2. the head biases are then shifted (one shift per head) so that, on the dev sentences
   being decoded, the subject head finds the gold number of subjects per sentence and the
   object head the gold number of objects per subject (heads on a random or frozen encoder
   are too weak to get these numbers right on their own).

The subjects and triples the decoders then find are reported next to the speed (with their
F1, which is low: this measures speed, not accuracy).

    python benchmarks/decoder_benchmark.py --write-doc          # both data sets (~15 min on 2 cores)
    python benchmarks/decoder_benchmark.py --datasets lic2019 --limit 200 --rounds 1   # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from _docs import cpu_model, minilm_dir, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
RE_DATA = SHARED / "data" / "re"
CHINESE_VOCAB = SHARED / "data" / "chinese_bert" / "vocab.txt"
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Relation decoding"
DATASETS = ("lic2019", "webnlg")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: lic2019, webnlg")
    parser.add_argument("--limit", type=int, default=None, help="decode only the first N dev sentences")
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per encoder call (batched)")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of each decoder, alternating")
    parser.add_argument("--layers", type=int, default=2, help="random Chinese encoder: layers")
    parser.add_argument("--hidden", type=int, default=128, help="random Chinese encoder: hidden size")
    parser.add_argument("--minilm", type=Path, default=None, help="all-MiniLM-L6-v2 folder (default: fetched)")
    parser.add_argument("--head-sentences", type=int, default=1024, help="training sentences the heads are fitted on")
    parser.add_argument("--head-epochs", type=int, default=20, help="epochs of head fitting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-doc", action="store_true", help=f"replace {SECTION} in {DOC}")
    return parser.parse_args(argv)


# --- Data and models -------------------------------------------------------------------------


def load_dataset(name: str):
    from toolkit.data.relations import read_relations

    if name == "lic2019":
        folder = RE_DATA / "lic2019_sample"
        schema = folder / "all_50_schemas"
        read = lambda split: read_relations(folder / f"{split}_data.json", layout="lic2019", schema=schema)  # noqa: E731
    else:
        folder = RE_DATA / "webnlg_star"
        schema = folder / "rel2id.json"
        read = lambda split: read_relations(folder / f"{split}_triples.json", layout="casrel", schema=schema)  # noqa: E731
    if not schema.is_file():
        raise SystemExit(f"{schema} is missing: the benchmark reads its data from {SHARED / 'data'}.")
    return read("train"), read("dev" if name == "lic2019" else "val")


def minilm_folder(args) -> Path:
    if args.minilm is not None:
        return args.minilm
    return Path(minilm_dir())


def load_encoder_for(name: str, args):
    from toolkit.encoders import load_encoder

    if name == "lic2019":
        spec = {
            "source": "random",
            "vocab": str(CHINESE_VOCAB),
            "num_layers": args.layers,
            "hidden_dim": args.hidden,
            "num_heads": max(1, args.hidden // 64),
            "intermediate_dim": 4 * args.hidden,
            "max_sequence_length": 512,
            "dropout": 0.0,
        }
        description = f"random BERT, {args.layers} layers, hidden {args.hidden}, Chinese vocab (21,128)"
    else:
        spec = {"source": "huggingface", "path": str(minilm_folder(args)), "dropout": 0.0}
        description = "all-MiniLM-L6-v2 (pretrained; 6 layers, hidden 384)"
    return load_encoder(spec, maxlen=args.maxlen), description


def fit_heads(extractor, tokenizer, dataset, maxlen, sentences, epochs, seed):
    """Train the subject and object heads on cached encoder outputs (the encoder stays fixed).

    Returns the training `TargetReport` summary. One subject is drawn per sentence, as the
    training feed does, and the loss is the model's own (summed over rows).
    """
    import keras

    from toolkit.losses import MultilabelCategoricalCrossentropy
    from toolkit.relations import build_targets

    targets, report = build_targets(
        dataset.texts[:sentences], dataset.triples[:sentences], tokenizer, extractor.predicates, maxlen
    )
    targets = [item for item in targets if item.subject_spans]
    seq_len = max(len(item) for item in targets)
    count, predicates = len(targets), len(extractor.predicates)
    token_ids = np.full((count, seq_len), extractor.pad_id, dtype="int32")
    segment_ids = np.zeros((count, seq_len), dtype="int32")
    for row, item in enumerate(targets):
        token_ids[row, : len(item)] = item.token_ids
        segment_ids[row, : len(item)] = item.segment_ids
    sequence = np.concatenate(
        [
            np.asarray(
                extractor.subject_model.predict_on_batch(
                    {"token_ids": token_ids[i : i + 64], "segment_ids": segment_ids[i : i + 64]}
                )["sequence_output"]
            )
            for i in range(0, count, 64)
        ]
    )
    rng = np.random.default_rng(seed)
    spans = np.array([item.subject_spans[rng.integers(len(item.subject_spans))] for item in targets], dtype="int32")
    subject_labels = np.stack([item.subject_labels(seq_len) for item in targets])
    object_labels = np.stack([item.object_labels(span, seq_len) for item, span in zip(targets, spans)])

    sequence_input = keras.Input((None, sequence.shape[-1]))
    mask_input = keras.Input((None,), dtype="int32")
    span_input = keras.Input((2,), dtype="int32")
    condition = extractor.subject_gather(sequence_input, span_input)
    heads = keras.Model(
        [sequence_input, mask_input, span_input],
        {
            "subject_logits": extractor.subject_head(sequence_input, mask_input),
            "object_logits": extractor.object_head(extractor.subject_condition(sequence_input, condition), mask_input),
        },
    )
    heads.compile(
        keras.optimizers.Adam(2e-3),
        loss={
            "subject_logits": MultilabelCategoricalCrossentropy(),
            "object_logits": MultilabelCategoricalCrossentropy(),
        },
        loss_weights={"subject_logits": 2.0, "object_logits": 2.0 * predicates},
    )
    heads.fit(
        [sequence, (token_ids != extractor.pad_id).astype("int32"), spans],
        {"subject_logits": subject_labels, "object_logits": object_labels},
        batch_size=32,
        epochs=epochs,
        verbose=0,
    )
    return report.summary()


def _span_scores(start_logits, end_logits, lengths):
    """Per row and position, the score above which a span starting there is decoded.

    With the decoder's rule a start at real token `s` gives a span when its logit is above
    0 and some end logit at a real token `e >= s` is too, so after adding `shift` to every
    logit the number of spans of a row is the number of positions whose
    `min(start[s], max(end[s:last real token + 1])) + shift > 0`.
    """
    rows, seq_len = start_logits.shape
    positions = np.arange(seq_len)[None, :]
    lengths = np.asarray(lengths)[:, None]
    real = (positions >= 1) & (positions <= lengths - 2)  # not [CLS], [SEP] or padding
    ends = np.where(real, end_logits, -np.inf)
    later_end = np.maximum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    return np.where(real, np.minimum(start_logits, later_end), -np.inf)


def _matching_shift(count, target) -> float:
    """The shift whose `count(shift)` is closest to `target` (bisection; count grows with it)."""
    low, high = -30.0, 30.0
    for _ in range(30):
        middle = (low + high) / 2
        if count(middle) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _add_to_bias(head, shift):
    import keras

    head.dense.bias.assign(keras.ops.convert_to_numpy(head.dense.bias) + shift)


def calibrate_heads(extractor, tokenizer, texts, triples, maxlen):
    """Shift the head biases so that decoding `texts` finds their gold numbers of spans.

    One shift of the subject head's bias (start and end alike) makes the subjects found
    per sentence equal the gold number; then one shift of the object head's bias makes the
    objects found per found subject (over all predicates) equal the gold number of objects
    per subject. Returns those two gold numbers.
    """
    from toolkit.relations import build_targets, find_spans

    targets, _ = build_targets(texts, triples, tokenizer, extractor.predicates, maxlen)
    subjects = sum(len(item.subject_spans) for item in targets)
    subjects_per_sentence = subjects / len(targets)
    objects_per_subject = sum(len(found) for item in targets for found in item.objects.values()) / max(1, subjects)

    chunks = []
    for begin in range(0, len(targets), 64):
        chunk = targets[begin : begin + 64]
        inputs = tokenizer.to_model_inputs([item.encoding for item in chunk])
        outputs = extractor.subject_model.predict_on_batch(
            {"token_ids": inputs["token_ids"], "segment_ids": inputs["segment_ids"]}
        )
        chunks.append((chunk, inputs, outputs))
    subject_scores = np.concatenate(
        [
            _span_scores(logits[:, 0], logits[:, 1], [len(item) for item in chunk]).ravel()
            for chunk, _, outputs in chunks
            for logits in [np.asarray(outputs["subject_logits"])]
        ]
    )
    subject_scores = subject_scores[np.isfinite(subject_scores)]
    subject_shift = _matching_shift(
        lambda value: np.sum(subject_scores + value > 0) / len(targets), subjects_per_sentence
    )
    _add_to_bias(extractor.subject_head, subject_shift)

    object_scores, found = [], 0
    for chunk, inputs, outputs in chunks:
        logits = np.asarray(outputs["subject_logits"]) + subject_shift
        owners, spans = [], []
        for row, item in enumerate(chunk):
            for start, end in find_spans(logits[row, 0], logits[row, 1], len(item)):
                if not item.encoding.is_special(start) and not item.encoding.is_special(end):
                    owners.append(row)
                    spans.append((start, end))
        if not spans:
            continue
        found += len(spans)
        object_logits = np.asarray(
            extractor.object_model.predict_on_batch(
                {
                    "sequence_output": np.asarray(outputs["sequence_output"])[owners],
                    "padding_mask": inputs["padding_mask"][owners],
                    "subject_span": np.asarray(spans, dtype="int32"),
                }
            )
        )
        predicates = object_logits.shape[1]
        flat = object_logits.reshape(-1, 2, object_logits.shape[-1])
        lengths = np.repeat([len(chunk[owner]) for owner in owners], predicates)
        scores = _span_scores(flat[:, 0], flat[:, 1], lengths).ravel()
        object_scores.append(scores[np.isfinite(scores)])
    object_scores = np.concatenate(object_scores) if object_scores else np.zeros(0)
    object_shift = _matching_shift(lambda value: np.sum(object_scores + value > 0) / max(1, found), objects_per_subject)
    _add_to_bias(extractor.object_head, object_shift)
    return subjects_per_sentence, objects_per_subject


def count_subjects(extractor, tokenizer, texts, maxlen) -> float:
    """Subjects per sentence that the subject head finds (untimed)."""
    from toolkit.relations import find_spans

    total = 0
    encodings = tokenizer.encode_batch(texts, maxlen=maxlen)
    for begin in range(0, len(texts), 64):
        batch = encodings[begin : begin + 64]
        inputs = tokenizer.to_model_inputs(batch)
        logits = np.asarray(
            extractor.subject_model.predict_on_batch(
                {"token_ids": inputs["token_ids"], "segment_ids": inputs["segment_ids"]}
            )["subject_logits"]
        )
        for row, encoding in zip(logits, batch):
            spans = find_spans(row[0], row[1], len(encoding.token_ids))
            total += sum(not encoding.is_special(start) and not encoding.is_special(end) for start, end in spans)
    return total / len(texts)


# --- Timing ----------------------------------------------------------------------------------


def run_dataset(name: str, args) -> dict:
    import keras

    from toolkit.relations import (
        RelationExtractor,
        decode_per_sentence_bert4keras_style,
        decode_relations,
        triple_scores,
    )

    keras.utils.set_random_seed(args.seed)
    train, dev = load_dataset(name)
    texts = dev.texts[: args.limit] if args.limit else dev.texts
    encoder, description = load_encoder_for(name, args)
    tokenizer = encoder.tokenizer
    extractor = RelationExtractor(encoder.backbone, dev.predicates, pad_id=tokenizer.pad_id)
    fit_report = fit_heads(extractor, tokenizer, train, args.maxlen, args.head_sentences, args.head_epochs, args.seed)
    subjects_rate, objects_rate = calibrate_heads(extractor, tokenizer, texts, dev.triples[: len(texts)], args.maxlen)

    def batched():
        return decode_relations(extractor, tokenizer, texts, maxlen=args.maxlen, batch_size=args.batch_size)

    def per_sentence():
        return decode_per_sentence_bert4keras_style(extractor, tokenizer, texts, maxlen=args.maxlen)

    # Warm-up: trace the predict functions, with batches of two sizes and many lengths so that
    # TF relaxes them to any shape before the timed runs.
    warm = texts[: 2 * args.batch_size + 5]
    decode_relations(extractor, tokenizer, warm, maxlen=args.maxlen, batch_size=args.batch_size)
    decode_per_sentence_bert4keras_style(extractor, tokenizer, warm[:40], maxlen=args.maxlen)

    times = {"batched": [], "per_sentence": []}
    results = {}
    for _ in range(args.rounds):
        for label, function in (("batched", batched), ("per_sentence", per_sentence)):
            start = time.perf_counter()
            results[label] = function()
            times[label].append(time.perf_counter() - start)
    same = sum(sorted(a) == sorted(b) for a, b in zip(results["batched"], results["per_sentence"]))
    subjects = count_subjects(extractor, tokenizer, texts, args.maxlen)
    scores = triple_scores(results["batched"], dev.triples[: len(texts)])
    return {
        "dataset": name,
        "encoder": description,
        "sentences": len(texts),
        "predicates": len(dev.predicates),
        "batched_rate": len(texts) / min(times["batched"]),
        "per_sentence_rate": len(texts) / min(times["per_sentence"]),
        "agreement": same / len(texts),
        "subjects_per_sentence": subjects,
        "f1": scores["f1"],
        "fit_report": fit_report,
        "triples_per_sentence": float(np.mean([len(found) for found in results["batched"]])),
        "gold_subjects_per_sentence": subjects_rate,
        "gold_objects_per_subject": objects_rate,
    }


# --- Report ----------------------------------------------------------------------------------


TITLES = {"lic2019": "LIC2019 dev sample", "webnlg": "WebNLG* val"}
TARGETS = {"lic2019": 10.0, "webnlg": 4.0}


def render(rows, args, load) -> str:
    import keras
    import tensorflow as tf

    lines = [
        SECTION,
        "",
        "Sentences per second decoding (subject, predicate, object) triples with the "
        "semi-pointer semi-tagging `RelationExtractor`: `decode_relations` (encoder once per "
        f"batch of {args.batch_size} sentences, then the object head once for all the batch's "
        "subjects) against `decode_per_sentence_bert4keras_style` (per sentence: one call for "
        "the subjects, one that re-runs the encoder for their objects, as bert4keras's "
        "`extract_spoes`). Same model, same `predict_on_batch` calls, same post-processing; "
        f"maxlen {args.maxlen}; the best of {args.rounds} alternating runs after a warm-up.",
        "",
        "| data | encoder | sentences | batched (sent/s) | per sentence (sent/s) | speed-up | target "
        "| same triples | subjects / sent | triples / sent | triple F1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {TITLES[row['dataset']]} ({row['predicates']} predicates) | {row['encoder']} | "
            f"{row['sentences']:,} | {row['batched_rate']:,.1f} | {row['per_sentence_rate']:,.1f} | "
            f"{row['batched_rate'] / row['per_sentence_rate']:.1f}x | >= {TARGETS[row['dataset']]:.0f}x | "
            f"{row['agreement']:.1%} | {row['subjects_per_sentence']:.2f} | {row['triples_per_sentence']:.2f} | "
            f"{row['f1']:.3f} |"
        )
    lines += [
        "",
        "The speed depends on how many subjects are found (the per-sentence decode re-runs the "
        "encoder for every sentence with a subject, on a copy per subject) and, a little, on how "
        "many objects, so the heads are made to find realistic numbers: with the encoder frozen, "
        f"the subject and object heads are fitted for {args.head_epochs} epochs on the encoder's "
        f"outputs for {args.head_sentences:,} training sentences; then one shift of each head's "
        "bias makes the decoders find, on the dev sentences, the gold number of subjects per "
        "sentence ("
        + ", ".join(f"{row['gold_subjects_per_sentence']:.2f} in {TITLES[row['dataset']]}" for row in rows)
        + ") and of objects per subject ("
        + ", ".join(f"{row['gold_objects_per_subject']:.2f}" for row in rows)
        + "). The last columns are what the decoders then found (subjects: spans the subject "
        "head found); the F1 is low because the encoder is random (LIC2019) or frozen with "
        'heads fitted on little data: this measures speed, not accuracy. "Same triples" is the '
        "share of sentences for which both decoders return the same triples; a difference "
        "comes from a logit within float rounding of 0 (a batched row is padded, a single "
        "sentence is not, which changes the last bits).",
        "",
        f"Command: `{args.command}`",
        "",
        f"Machine: `nproc` = {len(os.sched_getaffinity(0))}, {cpu_model()}, no GPU, load average "
        f"{load[0]:.1f} at the start and {load[1]:.1f} at the end (a shared machine); "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__} "
        f"(backend {keras.backend.backend()}).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    args.command = " ".join(
        ["python benchmarks/decoder_benchmark.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
    )
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO_ROOT))
    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise SystemExit(f"Unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}.")
    load_start = os.getloadavg()
    rows = []
    for name in names:
        row = run_dataset(name, args)
        rows.append(row)
        print(
            f"{name}: F1 {row['f1']:.3f}; batched {row['batched_rate']:.1f} sent/s, per sentence {row['per_sentence_rate']:.1f} sent/s, "
            f"x{row['batched_rate'] / row['per_sentence_rate']:.1f}; same triples {row['agreement']:.1%}; "
            f"{row['subjects_per_sentence']:.2f} subjects and {row['triples_per_sentence']:.2f} triples per sentence",
            flush=True,
        )
    markdown = render(rows, args, (load_start[0], os.getloadavg()[0]))
    print(markdown)
    if args.write_doc:
        write_section(DOC, SECTION, markdown)


if __name__ == "__main__":
    main()
