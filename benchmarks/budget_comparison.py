"""The same minutes for each: a shipped relation config against the bert4keras script, dev F1 reached.

For each config (by default `configs/webnlg_star.yaml` and `configs/webnlg.yaml`; also
`configs/lic2019_sample_m3e.yaml`, Chinese on m3e-small), two training runs, one after the other:

- **toolkit**: `python -m toolkit train CONFIG --set training.max_minutes=M` (`--minutes`), the config
  as shipped (the MiniLM configs: batch 32, learning rate 1e-4 with 5% warm-up and linear decay over
  their 30 epochs, weight decay 0.01, gradients clipped to norm 1, the warmed-up weight average at
  0.999). Training stops at the first epoch end past the budget, or at its early stop; every epoch is
  scored on dev (`history.csv`).
- **bert4keras**: the semi-pointer semi-tagging script of bert4keras's
  `examples/task_relation_extraction.py` (`_bert4keras_relations.py`, also what
  `training_benchmark.py` times) with the same pretrained encoder (the config's weights, loaded by
  `build_transformer_model` under Google's names), data (the training and dev sentences as the
  toolkit reads them), batch size, maxlen, learning-rate schedule, weight decay, clipping and
  weight average (bert4keras's own AdamEMA, 0.999, bias-corrected, with no warm-up). As its
  example does, every epoch ends with `apply_ema_weights()`, its `extract_spoes` on each dev
  sentence (one at a time), and `reset_old_weights()`. Its budget is the minutes the toolkit's
  clock stood at when the toolkit stopped, so it never trains for less time; the same rule: training
  stops at the first epoch end past it. The raw (not averaged) weights are also scored at each epoch
  end, off the clock.

Both sides' dev predictions are scored by the toolkit's scorer (`triple_scores`, exact
subject, predicate and object strings), so the figures compare. The budget clock starts when
training starts (the model is built and the weights loaded) and includes each epoch's dev scoring.
Each run is a process of its own; nothing else should run on the machine meanwhile.

    python benchmarks/budget_comparison.py --minutes 8 --write-doc             # ~45 min on 2 cores
    python benchmarks/budget_comparison.py --minutes 30 --configs configs/lic2019_sample_m3e.yaml --write-doc
    python benchmarks/budget_comparison.py --minutes 1 --limit 300 --configs configs/webnlg_star.yaml  # smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _docs import machine_line, minilm_dir, train_cli, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "results.md"
SECTION = "## The same minutes for each: the shipped relation configs against a bert4keras script"
CONFIGS = "configs/webnlg_star.yaml,configs/webnlg.yaml"
NAMES = {"webnlg_star": "WebNLG*", "webnlg": "WebNLG (exact names)", "lic2019_sample_m3e": "LIC2019 sample, m3e-small"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=CONFIGS, help="comma-separated relation configs (semi-pointer method)")
    parser.add_argument("--minutes", type=float, default=8.0, help="the wall-clock training budget of every run")
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N sentences a split (smoke runs)")
    parser.add_argument("--write-doc", action="store_true", help=f"replace the section in {DOC}")
    parser.add_argument("--json", type=Path, help="also write every epoch's scores to this file")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        raise SystemExit(f"--minutes must be above 0; got {args.minutes:g}.")
    args.configs = [Path(name.strip()) for name in args.configs.split(",") if name.strip()]
    missing = [str(path) for path in args.configs if not (REPO_ROOT / path).is_file()]
    if missing:
        raise SystemExit(f"--configs: no such file: {', '.join(missing)}")
    return args


# --- The toolkit side: the CLI, in a process of its own --------------------------------------------


def overrides(args) -> list:
    return [f"data.max_examples={args.limit}"] if args.limit else []


def run_toolkit(args, config: Path, output: Path) -> dict:
    settings = [f"training.max_minutes={args.minutes:g}", f"output.dir={output}", "output.overwrite=true"]
    train_cli(config, settings + overrides(args), what="toolkit training")
    with open(output / "history.csv", newline="", encoding="utf-8") as handle:
        history = list(csv.DictReader(handle))
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    stopped = metrics.get("budget_stopped")
    return {
        "f1": [float(row["val_micro_f1"]) for row in history],
        # The clock when the budget rule stopped training (as the bert4keras side reports it); after
        # that come the best model's restoring and the closing of the run.
        "seconds": stopped["minutes"] * 60 if stopped else metrics["train_seconds"],
        "best_epoch": metrics["best_epoch"],
        "budget_stopped": metrics.get("budget_stopped"),
    }


# --- The bert4keras side: a worker process with tf-keras --------------------------------------------


def prepare_job(args, config: Path, folder: Path) -> None:
    """The config's data as the toolkit reads it, and its settings, in the file the worker reads."""
    from toolkit.config import load_config
    from toolkit.relations.evaluation import relation_key
    from toolkit.tasks import pipeline_class

    loaded = load_config(REPO_ROOT / config, overrides=overrides(args))
    data = pipeline_class(loaded.task)(loaded, log=lambda message: None).read_data()
    training = loaded.training
    train = [
        {"text": text, "spo_list": [list(triple) for triple in triples]}
        for text, triples in zip(data.train.texts, data.train.triples)
    ]
    job = {
        "encoder": str(loaded.model.encoder.path),
        "predicates": list(data.predicates),
        "train": train,
        "dev": list(data.dev.texts),
        "maxlen": loaded.model.maxlen,
        "batch_size": training.batch_size,
        "epochs": training.epochs,
        "learning_rate": training.learning_rate,
        "warmup_ratio": training.warmup_ratio,
        "weight_decay": training.weight_decay,
        "clipnorm": 1.0,
        "ema": training.ema,
        "seed": training.seed,
        "minutes": args.minutes,
    }
    if data.dev.scoring != "text":
        raise SystemExit(f"{config}: the comparison scores strings; this data set is scored by {data.dev.scoring!r}.")
    job["gold"] = [[relation_key(record) for record in sentence] for sentence in data.dev.gold]
    (folder / "job.json").write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
    return settings_text(loaded)


