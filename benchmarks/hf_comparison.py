"""Against what most users pick instead: the shipped classification configs against Hugging Face transformers.

The same encoder folder (all-MiniLM-L6-v2), the same data as the toolkit reads it, the same `maxlen`, batch
size, learning-rate schedule, weight decay, epochs and seed, for `configs/goemotions.yaml` and
`configs/reuters.yaml` (`--configs`). The toolkit side is `python -m toolkit train CONFIG --set ...`, the
config as shipped; the transformers side is `benchmarks/hf_reference.py` (`Trainer` with
`AutoModelForSequenceClassification`, `problem_type="multi_label_classification"`: sigmoid BCE, a label
above probability 0.5; dynamic padding, `train_sampling_strategy="group_by_length"`, torch threads = the
cores). Every run is a process of its own, one at a time, so that memory and threads never mix.

- `speed`: training samples per second, the sides taking turns (`--rounds`, the order rotating each
  round), the toolkit on each Keras backend of `--backends`. Each run trains `--warmup-epochs` untimed
  epochs (tracing, compiling, first calls) and `--timed-epochs` timed ones on the first `--max-examples`
  training examples (a seeded sample, `data.max_examples`); an epoch's time is its training steps alone,
  from its first step's start to its last step's end, input included (the toolkit's
  `epoch_train_seconds` in metrics.json; on transformers' side a TrainerCallback), with dev scoring,
  checkpoints and start-up outside. Section in docs/benchmarks.md.
- `budget`: dev micro- and macro-F1 at the same wall-clock budget: the toolkit's config at threshold 0
  with `training.max_minutes` (`--minutes`; it stops at the first epoch end past them, after that epoch's
  dev scoring), then transformers for as many minutes as the toolkit's clock stood at, stopping at the first
  training step past them (its epochs can be much longer than the toolkit's), scored at 0.5, at a threshold
  tuned on dev for the config's measure and cross-tuned (docs/results.md's rules). Both clocks start when
  training starts. Section in docs/results.md.
- `inference`: texts per second of the toolkit's batched `MultilabelPredictor.predict` (on each Keras
  backend of `--backends`) against `pipeline("text-classification", top_k=None)` at each
  `--hf-batch-sizes`, on the first `--texts` dev
  texts, the same architecture (the encoder with an untrained head: speed does not depend on the weights),
  both cutting at the config's maxlen; the sides' workers take turns. Section in docs/benchmarks.md.

    pip install -r benchmarks/requirements-hf.txt
    python benchmarks/hf_comparison.py speed --write-doc                 # about 1.5 hours on 2 idle cores
    python benchmarks/hf_comparison.py budget --minutes 8 --write-doc   # about 45 minutes (docs/results.md's run)
    python benchmarks/hf_comparison.py inference --backends tensorflow --write-doc   # about 5 minutes
    python benchmarks/hf_comparison.py speed --max-examples 64 --rounds 1            # smoke runs: minutes each
    python benchmarks/hf_comparison.py budget --max-examples 64 --minutes 0.3
    python benchmarks/hf_comparison.py inference --max-examples 64 --texts 32 --rounds 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _docs import machine_line, minilm_dir, train_cli, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).resolve().parent / "hf_reference.py"
BENCHMARKS_DOC = REPO_ROOT / "docs" / "benchmarks.md"
RESULTS_DOC = REPO_ROOT / "docs" / "results.md"
SPEED_SECTION = "## Training speed against Hugging Face transformers"
INFERENCE_SECTION = "## Inference speed against Hugging Face transformers"
BUDGET_SECTION = "## The same minutes for each: the shipped classification configs against Hugging Face transformers"
CONFIGS = "configs/goemotions.yaml,configs/reuters.yaml"
BACKENDS = ("tensorflow", "jax", "torch")
NAMES = {"goemotions": "GoEmotions", "reuters": "Reuters-21578 R90"}
HF = "transformers"
MARKER = "HF_COMPARISON "  # a line the toolkit's inference worker prints for its parent
HF_MARKER = "HF_REFERENCE "  # hf_reference.py's


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{speed,budget,inference}")

    def common(command, max_examples=None, what="every split"):
        command.add_argument("--configs", default=CONFIGS, help="comma-separated multilabel_classification configs")
        command.add_argument(
            "--max-examples", type=int, default=max_examples,
            help=f"data.max_examples on both sides: a seeded sample of N examples of {what} (smoke runs cap it)",
        )  # fmt: skip
        command.add_argument("--write-doc", action="store_true", help="replace this measurement's section of the doc")
        command.add_argument("--json", type=Path, help="also write every measurement to this file")

    speed = commands.add_parser("speed", help=f"training samples/s; section in {BENCHMARKS_DOC.name}")
    common(speed, 1024)
    speed.add_argument("--rounds", type=int, default=3, help="runs a side, taking turns")
    speed.add_argument("--backends", default=",".join(BACKENDS), help="the toolkit's Keras backends to time")
    speed.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs a run first")
    speed.add_argument("--timed-epochs", type=int, default=1, help="timed epochs a run")
    budget = commands.add_parser("budget", help=f"dev F1 at the same minutes; section in {RESULTS_DOC.name}")
    common(budget)
    budget.add_argument(
        "--minutes", type=float, default=20.0,
        help="the toolkit's training.max_minutes; transformers then gets the minutes the toolkit's clock stood at",
    )  # fmt: skip
    inference = commands.add_parser("inference", help=f"prediction texts/s; section in {BENCHMARKS_DOC.name}")
    common(inference, what="the splits read (the texts timed are dev's)")
    inference.add_argument("--texts", type=int, default=512, help="the first N dev texts, timed")
    inference.add_argument("--rounds", type=int, default=3, help="timed passes a side, taking turns")
    inference.add_argument("--backends", default=",".join(BACKENDS), help="the toolkit's Keras backends to time")
    inference.add_argument("--hf-batch-sizes", default="1,32,256", help="pipeline batch_size values (1: its default)")
    worker = commands.add_parser("worker")  # the toolkit's inference worker: not for use by hand
    worker.add_argument("config", type=Path)
    worker.add_argument("--texts", type=int, required=True)
    worker.add_argument("--max-examples", type=int)
    args = parser.parse_args(argv)
    if args.command == "worker":
        return args
    for name in ("max_examples", "rounds", "texts", "timed_epochs"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; got {value}.")
    if getattr(args, "warmup_epochs", 0) < 0:
        parser.error(f"--warmup-epochs must be at least 0; got {args.warmup_epochs}.")
    if getattr(args, "minutes", 1.0) <= 0:
        parser.error(f"--minutes must be above 0; got {args.minutes:g}.")
    args.configs = [Path(name.strip()) for name in args.configs.split(",") if name.strip()]
    missing = [str(path) for path in args.configs if not (REPO_ROOT / path).is_file()]
    if missing or not args.configs:
        parser.error(f"--configs: no such file: {', '.join(missing) or '(none given)'}")
    if hasattr(args, "backends"):
        args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
        unknown = [name for name in args.backends if name not in BACKENDS] or ([] if args.backends else ["(none)"])
        if unknown:
            parser.error(f"--backends takes a comma-separated list of {', '.join(BACKENDS)}; got {unknown}.")
    if args.command == "inference":
        parts = [part.strip() for part in args.hf_batch_sizes.split(",") if part.strip()]
        if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
            parser.error(f"--hf-batch-sizes takes comma-separated positive whole numbers; got {args.hf_batch_sizes!r}.")
        args.hf_batch_sizes = [int(part) for part in parts]
    return args


def command_line(args, command: str, defaults: dict) -> str:
    """The command that reproduces a run: its subcommand and every option not at its default."""
    parts = ["python benchmarks/hf_comparison.py", command]
    configs = ",".join(path.as_posix() for path in args.configs)
    if configs != CONFIGS:
        parts.append(f"--configs {configs}")
    for name, default in defaults.items():
        value = getattr(args, name)
        if isinstance(value, list):
            value = ",".join(map(str, value))
        if value != default and value is not None:
            parts.append(
                f"--{name.replace('_', '-')} {value:g}"
                if isinstance(value, float)
                else f"--{name.replace('_', '-')} {value}"
            )
    return " ".join(parts + ["--write-doc"])


def name_of(config: Path) -> str:
    return NAMES.get(config.stem, config.stem)


def side_name(side: str) -> str:
    return HF if side == HF else f"toolkit, {side}"


# --- One run of each side, in a process of its own ----------------------------------------------------------


def sample(args) -> list:
    return [f"data.max_examples={args.max_examples}"] if args.max_examples else []


def toolkit_run(config: Path, overrides: list, folder: Path, backend: str = "tensorflow") -> dict:
    """`python -m toolkit train` on `config`; its metrics.json and history.csv, and the process's seconds."""
    settings = [*overrides, f"output.dir={folder}", "output.overwrite=true"]
    started = time.monotonic()
    train_cli(config, settings, what=f"toolkit training ({backend})", environment={"KERAS_BACKEND": backend})
    seconds = time.monotonic() - started
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    with open(folder / "history.csv", newline="", encoding="utf-8") as handle:
        history = list(csv.DictReader(handle))
    return {"metrics": metrics, "history": history, "process_seconds": seconds}


