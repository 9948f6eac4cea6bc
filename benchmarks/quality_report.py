"""Write docs/results.md from the run folders of `benchmarks/quality_runs.sh`.

    python benchmarks/quality_report.py [--runs runs/quality] [--doc docs/results.md]

Every number comes from a run folder: its `metrics.json` and `history.csv`,
written by the training run, and, for the classification runs, the dev-split
logits of its saved best model, computed again here so that the same model can
be scored at several decision thresholds:

- threshold 0 on the logits: the rule of this loss (and sigmoid 0.5 for BCE);
- tuned on dev: the one threshold (over all labels, searched every 0.01 from
  -4 to 4) that maximises the data set's own metric on the whole dev split, then scored on that same split. It
  is what `train` does for the BCE baseline, and it flatters the baseline,
  since the threshold has seen the answers;
- cross-tuned: dev is cut in two halves (seeded); the threshold tuned on
  each half scores the other; the two halves' decisions are pooled. This is
  the honest estimate of what a tuned threshold gives on unseen data.

Each run's resolved config, metrics and plots are copied into
docs/results/<run>/ next to the page.
"""

import argparse
import csv
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
from _docs import cpu_model  # benchmarks/ is on the path (run as a script)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSIFICATION = {
    # data set: (zlpr run, bce run, metric the data set is compared on)
    "Reuters-21578 R90": ("reuters_zlpr", "reuters_bce", "micro_f1"),
    "GoEmotions": ("goemotions_zlpr", "goemotions_bce", "macro_f1"),
}
TARGETS = {"reuters_zlpr": ("micro_f1", 0.89), "goemotions_zlpr": ("macro_f1", 0.46), "webnlg_star": ("f1", 0.90)}
RELATIONS = {
    "webnlg_star": "WebNLG* (partial match), val",
    "webnlg": "WebNLG (exact match), val",
    "lic2019_sample_random": "LIC2019 sample, dev (random Chinese encoder)",
}
PLOTS = ("learning_curves.png", "f1_vs_threshold.png")


def read_history(folder):
    path = folder / "history.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_facts(folder):
    """What the run was: epochs run, best epoch, time, budget from its config."""
    import yaml

    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return config, metrics, read_history(folder)


def partial_row(folder, metric="val_micro_f1"):
    """For a run stopped before the end: (epochs done, best history row, config), or None."""
    import yaml

    history = read_history(folder)
    if not history or not (folder / "config.yaml").exists():
        return None
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    best = max(history, key=lambda row: float(row[metric]))
    return len(history), best, config


def describe_encoder(config):
    encoder = config["model"]["encoder"]
    if encoder.get("source") == "huggingface":
        return "all-MiniLM-L6-v2 (pretrained)"
    return f"random BERT ({encoder.get('num_layers')} layers, hidden {encoder.get('hidden_dim')})"


def dev_logits(folder):
    """Dev targets and logits of the run's best model (the split the run used)."""
    from toolkit.atomic import replace_file
    from toolkit.data import to_multi_hot
    from toolkit.pipeline import Pipeline

    cached = folder / "dev_logits.npz"
    if cached.exists() and cached.stat().st_mtime > (folder / "metrics.json").stat().st_mtime:
        with np.load(cached) as saved:
            return saved["targets"], saved["logits"]
    pipeline = Pipeline.from_run(folder, log=lambda message: None)
    data = pipeline.read_data()
    predictor = pipeline.load_predictor()
    logits = np.asarray(predictor.decision_function(data.dev.texts), dtype=np.float64)
    targets = to_multi_hot(data.dev.labels, predictor.label_names, dtype="int8")
    replace_file(cached, lambda temporary: np.savez(temporary, targets=targets, logits=logits))
    return targets, logits


# Candidate thresholds: every 0.01 from -4 to 4 on the logit scale.
THRESHOLDS = np.round(np.linspace(-4.0, 4.0, 801), 2)


def threshold_scores(targets, logits, metric, seed=0):
    """Scores at threshold 0, tuned on dev, and cross-tuned over two halves of dev."""
    from toolkit import scores as scoring

    def scores(decisions):
        result = scoring.multilabel_scores(targets, decisions)
        return {"micro_f1": result["micro_f1"], "macro_f1": result["macro_f1"]}

    tuned = scoring.best_threshold(targets, logits, metric=metric, thresholds=THRESHOLDS)
    order = np.random.default_rng(seed).permutation(len(targets))
    halves = np.array_split(order, 2)
    crossed = np.zeros_like(targets)
    half_thresholds = []
    for tune_rows, score_rows in (halves, halves[::-1]):
        threshold = scoring.best_threshold(targets[tune_rows], logits[tune_rows], metric=metric, thresholds=THRESHOLDS)
        half_thresholds.append(threshold)
        crossed[score_rows] = logits[score_rows] > threshold
    return {
        "zero": scores((logits > 0).astype("int8")),
        "tuned": dict(scores((logits > tuned).astype("int8")), threshold=tuned),
        "cross": dict(scores(crossed), thresholds=half_thresholds),
    }


def copy_artifacts(folder, target):
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "metrics.json", "history.csv"):
        if (folder / name).exists():
            shutil.copy2(folder / name, target / name)
    for name in PLOTS:
        if (folder / "plots" / name).exists():
            shutil.copy2(folder / "plots" / name, target / name)


def budget(config, history, metrics):
    training = config["training"]
    minutes = metrics.get("train_seconds", 0) / 60
    return (
        f"{len(history)} of {training['epochs']} epochs, batch {training['batch_size']}, "
        f"maxlen {config['model']['maxlen']}, {minutes:.0f} min"
    )


