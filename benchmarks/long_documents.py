"""Long documents: what a trained span model finds in documents of joined sentences, read in windows, against
the same model on the sentences one by one and against reading only the first `maxlen` tokens.

    python benchmarks/long_documents.py scores RUN_DIR [RUN_DIR ...] [--join 10] [--strides 0.25,0.5,0.75]
    python benchmarks/long_documents.py lengths CONFIG [--maxlen 64] [--set KEY=VALUE ...]
    python benchmarks/long_documents.py cost RUN_DIR [--characters 200000]
    python benchmarks/long_documents.py classify RUN_DIR
    ... [--write-doc]   (the section of docs/results.md, or docs/benchmarks.md for `cost`)

`scores`: the run's dev split (as its config reads it) joined `--join` sentences to a document, in order
(with a space, or nothing between Chinese sentences); the gold relations or entities moved onto the
document's characters. Each way of reading is scored against that gold (precision, recall, F1, as the data
scores them) and against what the model finds in the sentences one by one ("kept": the share of those that
it also finds in the documents). `lengths`: a config's splits at a `maxlen` that cuts them, what is lost
for length without windows and with them (no model needed). `cost`: one document of `--characters`
characters (dev sentences repeated) through `predict`'s records in windows: seconds, characters per second
against the same text as its sentences, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from _docs import REPO_ROOT, machine_line, write_section

sys.path.insert(0, str(REPO_ROOT))

SECTION = "## Long documents: windows against sentences and truncation"
LENGTHS_SECTION = "## Long documents: what maxlen cuts from training data, without and with windows"
COST_SECTION = "## Long documents: cost of a 200,000-character document"


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= character <= "\u9fff" for character in text)


def join_documents(texts, size):
    """`[(document, [(sentence index, start), ...])]`: `size` texts at a time, in order."""
    documents = []
    for first in range(0, len(texts), size):
        group = list(range(first, min(first + size, len(texts))))
        separator = "" if _is_chinese(texts[group[0]]) else " "
        parts, starts, position = [], [], 0
        for index in group:
            starts.append((index, position))
            parts.append(texts[index])
            position += len(texts[index]) + len(separator)
        documents.append((separator.join(parts), starts))
    return documents


def _moved_relation(record, offset):
    record = dict(record)
    for key in ("subject_span", "object_span"):
        if key in record:
            record[key] = [record[key][0] + offset, record[key][1] + offset]
    return record


class _Task:
    """What differs between relations and entities: the predictor's items, their keys, the gold."""

    def __init__(self, pipeline, predictor, data):
        self.predictor, self.data = predictor, data
        self.relations = pipeline.task == "relation_extraction"
        self.scoring = data.dev.scoring if self.relations else "span"

    def found(self, texts):
        if self.relations:
            return self.predictor.extract(texts)
        return [[(start, end, kind) for start, end, kind in spans] for spans in self.predictor.spans(texts)]

    def moved(self, item, offset):
        if self.relations:
            return _moved_relation(item, offset)
        return (item[0] + offset, item[1] + offset, item[2])

    def key(self, item):
        if self.relations:
            from toolkit.relations.evaluation import relation_key

            return relation_key(item, self.scoring)
        return item

    def gold(self):
        return self.data.dev.gold if self.relations else self.data.dev.entities


def _counts(found, reference):
    correct = len(found & reference)
    precision = correct / len(found) if found else 0.0
    recall = correct / len(reference) if reference else 0.0
    f1 = 2 * correct / (len(found) + len(reference)) if found or reference else 0.0
    return precision, recall, f1


def score_run(run_dir, join, strides):
    """Rows of the `scores` table for one run."""
    from toolkit.pipeline import Pipeline

    pipeline = Pipeline.from_run(run_dir, log=lambda message: None)
    data = pipeline.read_data()
    predictor = pipeline.predictor_class.load(Path(run_dir) / "best")
    task = _Task(pipeline, predictor, data)
    texts = list(data.dev.texts)
    documents = join_documents(texts, join)
    gold_sentences = task.gold()

    def per_document(items_per_sentence):
        sets = []
        for _, starts in documents:
            sets.append(
                {task.key(task.moved(item, offset)) for index, offset in starts for item in items_per_sentence[index]}
            )
        return sets

    gold = per_document(gold_sentences)
    document_texts = [document for document, _ in documents]

    def read_documents():
        return [{task.key(item) for item in found} for found in task.found(document_texts)]

    readings, seconds = {}, {}
    started = time.perf_counter()
    readings["sentences one by one"] = per_document(task.found(texts))
    seconds["sentences one by one"] = time.perf_counter() - started
    predictor.long_texts, predictor.window_stride = "sentences", None
    reading = "long_texts: sentences (the default)"
    started = time.perf_counter()
    readings[reading] = read_documents()
    seconds[reading] = time.perf_counter() - started
    for stride in strides:
        predictor.long_texts, predictor.window_stride = "windows", max(1, int(round(stride * (predictor.maxlen - 2))))
        reading = f"long_texts: windows, stride {stride:g} of a window ({predictor.window_stride} tokens)"
        started = time.perf_counter()
        readings[reading] = read_documents()
        seconds[reading] = time.perf_counter() - started
    predictor.long_texts = "truncate"
    readings["long_texts: truncate (the first maxlen tokens)"] = read_documents()
    config = pipeline.config
    name = Path(run_dir).name
    method = config.model.method if task.relations else "entities"

    def flat(sets):
        return {(number, key) for number, found in enumerate(sets) for key in found}

    gold_all, sentences_all = flat(gold), flat(readings["sentences one by one"])
    rows = []
    for reading, found in readings.items():
        found_all = flat(found)
        precision, recall, f1 = _counts(found_all, gold_all)
        kept = len(found_all & sentences_all) / len(sentences_all) if sentences_all else 0.0
        rows.append((name, method, reading, precision, recall, f1, kept, seconds.get(reading)))
    tokens = predictor.tokenizer.word_tokens(document_texts)
    lengths = sorted(len(offsets) for offsets, _ in tokens)
    summary = (
        f"{name}: {len(texts)} dev sentences as {len(documents)} documents of {join}; document tokens median "
        f"{lengths[len(lengths) // 2]}, longest {lengths[-1]}; model.maxlen {predictor.maxlen}; scoring {task.scoring}"
    )
    return summary, rows


