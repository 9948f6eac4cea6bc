"""The built-in demos' scores, kept in one place: `docs/demo_scores.json`.

The README, the examples' headers and `docs/benchmarks.md` state what the demos
score. Those numbers are written from the file, and the file from runs:

    python benchmarks/demo_scores.py --write     # run every demo, rewrite the file and the stated numbers
    python benchmarks/demo_scores.py             # run every demo, compare with the file (exit 1 if off)
    python benchmarks/demo_scores.py --only entities relations
    python benchmarks/demo_scores.py --check     # no runs: does every doc state what the file holds?

Every demo runs as a user starts it (`python -m toolkit demo ...`, the
bert4keras example as a script), one after the other in a process of its own,
in a temporary folder; about 8 minutes on 2 CPU cores. `--write` also runs the
quick settings `tests/test_examples.py` runs (1 epoch, a one-layer encoder) and
records their scores, which that test checks: a change that moves what the
demos score fails it there, and this script brings the numbers back in step.

The runs are seeded; two runs of a demo on one machine gave the same numbers
to the last digit. A run agrees with the file when each score is within
`tolerance` of it and each epoch or count is equal (timings are not compared).

Stated numbers: `stated` in the file lists, per doc, a piece of its text with
`{demo.key}` where a number stands; the number is written with as many
decimals as the doc gives it (`about {classification.test_micro_f1}` in the
README keeps its two). A run of whitespace matches any (lines rewrap).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCORES = REPO_ROOT / "docs" / "demo_scores.json"
NUMBER = r"\d+(?:\.\d+)?"
PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\.([a-z0-9_]+)\}")

# name: (command after `python`, the run folder it writes below the working folder, `--set` overrides)
DEMOS = {
    "classification": (["-m", "toolkit", "demo", "classification"], "runs/demo_classification", []),
    "relations": (["-m", "toolkit", "demo", "relations"], "runs/demo_relations", []),
    "relations_gplinker": (["-m", "toolkit", "demo", "relations"], "runs/demo_relations", ["model.method=gplinker"]),
    "entities": (["-m", "toolkit", "demo", "entities"], "runs/demo_entities", []),
    "bert4keras_interop": ([str(REPO_ROOT / "examples" / "bert4keras_interop.py"), "--output-dir", "out"], "out", []),
}
# The quick runs of tests/test_examples.py: name -> (example script, run folder, split, score)
QUICK = {
    "classification": ("multilabel_text_classification.py", "runs/demo_classification", "test", "micro_f1"),
    "relations": ("relation_extraction.py", "runs/demo_relations", "test", "f1"),
    "entities": ("entity_recognition.py", "runs/demo_entities", "test", "f1"),
}


def load(path=SCORES):
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------
# The stated numbers


def _pattern(text):
    """The regular expression of a `stated` text: its placeholders as numbers, its whitespace as any."""
    parts, position = [], 0
    for match in PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[position : match.start()]))
        parts.append(f"({NUMBER})")
        position = match.end()
    parts.append(re.escape(text[position:]))
    return re.compile(re.sub(r"(\\\s)+", r"\\s+", "".join(parts)))


def _decimals(number_text):
    return len(number_text.split(".")[1]) if "." in number_text else 0


def _formatted(value, decimals):
    return f"{value:.{decimals}f}" if decimals else str(round(value))


def stated_mismatches(scores, root=REPO_ROOT):
    """`path: "stated" -> "file"` for every stated number that is not the file's (rounded as stated),
    and `path: text not found` for a stated text a doc no longer has."""
    problems = []
    for item in scores["stated"]:
        path = Path(root) / item["file"]
        keys = PLACEHOLDER.findall(item["text"])
        matches = list(_pattern(item["text"]).finditer(path.read_text(encoding="utf-8")))
        if len(matches) != 1:
            found = "text not found" if not matches else f"text found {len(matches)} times (make it longer)"
            problems.append(f"{item['file']}: {found}: {item['text']!r}")
        for match in matches:
            for (demo, key), number in zip(keys, match.groups()):
                value = scores["demos"][demo]["scores"][key]
                expected = _formatted(value, _decimals(number))
                if number != expected:
                    problems.append(f"{item['file']}: {demo}.{key} is stated as {number}; {SCORES.name} has {value}")
    return problems


def rewrite_stated(scores, root=REPO_ROOT):
    """Write the file's numbers into every stated text (each keeps its decimals); returns the docs changed.

    Each stated text must stand in its doc once (`stated_mismatches` says where not): nothing is
    rewritten otherwise."""
    unplaced = [
        problem for problem in stated_mismatches(scores, root) if ": text found" in problem or ": text not" in problem
    ]
    if unplaced:
        raise ValueError("\n".join(unplaced))
    changed = set()
    for item in scores["stated"]:
        path = Path(root) / item["file"]
        keys = PLACEHOLDER.findall(item["text"])
        original = path.read_text(encoding="utf-8")

        def numbers_of(match, keys=keys):
            text, offset = match.group(0), match.start()
            for index in range(len(keys) - 1, -1, -1):  # from the right: the earlier offsets stay valid
                demo, key = keys[index]
                start, end = match.start(index + 1) - offset, match.end(index + 1) - offset
                value = scores["demos"][demo]["scores"][key]
                text = text[:start] + _formatted(value, _decimals(text[start:end])) + text[end:]
            return text

        updated = _pattern(item["text"]).sub(numbers_of, original)
        if updated != original:
            path.write_text(updated, encoding="utf-8")
            changed.add(item["file"])
    return sorted(changed)


# --------------------------------------------------------------------------
# Runs


def _environment():
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    environment.pop("KERAS_BACKEND", None)  # TensorFlow, the backend the numbers are stated for
    return environment


def _run(arguments, folder, environment):
    started = time.time()
    done = subprocess.run([sys.executable, *arguments], cwd=folder, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return round(time.time() - started, 1)


def _epochs_run(run):
    with open(run / "history.csv", newline="", encoding="utf-8") as file:
        return sum(1 for _ in csv.DictReader(file))


def _nested(entities):
    """The entities whose span lies inside another entity's (a different span)."""
    spans = {(entity["start"], entity["end"]) for entity in entities}
    return [
        entity
        for entity in entities
        if any(
            start <= entity["start"] and entity["end"] <= end and (start, end) != (entity["start"], entity["end"])
            for start, end in spans
        )
    ]