def machine_line():
    import keras
    import tensorflow as tf

    return (
        f"`nproc` = {len(os.sched_getaffinity(0))}, {cpu_model()}, no GPU (a shared machine: other jobs ran "
        f"alongside); Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "quality"))
    parser.add_argument("--doc", default=str(ROOT / "docs" / "results.md"))
    args = parser.parse_args(argv)
    runs, doc = Path(args.runs), Path(args.doc)
    assets = doc.parent / "results"
    lines = []
    missing = []

    lines.append("## Multi-label classification: this loss against sigmoid BCE\n")
    lines.append(
        "Pretrained all-MiniLM-L6-v2, mean pooling, the same config and budget for both losses "
        "(only `loss.name` differs). Scores on dev: Reuters has no dev split and its test split "
        "is kept back, so dev is 10% of train held out with seed 42; GoEmotions dev is its own "
        "dev file. BCE's threshold, tuned on the whole dev split, is scored on that same split "
        "(flattering it); cross-tuned tunes on one half of dev and scores the other, both ways.\n"
    )
    lines.append("| data set | loss | decision rule | threshold (logit) | micro-F1 | macro-F1 | budget |")
    lines.append("|---|---|---|---:|---:|---:|---|")
    for name, (zlpr, bce, metric) in CLASSIFICATION.items():
        for run_name, loss in ((zlpr, "this loss"), (bce, "sigmoid BCE")):
            folder = runs / run_name
            if not (folder / "metrics.json").exists():
                partial = partial_row(folder)
                if partial is None:
                    missing.append(run_name)
                    continue
                epochs, row, config = partial
                lines.append(
                    f"| {name} | {loss} | 0, from history.csv (stopped before the end) | 0 | "
                    f"{float(row['val_micro_f1']):.4f} | {float(row['val_macro_f1']):.4f} | "
                    f"{epochs} of {config['training']['epochs']} epochs, not finished |"
                )
                continue
            config, metrics, history = run_facts(folder)
            targets, logits = dev_logits(folder)
            scored = threshold_scores(targets, logits, metric)
            facts = budget(config, history, metrics)
            rules = [
                ("0 (sigmoid 0.5)" if loss == "sigmoid BCE" else "0 (no tuning)", "0", scored["zero"]),
                (f"tuned on dev for {metric}", f"{scored['tuned']['threshold']:.2f}", scored["tuned"]),
                (
                    "cross-tuned on dev halves",
                    ", ".join(f"{t:.2f}" for t in scored["cross"]["thresholds"]),
                    scored["cross"],
                ),
            ]
            for rule, threshold, values in rules:
                lines.append(
                    f"| {name} | {loss} | {rule} | {threshold} | {values['micro_f1']:.4f} | "
                    f"{values['macro_f1']:.4f} | {facts} |"
                )
            (assets / run_name).mkdir(parents=True, exist_ok=True)
            (assets / run_name / "threshold_scores.json").write_text(json.dumps(scored, indent=2) + "\n")
            copy_artifacts(folder, assets / run_name)
    lines.append("")

    lines.append("## Relation extraction: triple F1\n")
    lines.append(
        "Semi-pointer semi-tagging model trained with this loss over sequence positions; a triple "
        "counts when subject, predicate and object all match (WebNLG*: the last word of each "
        "entity, as CasRel's data gives it; WebNLG: whole names).\n"
    )
    lines.append("| data | encoder | precision | recall | F1 | best epoch | budget |")
    lines.append("|---|---|---:|---:|---:|---:|---|")
    for run_name, title in RELATIONS.items():
        folder = runs / run_name
        if not (folder / "metrics.json").exists():
            partial = partial_row(folder, "val_micro_f1")
            if partial is None:
                missing.append(run_name)
                continue
            epochs, row, config = partial
            lines.append(
                f"| {title} | {describe_encoder(config)} | {float(row['val_precision']):.4f} | "
                f"{float(row['val_recall']):.4f} | {float(row['val_micro_f1']):.4f} | {int(row['epoch']) + 1} | "
                f"{epochs} of {config['training']['epochs']} epochs, not finished (from history.csv) |"
            )
            copy_artifacts(folder, assets / run_name)
            continue
        config, metrics, history = run_facts(folder)
        dev = metrics["dev"]
        lines.append(
            f"| {title} | {describe_encoder(config)} | {dev['precision']:.4f} | {dev['recall']:.4f} | {dev['f1']:.4f} | "
            f"{metrics.get('best_epoch', '')} | {budget(config, history, metrics)} |"
        )
        copy_artifacts(folder, assets / run_name)
    lines.append("")

    lines.append("## Targets\n")
    lines.append("| run | metric | target | measured |")
    lines.append("|---|---|---:|---:|")
    for run_name, (metric, target) in TARGETS.items():
        folder = runs / run_name
        if (folder / "metrics.json").exists():
            value = json.loads((folder / "metrics.json").read_text())["dev"][metric]
            note = ""
        else:
            partial = partial_row(folder, f"val_{'micro_f1' if metric == 'f1' else metric}")
            if partial is None:
                lines.append(f"| {run_name} | dev {metric} | >= {target} | not run |")
                continue
            value = float(partial[1][f"val_{'micro_f1' if metric == 'f1' else metric}"])
            note = f", run stopped after {partial[0]} epochs"
        verdict = "met" if value >= target else "missed"
        lines.append(f"| {run_name} | dev {metric} | >= {target} | {value:.4f} ({verdict}{note}) |")
    lines.append("")
    lines.append(f"Machine: {machine_line()}\n")
    if missing:
        lines.append(f"Not run yet (no metrics.json): {', '.join(missing)}.\n")

    marker = "<!-- generated by benchmarks/quality_report.py -->"
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"# Results on real data\n\n{marker}\n"
    head = text.split(marker)[0]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + marker + "\n\n" + "\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