def hf_run(config: Path, overrides: list, folder: Path, *extra) -> dict:
    """`hf_reference.py train` on `config`; its results.json with the process's seconds."""
    command = [sys.executable, str(REFERENCE), "train", str(config), "--output", str(folder), *extra]
    for override in overrides:
        command += ["--set", override]
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    print(f"  {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"transformers training failed (exit {done.returncode})")
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    results["process_seconds"] = seconds
    return results


# --- speed --------------------------------------------------------------------------------------------------


def rate(examples: int, epoch_seconds: list, warmup: int) -> dict:
    """Samples/s of the timed epochs (those after the first `warmup`), and the warm-up's seconds."""
    timed = epoch_seconds[warmup:]
    if not timed or min(timed) <= 0:
        raise SystemExit(f"no timed epoch to read (epoch seconds {epoch_seconds}, warm-up {warmup})")
    return {
        "samples_per_second": examples * len(timed) / sum(timed),
        "warmup_seconds": sum(epoch_seconds[:warmup]),
        "examples": examples,
    }


def speed_round(args, config: Path, side: str, folder: Path) -> dict:
    """One timed run of `side` (a Keras backend of the toolkit, or transformers) on `config`."""
    overrides = [*sample(args), f"training.epochs={args.warmup_epochs + args.timed_epochs}"]
    if side == HF:
        results = hf_run(config, overrides, folder, "--speed")
        epoch_seconds = [entry["train_seconds"] for entry in results["epochs"]]
        measured = rate(results["train_examples"], epoch_seconds, args.warmup_epochs)
        measured.update(process_seconds=results["process_seconds"], versions=results["versions"])
        return measured
    overrides += ["training.early_stopping_patience=null", "training.max_minutes=null"]
    run = toolkit_run(config, overrides, folder, backend=side)
    metrics = run["metrics"]
    measured = rate(metrics["train_examples"], metrics["epoch_train_seconds"], args.warmup_epochs)
    measured["process_seconds"] = run["process_seconds"]
    return measured


def speed(args) -> dict:
    sides = [*args.backends, HF]
    results = {}
    with tempfile.TemporaryDirectory(prefix="hf_speed_") as scratch:
        for config in args.configs:
            rounds = {side: [] for side in sides}
            for index in range(args.rounds):
                shift = index % len(sides)
                for side in sides[shift:] + sides[:shift]:  # the order rotates: no side always first
                    measured = speed_round(args, config, side, Path(scratch) / f"{config.stem}_{side}_{index}")
                    rounds[side].append(measured)
                    print(f"{config.stem} round {index + 1}, {side_name(side)}: "
                          f"{measured['samples_per_second']:.1f} samples/s", file=sys.stderr, flush=True)  # fmt: skip
            results[config.as_posix()] = {"settings": config_settings(config), "rounds": rounds}
    return results


def config_settings(config: Path) -> dict:
    """The shipped config's batch size, maxlen and epochs (read without Keras)."""
    sys.path.insert(0, str(REPO_ROOT))
    from toolkit.config import load_config

    loaded = load_config(REPO_ROOT / config)
    return {
        "batch_size": loaded.training.batch_size,
        "maxlen": loaded.model.maxlen,
        "epochs": loaded.training.epochs,
        "monitor": loaded.training.monitor,
    }


def speed_rows(results: dict) -> list:
    """Per config and side: the median samples/s, its range, and the median of the per-round ratios to
    transformers (each toolkit run against the transformers run of the same round)."""
    rows = []
    for config, result in results.items():
        rounds = result["rounds"]
        theirs = [measured["samples_per_second"] for measured in rounds[HF]]
        for side, measured in rounds.items():
            rates = [entry["samples_per_second"] for entry in measured]
            ratios = [mine / other for mine, other in zip(rates, theirs)]
            rows.append({
                "config": config, "side": side, "samples_per_second": statistics.median(rates),
                "range": (min(rates), max(rates)), "ratio": statistics.median(ratios),
                "ratio_range": (min(ratios), max(ratios)),
                "warmup_seconds": statistics.median(entry["warmup_seconds"] for entry in measured),
                "examples": measured[0]["examples"], **result["settings"],
            })  # fmt: skip
    return rows


def speed_findings(rows: list) -> list:
    """Sentences read off the rows: the fastest side at each shape and the toolkit's fastest backend."""
    lines, fastest_backends = [], {}
    for config in dict.fromkeys(row["config"] for row in rows):
        mine = [row for row in rows if row["config"] == config and row["side"] != HF]
        theirs = next(row for row in rows if row["config"] == config and row["side"] == HF)
        best = max(mine, key=lambda row: row["samples_per_second"])
        fastest_backends[config] = best["side"]
        default = next((row for row in mine if row["side"] == "tensorflow"), None)
        sentence = (
            f"- `{config}`: the toolkit's fastest backend is **{best['side']}**, {best['ratio']:.2f}x transformers' "
            "samples/s"
        )
        if default is not None and default is not best:
            sentence += f" (TensorFlow, the default: {default['ratio']:.2f}x)"
        if best["ratio"] < 1.0:
            sentence += f"; **transformers is faster** at this shape ({theirs['samples_per_second']:.1f} samples/s)"
        lines.append(sentence + ".")
    chosen = set(fastest_backends.values())
    if len(chosen) == 1:
        lines.append(f"- Fastest toolkit backend at every shape measured: **{chosen.pop()}**.")
    return lines


def speed_section(args, results: dict, load_start: float, load_end: float) -> str:
    rows = speed_rows(results)
    versions = next(iter(results.values()))["rounds"][HF][0].get("versions", {})
    lines = [
        SPEED_SECTION,
        "",
        "Training samples per second of the shipped configs, `python -m toolkit train CONFIG` on each Keras "
        f"backend, against Hugging Face transformers (`benchmarks/hf_reference.py train CONFIG --speed`: `Trainer` "
        "with `AutoModelForSequenceClassification` on the same all-MiniLM-L6-v2 folder, sigmoid BCE, AdamW, "
        'dynamic padding with `DataCollatorWithPadding`, `train_sampling_strategy="group_by_length"`, torch '
        "threads = the cores), at each config's batch size and maxlen, on the same "
        f"{args.max_examples:,} training examples (`data.max_examples`, a seeded sample as the toolkit reads it). "
        f"Each run is a process of its own: {args.warmup_epochs} untimed warm-up epoch(s) (tracing, compiling, "
        f"first calls), then {args.timed_epochs} timed epoch(s), timed the same way on both sides: the epoch's "
        "training steps alone, input included, from its first step's start to its last step's end (the "
        "toolkit's `epoch_train_seconds` in metrics.json; on transformers' side a `TrainerCallback`, from "
        "`on_epoch_begin` to the last `on_step_end`); dev scoring, checkpoints and start-up are outside. "
        f"{args.rounds} round(s), one run a side each, the order rotating; samples/s is the median over the "
        'rounds (range in brackets), "vs transformers" the median of each round\'s ratio to the transformers '
        "run of that round (range in brackets).",
        "",
        "| config | batch | maxlen | side | samples/s | vs transformers | warm-up epoch s |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        low, high = row["range"]
        ratio = (
            "1.00x"
            if row["side"] == HF
            else f"{row['ratio']:.2f}x ({row['ratio_range'][0]:.2f}-{row['ratio_range'][1]:.2f})"
        )
        lines.append(
            f"| `{row['config']}` | {row['batch_size']} | {row['maxlen']} | {side_name(row['side'])} | "
            f"{row['samples_per_second']:.1f} ({low:.1f}-{high:.1f}) | {ratio} | {row['warmup_seconds']:.0f} |"
        )
    lines += ["", *speed_findings(rows), ""]
    if "jax" in args.backends:
        lines += [
            "On JAX a training step is compiled for each new batch shape (the toolkit pads a batch to its longest "
            "text, so a shape a padded length): the warm-up epoch compiles the lengths it meets, and a timed epoch "
            "also pays for those it meets first; the warm-up column shows what compiling costs at this size.",
            "",
        ]
    lines += [
        f"Command: `{command_line(args, 'speed', SPEED_DEFAULTS)}`",
        "",
        machine_line(load_start, load_end, "the runs one at a time, nothing else run meanwhile")
        + f"; {version_text(versions)}.",
        "",
    ]
    return "\n".join(lines)


SPEED_DEFAULTS = {"max_examples": 1024, "rounds": 3, "backends": ",".join(BACKENDS), "warmup_epochs": 1,
                  "timed_epochs": 1}  # fmt: skip


def version_text(versions: dict) -> str:
    """Python and the frameworks both sides ran on."""
    import platform
    from importlib import metadata

    known = {"Python": platform.python_version()}
    for package in ("tensorflow", "keras", "jax", "torch", "transformers"):
        try:
            known[package] = versions.get(package) or metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(f"{name} {version}" for name, version in known.items())


# --- budget -------------------------------------------------------------------------------------------------


def budget(args) -> dict:
    """Each config: the toolkit with `training.max_minutes`, then transformers for as many minutes as the
    toolkit's clock stood at when it stopped, stopping at the first training step past them."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="hf_budget_") as scratch:
        for config in args.configs:
            folder = Path(scratch) / config.stem
            overrides = [*sample(args), f"training.max_minutes={args.minutes:g}"]
            runs = {"toolkit": toolkit_run(config, overrides, folder / "toolkit")}
            print(f"{config.stem} toolkit: done", file=sys.stderr, flush=True)
            minutes = toolkit_budget_row(runs["toolkit"], "micro_f1")["minutes"]
            runs[HF] = hf_run(config, sample(args), folder / "hf", "--minutes", f"{minutes:g}", "--within-epoch")
            print(f"{config.stem} {HF}: done ({minutes:g} minutes)", file=sys.stderr, flush=True)
            results[config.as_posix()] = {"settings": config_settings(config), "runs": runs}
    return results


def toolkit_budget_row(run: dict, metric: str) -> dict:
    """The toolkit run's threshold-0 dev scores (its best epoch's saved model, metrics.json) and its curve."""
    metrics = run["metrics"]
    stopped = metrics.get("budget_stopped")
    return {
        "micro_f1": metrics["dev"]["micro_f1"],
        "macro_f1": metrics["dev"]["macro_f1"],
        "epochs": len(run["history"]),
        "best_epoch": metrics["best_epoch"],
        # The clock when the budget stopped training, as the transformers side reports it.
        "minutes": stopped["minutes"] if stopped else metrics["train_seconds"] / 60,
        "curve": [float(row[f"val_{metric}"]) for row in run["history"]],
        "process_minutes": run["process_seconds"] / 60,
        "stopped": bool(stopped),
    }


def budget_rows(results: dict) -> list:
    rows = []
    for config, result in results.items():
        metric = result["settings"]["monitor"].removeprefix("val_")
        mine = toolkit_budget_row(result["runs"]["toolkit"], metric)
        theirs = result["runs"][HF]
        run_facts = {
            "epochs": theirs["epochs"][-1].get("epochs_trained", len(theirs["epochs"])) if theirs["epochs"] else 0,
            "best_epoch": theirs.get("best_epoch"),
            "minutes": theirs["minutes"],
            "process_minutes": theirs["process_seconds"] / 60,
            "stopped": bool(theirs.get("budget_stopped")),
        }
        curve = [entry["dev"][metric] for entry in theirs["epochs"] if "dev" in entry]
        scores = theirs["scores"]
        rows.append({"config": config, "metric": metric, "run": "toolkit", "rule": "threshold 0 (no tuning)",
                     "thresholds": [0.0], "probabilities": None, **mine})  # fmt: skip
        rules = (
            ("zero", "probability 0.5 (its default)"),
            ("tuned", f"tuned on dev for {metric}"),
            ("cross", "cross-tuned on dev halves"),
        )
        for key, rule in rules:
            values = scores[key]
            thresholds = values["thresholds"] if "thresholds" in values else [values["threshold"]]
            rows.append({
                "config": config, "metric": metric, "run": HF, "rule": rule, "thresholds": thresholds,
                "probabilities": values["probabilities"], "micro_f1": values["micro_f1"],
                "macro_f1": values["macro_f1"], **run_facts, "curve": curve if key == "zero" else None,
            })  # fmt: skip
    return rows


def budget_section(args, results: dict, load_start: float, load_end: float) -> str:
    rows = budget_rows(results)
    first = next(iter(results.values()))
    versions = first["runs"][HF].get("versions", {})
    lines = [
        BUDGET_SECTION,
        "",
        "Each shipped config trained for the same minutes of wall clock by the toolkit and by Hugging Face "
        "transformers, one run after the other, then scored on dev"
        + (f" (a seeded sample of {args.max_examples:,} examples a split)" if args.max_examples else "")
        + ". The toolkit side is `python -m toolkit train CONFIG --set "
        f"training.max_minutes={args.minutes:g}`, the config as shipped, scored at its rule, logit > 0, with no "
        "tuning; it stops at the first epoch end past the budget, after that epoch's dev scoring. The "
        "transformers side then gets **as many minutes as the toolkit's clock stood at when it stopped** "
        "(`benchmarks/hf_reference.py train CONFIG --minutes M --within-epoch`) and stops at the first training "
        "step past them, the part of an epoch trained then evaluated and checkpointed as an epoch's end is; so it "
        "never trains for less time than the toolkit did, whatever its epochs' length. It is `Trainer` with "
        "`AutoModelForSequenceClassification` "
        '(`problem_type="multi_label_classification"`: the [CLS] pooler, sigmoid binary crossentropy) on the same '
        "all-MiniLM-L6-v2 folder, data, maxlen, batch size, learning rate with its warm-up and linear decay over "
        "the config's epochs, weight decay and seed; its own defaults otherwise (AdamW, gradients clipped to norm "
        "1), an evaluation and a checkpoint each epoch and the best epoch (by the config's measure, at 0.5) "
        "loaded at the end, dynamic padding and `group_by_length`. Its model is scored at its default "
        "probability 0.5, at a threshold tuned on the whole dev split for the config's measure and scored there "
        "(it has seen the answers), and cross-tuned (tuned on one half of dev, scored on the other, both ways): "
        'the rules of "Multi-label classification: this loss against sigmoid BCE" above; thresholds are searched every 0.01 from -4 to 4 on the logit scale. '
        "Both clocks start when training starts (data read and tokenized, model built) and include dev scoring "
        'and checkpoints; "minutes" is where the clock stood when training stopped (on transformers\' side after '
        'its last evaluation), "process" the whole command; "epochs" counts the epochs trained, a fraction where '
        "transformers stopped within one.",
        "",
        "| data | run | decision rule | threshold: logit (probability) | dev micro-F1 | dev macro-F1 | epochs in "
        "the budget | best epoch | minutes (process) | dev measure per epoch |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row["probabilities"] is None:
            threshold = "0"
        else:
            threshold = ", ".join(
                f"{logit:.2f} ({probability:.2f})"
                for logit, probability in zip(row["thresholds"], row["probabilities"])
            )
        run = "toolkit, the shipped config" if row["run"] == "toolkit" else "transformers, sigmoid BCE"
        curve = f"{row['metric']}: " + ", ".join(f"{value:.3f}" for value in row["curve"]) if row["curve"] else ""
        lines.append(
            f"| {name_of(Path(row['config']))} | {run} | {row['rule']} | {threshold} | {row['micro_f1']:.4f} | "
            f"{row['macro_f1']:.4f} | {row['epochs']:.3g} | {row['best_epoch']} | {row['minutes']:.1f} "
            f"({row['process_minutes']:.1f}) | {curve} |"
        )
    lines += [
        "",
        f"Command: `{command_line(args, 'budget', {'minutes': None, 'max_examples': None})}`",
        "",
        machine_line(load_start, load_end, "the runs one at a time, nothing else run meanwhile")
        + f"; {version_text(versions)}.",
        "",
    ]
    return "\n".join(lines)


# --- inference ----------------------------------------------------------------------------------------------


class Worker:
    """One side's inference worker, a process of its own: `round()` times one pass over the texts."""

    def __init__(self, name, command, environment, marker, log):
        self.name, self.marker = name, marker
        self.log = open(log, "w+", encoding="utf-8")  # noqa: SIM115 (the worker's lifetime)
        print(f"  {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)  # fmt: skip

    def receive(self, key):
        for line in self.process.stdout:
            if line.startswith(self.marker):
                message = json.loads(line[len(self.marker) :])
                if key in message:
                    return message[key]
        self.process.wait()
        self.log.seek(0)
        raise SystemExit(f"The {self.name} worker failed (exit {self.process.returncode}):\n{self.log.read()[-4000:]}")

    def round(self):
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return self.receive("round")

    def close(self, stop=False):
        if self.process.poll() is None:
            if stop:
                self.process.terminate()
            else:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def inference_workers(args, config: Path, folder: Path) -> dict:
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    overrides = [part for override in sample(args) for part in ("--set", override)]
    workers = {}
    for backend in args.backends:
        command = [sys.executable, __file__, "worker", str(config), "--texts", str(args.texts)]
        if args.max_examples:
            command += ["--max-examples", str(args.max_examples)]
        workers[backend] = Worker(backend, command, dict(environment, KERAS_BACKEND=backend), MARKER,
                                  folder / f"{config.stem}_{backend}.log")  # fmt: skip
    sizes = ",".join(map(str, args.hf_batch_sizes))
    command = [sys.executable, str(REFERENCE), "inference", str(config), "--texts", str(args.texts),
               "--batch-sizes", sizes, "--serve", *overrides]  # fmt: skip
    workers[HF] = Worker(HF, command, environment, HF_MARKER, folder / f"{config.stem}_hf.log")
    return workers


def inference(args) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="hf_inference_") as scratch:
        for config in args.configs:
            workers = inference_workers(args, config, Path(scratch))
            finished = False
            try:
                ready = {side: worker.receive("ready") for side, worker in workers.items()}
                sides = list(workers)
                rounds = {side: [] for side in sides}
                for index in range(args.rounds):
                    shift = index % len(sides)
                    for side in sides[shift:] + sides[:shift]:
                        rounds[side].append(workers[side].round())
                    print(f"{config.stem} round {index + 1}: {rounds}", file=sys.stderr, flush=True)
                finished = True
            finally:
                for worker in workers.values():
                    worker.close(stop=not finished)
            results[config.as_posix()] = {"settings": config_settings(config), "ready": ready, "rounds": rounds}
    return results


def inference_rows(results: dict) -> list:
    """Per config: one row a toolkit backend and a row a pipeline batch size, with the median texts/s and
    the median ratio to the pipeline at its default batch size (1) where it was timed."""
    rows = []
    for config, result in results.items():
        ready, rounds = result["ready"], result["rounds"]
        series = {}
        for side, measured in rounds.items():
            if side == HF:
                for size in measured[0]:
                    series[(HF, int(size))] = [entry[size] for entry in measured]
            else:
                series[(side, None)] = [entry["texts_per_second"] for entry in measured]
        baseline = series.get((HF, 1))
        for (side, size), rates in series.items():
            ratios = [mine / other for mine, other in zip(rates, baseline)] if baseline else None
            rows.append({
                "config": config, "side": side, "pipeline_batch": size, "texts_per_second": statistics.median(rates),
                "range": (min(rates), max(rates)), "ratio": statistics.median(ratios) if ratios else None,
                "texts": ready[HF]["texts"], "mean_tokens": ready[HF]["mean_tokens"],
                "toolkit_batch": ready[side]["batch_size"] if side != HF else None, **result["settings"],
            })  # fmt: skip
    return rows


def inference_section(args, results: dict, load_start: float, load_end: float) -> str:
    rows = inference_rows(results)
    versions = next(iter(results.values()))["ready"][HF].get("versions", {})
    lines = [
        INFERENCE_SECTION,
        "",
        "Texts per second of the toolkit's batched prediction (`MultilabelPredictor.predict`: texts grouped by "
        "length, padded per batch, one `predict_on_batch` a batch, decided at logit > 0) against Hugging Face "
        '`pipeline("text-classification", top_k=None)` (every label\'s sigmoid probability; padding to the '
        "longest text of each batch, texts in the given order), on the same architecture (all-MiniLM-L6-v2 "
        "with a new head for the config's labels: the toolkit's mean pooling and linear head, transformers' "
        "[CLS] pooler and linear head; untrained, since speed does not depend on the weights) and the same "
        f"texts: the first {args.texts:,} of each config's dev split (all of it where it holds fewer), both cutting "
        "them at the config's maxlen. "
        "Each side runs in a process of its own, after an untimed pass (tracing, first calls); "
        f"{args.rounds} round(s), the sides taking turns, the order rotating; a rate is the median over the "
        'rounds (range in brackets), "vs pipeline" the median of each round\'s ratio to the pipeline at its '
        "default `batch_size` (1) in that round. Torch threads = the cores.",
        "",
        "| config | maxlen | texts | tokens a text | side | call | texts/s | vs pipeline, batch_size 1 |",
        "|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for row in rows:
        if row["side"] == HF:
            call = f"`pipeline(..., batch_size={row['pipeline_batch']})`"
        else:
            call = f"`predict`, batch {row['toolkit_batch']}"
        low, high = row["range"]
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else ""
        lines.append(
            f"| `{row['config']}` | {row['maxlen']} | {row['texts']:,} | {row['mean_tokens']:.1f} | "
            f"{side_name(row['side'])} | {call} | {row['texts_per_second']:.1f} ({low:.1f}-{high:.1f}) | {ratio} |"
        )
    defaults = {"texts": 512, "rounds": 3, "backends": ",".join(BACKENDS), "hf_batch_sizes": "1,32,256",
                "max_examples": None}  # fmt: skip
    lines += [
        "",
        "Tokens a text: the mean length of the timed texts in WordPiece tokens after the cut, `[CLS]` and "
        "`[SEP]` included.",
        "",
        f"Command: `{command_line(args, 'inference', defaults)}`",
        "",
        machine_line(load_start, load_end, "nothing else was run meanwhile") + f"; {version_text(versions)}.",
        "",
    ]
    return "\n".join(lines)


def run_worker(args) -> None:
    """The toolkit's inference worker: the config's predictor (the encoder with an untrained head) over the
    first `--texts` dev texts, a timed `predict` each time the parent asks for a round."""
    sys.path.insert(0, str(REPO_ROOT))
    import keras

    from toolkit.config import load_config
    from toolkit.tasks import pipeline_class

    overrides = [f"data.max_examples={args.max_examples}"] if args.max_examples else []
    config = load_config(args.config, overrides=overrides)
    pipeline = pipeline_class(config.task)(config, log=lambda message: None)
    data = pipeline.read_data()
    keras.utils.set_random_seed(config.training.seed)
    predictor = pipeline.build(data)
    texts = list(data.dev.texts[: args.texts])
    predictor.predict(texts)  # untimed: traces (or compiles) the batch shapes
    ready = {"texts": len(texts), "batch_size": predictor.batch_size, "backend": keras.backend.backend()}
    print(MARKER + json.dumps({"ready": ready}), flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        start = time.perf_counter()
        decisions = predictor.predict(texts)
        seconds = time.perf_counter() - start
        if decisions.shape != (len(texts), len(data.label_names)):
            raise SystemExit(f"predict returned {decisions.shape}; expected {(len(texts), len(data.label_names))}")
        print(MARKER + json.dumps({"round": {"texts_per_second": len(texts) / seconds}}), flush=True)


# --- main ---------------------------------------------------------------------------------------------------


MEASUREMENTS = {
    "speed": (speed, speed_section, BENCHMARKS_DOC, SPEED_SECTION),
    "budget": (budget, budget_section, RESULTS_DOC, BUDGET_SECTION),
    "inference": (inference, inference_section, BENCHMARKS_DOC, INFERENCE_SECTION),
}


def main(argv=None):
    args = parse_args(argv)
    if args.command == "worker":
        run_worker(args)
        return
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise SystemExit("needs transformers: pip install -r benchmarks/requirements-hf.txt") from None
    os.environ["MINILM_DIR"] = minilm_dir()
    measure, section, doc, heading = MEASUREMENTS[args.command]
    load_start = os.getloadavg()[0]
    results = measure(args)
    markdown = section(args, results, load_start, os.getloadavg()[0])
    print(markdown)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.write_doc:
        write_section(doc, heading, markdown)
        print(f"wrote {heading} in {doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