def _records(path):
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def example_scores(epochs):
    """The bert4keras example's scores from its `summary.json` `epochs` (each epoch's validation scores):
    epoch 4's micro F1, and the best epoch (the first with the highest micro F1, the one it keeps)."""
    best = max(range(len(epochs)), key=lambda index: (epochs[index]["micro_f1"], -index))
    return {
        "micro_f1_epoch_4": round(epochs[3]["micro_f1"], 4),
        "best_epoch": best + 1,
        "best_micro_f1": round(epochs[best]["micro_f1"], 4),
        "best_macro_f1": round(epochs[best]["macro_f1"], 4),
        "best_subset_accuracy": round(epochs[best]["subset_accuracy"], 4),
        "epochs_run": len(epochs),
    }


def measure(name, folder):
    """Run demo `name` in `folder`; returns its scores as the file keeps them."""
    arguments, run_name, overrides = DEMOS[name]
    arguments = arguments + [item for override in overrides for item in ("--set", override)]
    environment = _environment()
    if name == "bert4keras_interop":
        environment.update(TF_KERAS="1", TF_USE_LEGACY_KERAS="1")
    seconds = _run(arguments, folder, environment)
    run = Path(folder) / run_name
    if name == "bert4keras_interop":
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        return {**example_scores(summary["epochs"]), "run_seconds": seconds}
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    score = "micro_f1" if name == "classification" else "f1"
    scores = {f"dev_{score}": round(metrics["dev"][score], 4), f"test_{score}": round(metrics["test"][score], 4)}
    if name.startswith("relations"):
        scores.update(test_precision=round(metrics["test"]["precision"], 4))
        scores.update(test_recall=round(metrics["test"]["recall"], 4))
    scores.update(best_epoch=metrics["best_epoch"], epochs_run=_epochs_run(run))
    if name == "entities":
        train = _records(Path(folder) / f"{run_name}_data" / "train.jsonl")
        scores["train_nested"] = sum(len(_nested(record["entities"])) for record in train)
        nested = found = 0
        for record in _records(run / "predictions_test.jsonl"):
            predicted = {(entity["start"], entity["end"], entity["type"]) for entity in record["entities"]}
            for entity in _nested(record["entities_gold"]):
                nested += 1
                found += (entity["start"], entity["end"], entity["type"]) in predicted
        scores.update(test_nested=nested, test_nested_found=found)
    scores.update(train_seconds=metrics["train_seconds"], run_seconds=seconds)
    return scores