def settings_text(config) -> str:
    """What the toolkit side trains with, in words, from the loaded config."""
    training, encoder = config.training, config.model.encoder
    stop = (
        f", early stopping after {training.early_stopping_patience} epochs without a better dev F1"
        if training.early_stopping_patience
        else ""
    )
    average = f", the warmed-up weight average at {training.ema:g}" if training.ema else ""
    return (
        f"{Path(str(encoder.path)).name}, batch {training.batch_size}, learning rate {training.learning_rate:g}, "
        f"{training.warmup_ratio:.0%} warm-up and {training.decay} decay over {training.epochs} epochs, weight "
        f"decay {training.weight_decay:g}, clipping at norm 1{average}{stop}"
    )


def set_minutes(folder: Path, minutes: float) -> None:
    """The bert4keras job's budget: `minutes` (the toolkit's clock when it stopped)."""
    job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    job["minutes"] = minutes
    (folder / "job.json").write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")


def run_bert4keras(folder: Path) -> list:
    """The worker's epochs: `[{"epoch", "seconds", "scores": {"ema"?, "raw"}}]`."""
    command = [sys.executable, __file__, "--worker", str(folder)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_KERAS="1", TF_USE_LEGACY_KERAS="1")
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    environment.pop("KERAS_BACKEND", None)
    print(f"  bert4keras worker in {folder}", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"bert4keras training failed (exit {done.returncode})")
    with open(folder / "epochs.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def run_worker(folder: Path) -> None:
    """Train the bert4keras script on the job in `folder` until the budget, scoring dev every epoch."""
    sys.path.insert(0, str(REPO_ROOT))
    from toolkit.compat import bert4keras as zlpr

    zlpr.prepare_environment()
    import numpy as np
    import tensorflow as tf
    from _bert4keras_relations import adamw, google_weights, relation_script
    from bert4keras.backend import keras
    from bert4keras.tokenizers import Tokenizer

    job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    np.random.seed(job["seed"])
    tf.random.set_seed(job["seed"])
    encoder = Path(job["encoder"]).expanduser()
    bert_config = json.loads((encoder / "config.json").read_text(encoding="utf-8"))
    config_path = folder / "bert_config.json"
    config_path.write_text(json.dumps(bert_config), encoding="utf-8")
    tokenizer = Tokenizer(str(encoder / "vocab.txt"), do_lower_case=True)
    script = relation_script(
        tokenizer, job["predicates"], job["maxlen"], str(config_path), checkpoint=google_weights(encoder)
    )
    data = script.placeable([{"text": d["text"], "spo_list": [tuple(t) for t in d["spo_list"]]} for d in job["train"]])
    generator = script.data_generator(data, job["batch_size"])
    steps = len(generator)
    total = steps * job["epochs"]
    warmup = int(job["warmup_ratio"] * total)
    schedule = {warmup: 1, total: 0} if warmup else {0: 1, total: 0}
    optimizer = adamw(
        job["learning_rate"], schedule, weight_decay=job["weight_decay"], clipnorm=job["clipnorm"], ema=job["ema"]
    )
    script.train_model.compile(optimizer=optimizer)
    budget = job["minutes"] * 60

    class Evaluator(keras.callbacks.Callback):
        """The example's evaluator: at each epoch end, the averaged weights in, dev decoded, taken out."""

        def on_train_begin(self, logs=None):
            self.start, self.off_clock = time.monotonic(), 0.0

        def on_epoch_end(self, epoch, logs=None):
            scores = {}
            if job["ema"]:
                optimizer.apply_ema_weights()
                scores["ema"] = score([script.extract(text) for text in job["dev"]], job["gold"])
                optimizer.reset_old_weights()
            started = time.monotonic()
            scores["raw"] = score([script.extract(text) for text in job["dev"]], job["gold"])
            if job["ema"]:
                self.off_clock += time.monotonic() - started  # the example scores only the average
            seconds = time.monotonic() - self.start - self.off_clock
            out.write(json.dumps({"epoch": epoch + 1, "seconds": seconds, "scores": scores}) + "\n")
            out.flush()
            print(f"epoch {epoch + 1}: {seconds / 60:.1f} min", file=sys.stderr, flush=True)
            if seconds >= budget:
                self.model.stop_training = True

    with open(folder / "epochs.jsonl", "w", encoding="utf-8") as out:  # the evaluator's lines, one an epoch
        script.train_model.fit(
            generator.forfit(), steps_per_epoch=steps, epochs=job["epochs"], callbacks=[Evaluator()], verbose=0
        )


# --- Scoring and the report ---------------------------------------------------------------------------


def score(predictions, gold) -> dict:
    """The toolkit's micro scores of `(subject, predicate, object)` string triples (`triple_scores`:
    each sentence's triples a set), as it scores its own dev predictions of these data sets."""
    from toolkit.relations.evaluation import triple_scores

    return triple_scores(predictions, [[tuple(triple) for triple in sentence] for sentence in gold])


def best(curve) -> tuple:
    index = max(range(len(curve)), key=lambda i: (curve[i], -i))
    return curve[index], index + 1


def section_title(args) -> str:
    """The default configs' section, or one named by the configs given."""
    if ",".join(map(str, args.configs)) == CONFIGS:
        return SECTION
    names = " and ".join(NAMES.get(config.stem, config.stem) for config in args.configs)
    return f"## The same minutes for each: {names} against a bert4keras script"


def section(args, results: dict, load_start: float, load_end: float) -> str:
    settings = "; ".join(
        f"{NAMES.get(name, name)}: {result['settings']}" for name, result in results.items() if "settings" in result
    )
    lines = [
        section_title(args),
        "",
        f"Each shipped config trained with a budget of {args.minutes:g} minutes of wall clock, then the bert4keras "
        "script for as many minutes as the toolkit's clock stood at when it stopped (its budget, or its early "
        "stop), one run after the other, each scored on dev (val) after every epoch by the same scorer (exact "
        "subject, predicate and object strings)"
        + (f"; a seeded sample of {args.limit} sentences a split" if args.limit else "")
        + ". The toolkit side is `python -m toolkit train CONFIG --set "
        f"training.max_minutes={args.minutes:g}`, the config as shipped ("
        + (settings or "its settings")
        + "; the weight average scored each epoch beside the training weights and the better kept: "
        "`training.ema_compare`, on by default). The bert4keras side is the semi-pointer semi-tagging "
        "script of bert4keras's `examples/task_relation_extraction.py` (`benchmarks/_bert4keras_relations.py`; "
        "heads with logits for this loss, a start or end where its logit is > 0) with the same encoder weights, "
        "data, batch size, maxlen and optimizer settings, and bert4keras's own weight average (AdamEMA at 0.999, "
        "bias-corrected, no warm-up), which its example scores at each epoch end, one dev sentence at a time. "
        "Both stop at the first epoch end past the budget; the clock includes each epoch's dev scoring, and "
        '"minutes" is where it stood when training stopped. The bert4keras run\'s raw weights were also scored, '
        "off the clock.",
        "",
        "| data | run | epochs in the budget | minutes | dev F1 per epoch | best dev F1 (epoch) |",
        "|---|---|---:|---:|---|---:|",
    ]
    for name, result in results.items():
        label = NAMES.get(name, name)
        toolkit = result["toolkit"]
        rows = [
            (
                "toolkit, the shipped config (its average or training weights, the better)",
                toolkit["f1"],
                toolkit["seconds"],
            )
        ]
        bert4keras = result["bert4keras"]
        seconds = bert4keras["seconds"]
        if "ema" in bert4keras["f1"]:
            rows.append(
                ("bert4keras script, its AdamEMA average (as its example scores)", bert4keras["f1"]["ema"], seconds)
            )
            rows.append(("bert4keras script, the same run's raw weights", bert4keras["f1"]["raw"], seconds))
        else:
            rows.append(("bert4keras script", bert4keras["f1"]["raw"], seconds))
        for run, curve, run_seconds in rows:
            top, epoch = best(curve)
            per_epoch = ", ".join(f"{value:.3f}" for value in curve)
            lines.append(
                f"| {label} | {run} | {len(curve)} | {run_seconds / 60:.1f} | {per_epoch} | {top:.3f} ({epoch}) |"
            )
    lines += [
        "",
        f"Command: `python benchmarks/budget_comparison.py --minutes {args.minutes:g}"
        + (f" --limit {args.limit}" if args.limit else "")
        + ("" if ",".join(map(str, args.configs)) == CONFIGS else f" --configs {','.join(map(str, args.configs))}")
        + " --write-doc`",
        "",
        machine_line(load_start, load_end, "the runs one at a time, nothing else run meanwhile") + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(args.worker)
        return
    os.environ["MINILM_DIR"] = minilm_dir()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.path.insert(0, str(REPO_ROOT))
    load_start = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="budget_") as scratch:
        for config in args.configs:
            name = config.stem
            folder = Path(scratch) / name
            (folder / "bert4keras").mkdir(parents=True)
            settings = prepare_job(args, config, folder / "bert4keras")
            toolkit = run_toolkit(args, config, folder / "toolkit")
            print(f"{name} toolkit: dev F1 per epoch {toolkit['f1']}", file=sys.stderr, flush=True)
            # The script gets as many minutes as the toolkit's clock stood at when it stopped (its budget,
            # or its early stop), never fewer than the toolkit trained.
            set_minutes(folder / "bert4keras", toolkit["seconds"] / 60)
            epochs = run_bert4keras(folder / "bert4keras")
            curves = {kind: [epoch["scores"][kind]["f1"] for epoch in epochs] for kind in epochs[0]["scores"]}
            print(f"{name} bert4keras: dev F1 per epoch {curves}", file=sys.stderr, flush=True)
            results[name] = {
                "settings": settings,
                "toolkit": toolkit,
                "bert4keras": {"f1": curves, "seconds": epochs[-1]["seconds"]},
            }
    markdown = section(args, results, load_start, os.getloadavg()[0])
    print(markdown)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.write_doc:
        title = section_title(args)
        write_section(DOC, title, markdown)
        print(f"wrote {title} in {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
