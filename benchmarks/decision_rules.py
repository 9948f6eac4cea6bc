"""What the predictor's decision rules do to a trained classifier's dev scores.

Loads a finished classification run (`python -m toolkit train ...`), computes its dev logits once
(`MultilabelPredictor.decision_function`), and scores each decision rule on them
(`predict_from_logits` of a predictor with that rule): threshold 0 alone, then `min_labels`
(a row with fewer labels above 0 gets its highest-scoring ones) and `max_labels` (a row keeps at
most its highest ones above 0). Reported: micro-F1, macro-F1, samples-F1, subset accuracy
(`toolkit.scores`, scikit-learn's definitions), and the share of rows left with no label.

    python benchmarks/optimizer_quality.py configs/goemotions.yaml --examples 12000 --keep runs/goemotions_12k
    python benchmarks/decision_rules.py runs/goemotions_12k/base --write-doc
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _docs import write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "results.md"
SECTION = "## Decision rules on a trained classifier"
RULES = ("0", "min_labels=1", "max_labels=3", "min_labels=1,max_labels=3", "min_labels=2")


def parse_rule(text):
    """`min_labels=1,max_labels=3` -> `{"min_labels": 1, "max_labels": 3}`; `0` -> `{}`."""
    if text == "0":
        return {}
    settings = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in ("min_labels", "max_labels") or not value.isdigit():
            raise SystemExit(f"--rules: {item!r} is not min_labels=N or max_labels=N.")
        settings[key] = int(value)
    return settings


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished classification run folder")
    parser.add_argument("--rules", default=";".join(RULES), help="';'-separated rules, e.g. '0;min_labels=1'")
    parser.add_argument("--trained-with", help="the command that trained the run, for the doc")
    parser.add_argument("--write-doc", action="store_true", help=f"replace {SECTION} in {DOC}")
    args = parser.parse_args(argv)
    args.rules = [rule.strip() for rule in args.rules.split(";") if rule.strip()]
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO_ROOT))
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from toolkit.pipeline import Pipeline
    from toolkit.runs import RunFolder

    pipeline = Pipeline.from_run(args.run, log=lambda message: None)
    data = pipeline.read_data()
    predictor = pipeline.load_predictor(RunFolder(args.run))
    dev = data.dev
    names = list(predictor.label_names)
    truth = np.zeros((len(dev.texts), len(names)), dtype=np.int8)
    for row, labels in enumerate(dev.labels):
        truth[row, [names.index(label) for label in labels]] = 1
    logits = predictor.decision_function(list(dev.texts))
    rows = []
    for rule in args.rules:
        ruled = pipeline.load_predictor(RunFolder(args.run), **parse_rule(rule))
        decided = ruled.predict_from_logits(logits)
        rows.append(
            {
                "rule": rule,
                "micro": f1_score(truth, decided, average="micro", zero_division=0),
                "macro": f1_score(truth, decided, average="macro", zero_division=0),
                "samples": f1_score(truth, decided, average="samples", zero_division=0),
                "subset": accuracy_score(truth, decided),
                "empty": float((decided.sum(axis=1) == 0).mean()),
                "labels": float(decided.sum(axis=1).mean()),
            }
        )
    metrics = pipeline.run_folder.read_json("metrics.json") or {}
    config = pipeline.config
    lines = [
        SECTION,
        "",
        f"The run in `{args.run.as_posix()}` ("
        + (f"trained by `{args.trained_with}`, " if args.trained_with else f"`{config.source}`, ")
        + f"{config.training.epochs} epoch(s) at batch "
        f"{config.training.batch_size}, best epoch {metrics.get('best_epoch', '?')}, "
        f"{metrics.get('train_seconds') or 0:.0f} s of training), scored on its dev split ({len(dev.texts):,} rows, "
        f"{truth.sum(axis=1).mean():.2f} gold labels a row, {(truth.sum(axis=1) == 0).mean():.1%} with none) "
        "under each decision rule of `MultilabelPredictor` (`predict.min_labels` / `predict.max_labels` "
        "in the config, `--min-labels` / `--max-labels` on `predict`). The logits are computed once; "
        "only the rule changes.",
        "",
        "| rule | micro-F1 | macro-F1 | samples-F1 | subset accuracy | rows with no label | labels a row |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rule = "logit > 0" if row["rule"] == "0" else f"logit > 0, {row['rule'].replace(',', ', ')}"
        lines.append(
            f"| {rule} | {row['micro']:.4f} | {row['macro']:.4f} | {row['samples']:.4f} | {row['subset']:.4f} "
            f"| {row['empty']:.1%} | {row['labels']:.2f} |"
        )
    trained = f' --trained-with "{args.trained_with}"' if args.trained_with else ""
    lines += ["", f"Command: `python benchmarks/decision_rules.py {args.run.as_posix()}{trained} --write-doc`", ""]
    text = "\n".join(lines)
    print(text)
    if args.write_doc:
        generated = "<!-- generated by benchmarks/quality_report.py -->"
        page = DOC.read_text(encoding="utf-8")
        if f"\n{SECTION}\n" not in page and generated in page:  # a new section goes before the generated part
            DOC.write_text(page.replace(generated, f"{SECTION}\n\n{generated}", 1), encoding="utf-8")
        write_section(DOC, SECTION, text)


if __name__ == "__main__":
    main()