def quick_scores(name, run):
    """What `tests/test_examples.py` compares of its quick run of demo `name` (run folder `run`):
    the score, and the training loss of its one epoch (the score of so short a run can be 0)."""
    _, _, split, score = QUICK[name]
    metrics = json.loads((Path(run) / "metrics.json").read_text(encoding="utf-8"))
    with open(Path(run) / "history.csv", newline="", encoding="utf-8") as file:
        loss = float(list(csv.DictReader(file))[-1]["loss"])
    return {f"{split}_{score}": round(metrics[split][score], 4), "loss": round(loss, 4)}


def measure_quick(name, folder):
    """Run `tests/test_examples.py`'s quick run of demo `name` in `folder`; returns `quick_scores`."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.conftest import TINY_ENCODER, set_flags

    script, run_name, _, _ = QUICK[name]
    overrides = set_flags([*TINY_ENCODER, "training.epochs=1"])
    _run([str(REPO_ROOT / "examples" / script), *overrides], folder, _environment())
    return quick_scores(name, Path(folder) / run_name)


def differences(name, measured, recorded, tolerance):
    """`demo.key: measured x, recorded y` where a run and the file disagree (timings are not compared)."""
    found = []
    for key, value in measured.items():
        expected = recorded.get(key)
        if key.endswith("_seconds"):
            continue
        if expected is None:
            found.append(f"{name}.{key}: measured {value}, not in {SCORES.name}")
        elif isinstance(expected, float) and abs(value - expected) > tolerance:
            found.append(f"{name}.{key}: measured {value}, recorded {expected} (tolerance {tolerance})")
        elif isinstance(expected, int) and value != expected:
            found.append(f"{name}.{key}: measured {value}, recorded {expected}")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(DEMOS), help="these demos (default: all)")
    parser.add_argument("--write", action="store_true", help="record the runs and rewrite the stated numbers")
    parser.add_argument("--check", action="store_true", help="no runs: compare the docs with the file")
    args = parser.parse_args(argv)
    scores = load()
    if args.check:
        problems = stated_mismatches(scores)
        print("\n".join(problems) or f"every stated number is {SCORES.name}'s")
        return 1 if problems else 0
    problems = []
    for name in args.only or list(DEMOS):
        with tempfile.TemporaryDirectory(prefix=f"demo_{name}_") as folder:
            measured = measure(name, folder)
            quick = measure_quick(name, folder) if args.write and name in QUICK else None
        print(f"{name}: {json.dumps(measured)}" + (f"; quick {json.dumps(quick)}" if quick else ""), flush=True)
        entry = scores["demos"].setdefault(name, {})
        problems += differences(name, measured, entry.get("scores", {}), scores["tolerance"])
        if args.write:
            entry["scores"] = measured
            if quick:
                entry["quick"] = quick
    if args.write:
        from _docs import cpu_model  # benchmarks/ is on the path (run as a script)

        scores["measured_on"] = f"{cpu_model()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
        SCORES.write_text(json.dumps(scores, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {SCORES.relative_to(REPO_ROOT)}; docs rewritten: {rewrite_stated(scores) or 'none'}")
        return 0
    print("\n".join(problems) or f"every run agrees with {SCORES.name}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