def scores_command(args):
    load_start = os.getloadavg()[0]
    strides = [float(value) for value in args.strides.split(",")]
    summaries, rows = [], []
    for run_dir in args.runs:
        summary, found = score_run(run_dir, args.join, strides)
        summaries.append(summary)
        rows.extend(found)
        print(summary, flush=True)
        for row in found:
            print(
                "  " + " | ".join(f"{value:.3f}" if isinstance(value, float) else str(value) for value in row),
                flush=True,
            )
    lines = [
        SECTION,
        "",
        f"`python benchmarks/long_documents.py scores {' '.join(args.runs)} --join {args.join} --strides {args.strides}`",
        "",
        "Each run's dev sentences joined in order, ten to a document; the gold moved onto the document's "
        "characters. *kept*: the share of what the model finds in the sentences one by one that it also finds "
        "in the documents (the issue's target: at least 95%).",
        "",
        *[f"- {summary}" for summary in summaries],
        "",
        "| run | model | read as | precision | recall | F1 | kept |",
        "|---|---|---|---:|---:|---:|---:|",
        *[f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.1%} |" for r in rows],
        "",
        machine_line(load_start, os.getloadavg()[0], args.note),
        "",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.write_doc:
        write_section(REPO_ROOT / "docs" / "results.md", SECTION, markdown)


def lengths_command(args):
    from toolkit.config import load_config
    from toolkit.tasks import pipeline_class

    overrides = [*args.set, f"model.maxlen={args.maxlen}"]
    config = load_config(args.config, overrides=overrides)
    pipeline = pipeline_class(config.task)(config, log=lambda message: None)
    data = pipeline.read_data()
    predictor = pipeline.build(data)
    lines_out = []
    windows = pipeline.describe_lengths(predictor, data, None)
    rows = []
    noun = "triples" if config.task == "relation_extraction" else "entities"
    for name, split in windows.items():
        report = split.report
        rows.append(
            f"| {name} | {report.texts} | {report.long_texts} | {report.annotations} | {report.beyond_maxlen} | "
            f"{report.unplaced} | {report.windows} |"
        )
    lines_out = [
        LENGTHS_SECTION,
        "",
        f"`python benchmarks/long_documents.py lengths {args.config} --maxlen {args.maxlen}"
        + "".join(f" --set {item}" for item in args.set)
        + "`",
        "",
        f"model.maxlen {args.maxlen}, windows {windows['train'].plan.stride} tokens apart. *Lost without windows*: "
        f"{noun} that lie (in part) past the first maxlen tokens of their text, which truncation never reads; "
        f"*lost with windows*: those whose entities never share a window (counted and named in the log and "
        f"`data_summary.json`).",
        "",
        f"| split | texts | texts longer than maxlen | {noun} | lost without windows | lost with windows | windows |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    markdown = "\n".join(lines_out)
    print(markdown)
    if args.write_doc:
        write_section(REPO_ROOT / "docs" / "results.md", LENGTHS_SECTION, markdown)


def cost_command(args):
    from toolkit.pipeline import Pipeline

    load_start = os.getloadavg()[0]
    pipeline = Pipeline.from_run(args.run, log=lambda message: None)
    data = pipeline.read_data()
    predictor = pipeline.predictor_class.load(Path(args.run) / "best")
    predictor.long_texts = args.long_texts
    sentences, total = [], 0
    texts = list(data.dev.texts)
    while total < args.characters:
        sentence = texts[len(sentences) % len(texts)]
        sentences.append(sentence)
        total += len(sentence) + 1
    document = " ".join(sentences)[: args.characters]
    pipeline.prediction_records(predictor, sentences[:64])  # warm up: traces, first allocations
    started = time.perf_counter()
    pipeline.prediction_records(predictor, sentences)
    sentence_seconds = time.perf_counter() - started
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    [record] = pipeline.prediction_records(predictor, [document])
    document_seconds = time.perf_counter() - started
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    found = len(record.get("spo_list", record.get("entities", record.get("labels", []))))
    markdown = "\n".join(
        [
            COST_SECTION,
            "",
            f"`python benchmarks/long_documents.py cost {args.run} --characters {args.characters} "
            f"--long-texts {args.long_texts}`",
            "",
            f"One document of {len(document):,} characters ({len(sentences)} dev sentences joined) through "
            f"`prediction_records` (what `predict` writes), model.maxlen {predictor.maxlen}, long_texts "
            f"{args.long_texts}, batch {predictor.batch_size}.",
            "",
            "| input | seconds | characters per second | found |",
            "|---|---:|---:|---:|",
            f"| the document, in windows | {document_seconds:.1f} | {len(document) / document_seconds:,.0f} | {found} |",
            f"| its {len(sentences)} sentences, one text each | {sentence_seconds:.1f} | "
            f"{total / sentence_seconds:,.0f} | |",
            "",
            f"Peak resident memory of the process: {peak_before:,.0f} MiB after the sentences, {peak_after:,.0f} MiB "
            f"after the document (windows are decoded {512} at a time, so the document adds what 512 windows cost).",
            "",
            machine_line(load_start, os.getloadavg()[0], args.note),
            "",
        ]
    )
    print(markdown)
    if args.write_doc:
        write_section(REPO_ROOT / "docs" / "benchmarks.md", COST_SECTION, markdown)


CLASSIFY_SECTION = "## Long texts in classification: windows against truncation"


def classify_command(args):
    """Dev micro- and macro-F1 of a classification run with each reading of its long texts."""
    from toolkit.data.multilabel import to_multi_hot
    from toolkit.pipeline import Pipeline
    from toolkit.scores import multilabel_scores

    load_start = os.getloadavg()[0]
    pipeline = Pipeline.from_run(args.run, log=lambda message: None)
    data = pipeline.read_data()
    predictor = pipeline.predictor_class.load(Path(args.run) / "best")
    preprocessor = predictor.preprocessor
    texts = list(data.dev.texts)
    targets = to_multi_hot(data.dev.labels, predictor.label_names)
    rows = []
    for long_texts, pooling in (
        ("truncate", "max"),
        ("sentences", "max"),
        ("sentences", "mean"),
        ("windows", "max"),
        ("windows", "mean"),
    ):
        preprocessor.long_texts, preprocessor.window_pooling = long_texts, pooling
        preprocessor.read_counts.__init__()
        started = time.perf_counter()
        decisions = predictor.predict(texts)
        seconds = time.perf_counter() - started
        scores = multilabel_scores(targets, decisions)
        counts = preprocessor.read_counts
        reading = long_texts if long_texts == "truncate" else f"{long_texts}, {pooling} of the window logits"
        rows.append((reading, scores["micro_f1"], scores["macro_f1"], counts.windows, seconds))
        print(rows[-1], flush=True)
    long_share = f"{counts.long_texts} of {counts.texts} dev texts longer than model.maxlen {preprocessor.maxlen}"
    markdown = "\n".join(
        [
            CLASSIFY_SECTION,
            "",
            f"`python benchmarks/long_documents.py classify {args.run}`",
            "",
            f"The run's saved model (trained on the first model.maxlen tokens of each text) scored on its dev split "
            f"read five ways; {long_share}. The decision rule is logit > 0 throughout.",
            "",
            "| long texts read as | dev micro-F1 | dev macro-F1 | windows of the long texts | seconds |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3] if r[0] != 'truncate' else '-'} | {r[4]:.1f} |"
                for r in rows
            ],
            "",
            machine_line(load_start, os.getloadavg()[0], args.note),
            "",
        ]
    )
    print(markdown)
    if args.write_doc:
        write_section(REPO_ROOT / "docs" / "results.md", CLASSIFY_SECTION, markdown)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    scores = commands.add_parser("scores", help="documents of joined dev sentences, read three ways")
    scores.add_argument("runs", nargs="+")
    scores.add_argument("--join", type=int, default=10)
    scores.add_argument("--strides", default="0.5", help="window strides as shares of a window, comma-separated")
    lengths = commands.add_parser("lengths", help="what maxlen cuts from a config's splits")
    lengths.add_argument("config")
    lengths.add_argument("--maxlen", type=int, default=64)
    lengths.add_argument("--set", action="append", default=[])
    cost = commands.add_parser("cost", help="time and memory of one long document")
    cost.add_argument("run")
    cost.add_argument("--characters", type=int, default=200_000)
    cost.add_argument("--long-texts", default="sentences", choices=("sentences", "windows"))
    classify = commands.add_parser("classify", help="a classification run's dev scores with each reading")
    classify.add_argument("run")
    for command in (scores, lengths, cost, classify):
        command.add_argument("--write-doc", action="store_true")
        command.add_argument("--note", default="nothing else was run meanwhile")
    args = parser.parse_args(argv)
    commands = {
        "scores": scores_command,
        "lengths": lengths_command,
        "cost": cost_command,
        "classify": classify_command,
    }
    commands[args.command](args)


if __name__ == "__main__":
    main()
