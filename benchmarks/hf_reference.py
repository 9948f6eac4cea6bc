"""What most users pick instead: a shipped classification config trained with Hugging Face transformers.

The transformers side of `hf_comparison.py`, usable alone. A config of this toolkit
(`configs/goemotions.yaml`, `configs/reuters.yaml`) gives the data, read by the toolkit's own readers
(the same examples, the same held-out dev split, the same label order), the encoder folder, `model.maxlen`,
`training.batch_size`, `learning_rate`, `warmup_ratio` with its decay over `training.epochs`,
`weight_decay`, `seed`, and `training.monitor` (the measure that picks the best epoch). The model is
`AutoModelForSequenceClassification` on that folder (all-MiniLM-L6-v2) with
`problem_type="multi_label_classification"`: its [CLS] pooler, a new linear head, sigmoid binary
crossentropy, a label where its probability is above 0.5. The rest is `Trainer` as its documentation sets
it up for text classification (AdamW, gradients clipped to norm 1, an evaluation and a checkpoint each
epoch, the best checkpoint loaded at the end), at its fastest on a CPU: dynamic padding
(`DataCollatorWithPadding`), `train_sampling_strategy="group_by_length"` (the toolkit's length grouping's
counterpart), torch's threads set to the machine's cores.

- `train`: trains, with `--minutes` stopping at the first epoch end past the budget (checked after the
  epoch's dev evaluation, as the toolkit checks `training.max_minutes` after its dev scoring), or with
  `--within-epoch` at the first training step past it (that part of an epoch then evaluated); times each
  epoch's training steps; scores the best epoch's model on dev at 0.5, at a threshold tuned on dev for the
  config's measure, and cross-tuned (tuned on one half of dev, scored on the other, both ways: the rule of
  `benchmarks/quality_report.py`). Writes `results.json`, `dev_logits.npz` and the model (`best/`).
- `evaluate`: the same scores again from a `train` output folder's model.
- `inference`: texts per second of `pipeline("text-classification", top_k=None)` over the config's dev
  texts, cut at `model.maxlen`, at each `--batch-sizes`.

    pip install -r benchmarks/requirements-hf.txt          # transformers: for the benchmarks only
    python benchmarks/hf_reference.py train configs/goemotions.yaml --minutes 20 --output runs/hf/goemotions
    python benchmarks/hf_reference.py evaluate runs/hf/goemotions
    python benchmarks/hf_reference.py inference configs/reuters.yaml --texts 512 --batch-sizes 1,32,256
    python benchmarks/hf_reference.py train configs/goemotions.yaml --set data.max_examples=1024 \
        --set training.epochs=2 --speed --profile-steps 8 --output /tmp/hf_profile
                     # where a step's time goes (profile.txt; the toolkit's: benchmarks/step_profile.py)
    python benchmarks/hf_reference.py train configs/goemotions.yaml --set data.max_examples=64 --minutes 0.3 \
        --output /tmp/hf_smoke                              # smoke run: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "HF_REFERENCE "  # a line a worker prints for its parent (`hf_comparison.py`)
SCHEDULES = {"linear": "linear", "cosine": "cosine", "none": "constant_with_warmup"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def config_arguments(command):
        command.add_argument("config", type=Path, help="a multilabel_classification config of this toolkit")
        command.add_argument(
            "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
            help="a dotted config override, as `python -m toolkit train --set` takes it (repeatable)",
        )  # fmt: skip
        command.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (the cores)")

    train = commands.add_parser("train", help="train with Trainer; score dev at 0.5, tuned and cross-tuned")
    config_arguments(train)
    train.add_argument("--output", type=Path, required=True, help="the folder for results.json and the model")
    train.add_argument("--minutes", type=float, help="stop at the first epoch end past this many minutes")
    train.add_argument(
        "--within-epoch", action="store_true",
        help="with --minutes: stop at the first training step past the budget and score that part of an epoch",
    )  # fmt: skip
    train.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke runs)")
    train.add_argument(
        "--speed", action="store_true",
        help="time the training steps only: no evaluation, no checkpoint, nothing scored or saved",
    )  # fmt: skip
    train.add_argument(
        "--profile-steps", type=int,
        help="trace this many steps of the second epoch with torch's profiler: its op table in profile.txt "
        "(that epoch's time then includes the tracing)",
    )  # fmt: skip
    evaluate = commands.add_parser("evaluate", help="score a `train` output folder's model on dev again")
    evaluate.add_argument("output", type=Path)
    evaluate.add_argument("--threads", type=int, default=os.cpu_count())
    inference = commands.add_parser("inference", help="texts/s of pipeline('text-classification', top_k=None)")
    config_arguments(inference)
    inference.add_argument("--model", type=Path, help="a trained model folder (default: the encoder, a new head)")
    inference.add_argument("--texts", type=int, default=512, help="the first N dev texts")
    inference.add_argument("--batch-sizes", default="1,32,256", help="the pipeline's batch_size values to time")
    inference.add_argument("--rounds", type=int, default=3, help="timed passes at each batch size (median)")
    inference.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # a worker of hf_comparison
    args = parser.parse_args(argv)
    for name in ("threads", "max_steps", "texts", "rounds", "profile_steps"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; got {value}.")
    if getattr(args, "minutes", None) is not None and args.minutes <= 0:
        parser.error(f"--minutes must be above 0; got {args.minutes:g}.")
    if args.command == "inference":
        args.batch_sizes = batch_sizes(parser, args.batch_sizes)
    return args


def batch_sizes(parser, text):
    """`"1,32"` -> `[1, 32]`; anything but positive whole numbers is refused through `parser`."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        parser.error(f"--batch-sizes takes comma-separated positive whole numbers; got {text!r}.")
    return [int(part) for part in parts]


# --- The config's data and settings, read by the toolkit (no Keras) ---------------------------------------


def read_job(config_path, overrides):
    """The config's settings and splits as the toolkit reads them: `(config, train, dev, label_names)`."""
    sys.path.insert(0, str(REPO_ROOT))
    from toolkit.config import load_config
    from toolkit.data import build_label_vocabulary, read_splits

    config = load_config(config_path, overrides=list(overrides))
    if config.task != "multilabel_classification":
        raise SystemExit(f"{config_path}: task {config.task!r}; the reference trains multilabel_classification.")
    quiet = lambda message: None  # noqa: E731
    train, dev, _test = read_splits(config.data, config.training.seed, log=quiet)
    if dev is None:
        raise SystemExit(f"{config_path}: no dev split (data.dev or data.dev_fraction); the reference scores on dev.")
    label_names = build_label_vocabulary([train, dev], label_names=config.data.label_names)
    return config, train, dev, list(label_names)


def multi_hot(labels, label_names):
    import numpy as np

    index = {name: position for position, name in enumerate(label_names)}
    targets = np.zeros((len(labels), len(label_names)), dtype=np.int8)
    for row, names in enumerate(labels):
        targets[row, [index[name] for name in names]] = 1
    return targets


def metric_of(monitor):
    """`val_macro_f1` -> `macro_f1`: the config's measure of the best epoch, as Trainer names it."""
    name = monitor.removeprefix("val_")
    if name not in ("micro_f1", "macro_f1"):
        raise SystemExit(f"training.monitor {monitor!r}: the reference picks its best epoch by micro_f1 or macro_f1.")
    return name


# --- Scores: 0.5, tuned on dev, cross-tuned ---------------------------------------------------------------


def threshold_rows(targets, logits, metric, seed=0):
    """Dev scores of BCE logits under the three rules of docs/results.md (`quality_report.threshold_scores`,
    logit thresholds every 0.01 from -4 to 4): `zero` (logit 0, probability 0.5), `tuned` (the threshold best
    for `metric` on all of dev, scored there) and `cross` (tuned on one seeded half of dev and scored on the
    other, both ways, pooled). Each with `micro_f1`, `macro_f1`, and its threshold(s) as logits and as
    probabilities."""
    from quality_report import threshold_scores  # benchmarks/ is on the path (run as a script)

    scores = threshold_scores(targets, logits, metric, seed=seed)
    scores["zero"].update(threshold=0.0)
    for rule in scores.values():
        rule["probabilities"] = [round(sigmoid(value), 4) for value in rule_thresholds(rule)]
    return scores


def rule_thresholds(rule):
    """A rule's logit thresholds as a list: one (`threshold`), or one a dev half (`thresholds`)."""
    return list(rule["thresholds"]) if "thresholds" in rule else [rule["threshold"]]


def sigmoid(value):
    import math

    return 1.0 / (1.0 + math.exp(-value))


def f1_scores(targets, logits):
    """Micro and macro F1 of `logits > 0` (probability above 0.5), as the toolkit scores."""
    from toolkit.scores import multilabel_scores

    scores = multilabel_scores(targets, (logits > 0).astype("int8"))
    return {"micro_f1": scores["micro_f1"], "macro_f1": scores["macro_f1"]}


# --- transformers ------------------------------------------------------------------------------------------


def set_threads(count):
    import torch

    torch.set_num_threads(count)
    return torch


def load_model(folder, label_names):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        str(folder),
        num_labels=len(label_names),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(label_names)),
        label2id={name: index for index, name in enumerate(label_names)},
    )


def encode(tokenizer, texts, maxlen, targets=None):
    """Token ids cut at `maxlen`, unpadded (the collator pads each batch): a list of feature dicts."""
    encoded = tokenizer(list(texts), truncation=True, max_length=maxlen)
    features = [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]
    if targets is not None:
        for feature, row in zip(features, targets):
            feature["labels"] = row.astype("float32").tolist()
    return features


def make_callback(max_seconds, epochs, within_epoch=False, clock=time.monotonic):
    """A `TrainerCallback` that times each epoch's training steps and, with `max_seconds`, stops training
    at the first epoch end past the budget, after that epoch's evaluation (or at its end, without one);
    with `within_epoch`, at the first training step past it, the part of the epoch trained then evaluated
    (`Trainer` ends the epoch, evaluates and checkpoints as at a full epoch's end). `clock` reads the
    seconds."""
    from transformers import TrainerCallback

    class EpochClock(TrainerCallback):
        def __init__(self):
            self.epochs, self.budget_stopped, self.training = [], None, False

        def on_train_begin(self, args, state, control, **kwargs):
            self.start, self.training = clock(), True

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.epoch_start = self.last_step = clock()

        def on_step_end(self, args, state, control, **kwargs):
            self.last_step = clock()
            seconds = self.last_step - self.start
            if within_epoch and max_seconds and seconds >= max_seconds and not control.should_training_stop:
                control.should_training_stop = True
                self.budget_stopped = {
                    "epoch": len(self.epochs) + 1, "step": state.global_step, "minutes": round(seconds / 60, 2),
                }  # fmt: skip

        def on_epoch_end(self, args, state, control, **kwargs):
            entry = {"epoch": len(self.epochs) + 1, "train_seconds": self.last_step - self.epoch_start}
            if getattr(state, "epoch", None) is not None:  # epochs trained so far, a fraction after a stop within one
                entry["epochs_trained"] = round(float(state.epoch), 4)
            self.epochs.append(entry)
            if args.eval_strategy == "no":
                self.check(control)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if not self.training or not self.epochs:
                return
            self.epochs[-1]["dev"] = {
                name: float(metrics[f"eval_{name}"]) for name in ("micro_f1", "macro_f1") if f"eval_{name}" in metrics
            }
            self.check(control)

        def on_train_end(self, args, state, control, **kwargs):
            self.training = False

        def check(self, control):
            seconds = clock() - self.start
            self.epochs[-1]["clock_seconds"] = seconds
            last = len(self.epochs) >= epochs
            if max_seconds and seconds >= max_seconds and not last and not control.should_training_stop:
                control.should_training_stop = True
                self.budget_stopped = {"epoch": len(self.epochs), "minutes": round(seconds / 60, 2)}

    return EpochClock()


def make_profiler(steps, path):
    """A `TrainerCallback` that traces the first `steps` steps of the second epoch (the first traces and
    allocates) with torch's profiler and writes the ops' table, by self CPU time, to `path`."""
    import torch
    from transformers import TrainerCallback

    class StepProfiler(TrainerCallback):
        def __init__(self):
            self.epoch, self.profile, self.traced = 0, None, 0

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.epoch += 1
            if self.epoch == 2:
                self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profile.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            if self.profile is not None:
                self.traced += 1
                if self.traced == steps:
                    self.finish()

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.profile is not None:  # the epoch had fewer steps
                self.finish()

        def finish(self):
            self.profile.__exit__(None, None, None)
            table = self.profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
            path.write_text(f"{self.traced} training steps of epoch 2, by self CPU time\n{table}\n", encoding="utf-8")
            self.profile = None

    return StepProfiler()


def train(args):
    started = time.monotonic()
    config, train_split, dev_split, label_names = read_job(args.config, args.overrides)
    torch = set_threads(args.threads)
    import numpy as np
    import transformers
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    settings, training = config.model, config.training
    encoder = Path(settings.encoder.path).expanduser()
    metric = metric_of(training.monitor)
    transformers.set_seed(training.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(encoder))
    model = load_model(encoder, label_names)
    train_targets, dev_targets = multi_hot(train_split.labels, label_names), multi_hot(dev_split.labels, label_names)
    train_features = encode(tokenizer, train_split.texts, settings.maxlen, train_targets)
    dev_features = encode(tokenizer, dev_split.texts, settings.maxlen, dev_targets)
    evaluate_each_epoch = not args.speed
    args.output.mkdir(parents=True, exist_ok=True)
    arguments = TrainingArguments(
        output_dir=str(args.output / "checkpoints"),
        num_train_epochs=training.epochs,
        max_steps=args.max_steps or -1,
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        learning_rate=training.learning_rate,
        lr_scheduler_type=SCHEDULES[training.decay],
        warmup_steps=training.warmup_steps if training.warmup_steps is not None else training.warmup_ratio,
        weight_decay=training.weight_decay,
        seed=training.seed,
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch" if evaluate_each_epoch else "no",
        save_strategy="epoch" if evaluate_each_epoch else "no",
        load_best_model_at_end=evaluate_each_epoch,
        metric_for_best_model=metric,
        greater_is_better=True,
        save_total_limit=1,  # the best checkpoint and the latest are kept
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )

    def compute_metrics(prediction):
        return f1_scores(np.asarray(prediction.label_ids) > 0.5, np.asarray(prediction.predictions))

    clock = make_callback(args.minutes * 60 if args.minutes else None, training.epochs, args.within_epoch)
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train_features,
        eval_dataset=dev_features,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[clock]
        + ([make_profiler(args.profile_steps, args.output / "profile.txt")] if args.profile_steps else []),
    )
    trainer.train()
    results = {
        "side": "transformers",
        "config": str(args.config),
        "overrides": list(args.overrides),
        "label_names": label_names,
        "metric": metric,
        "train_examples": len(train_features),
        "dev_examples": len(dev_features),
        "batch_size": training.batch_size,
        "maxlen": settings.maxlen,
        "threads": torch.get_num_threads(),
        "epochs": clock.epochs,
        "budget_stopped": clock.budget_stopped,
        "minutes": round(clock.epochs[-1].get("clock_seconds", 0.0) / 60, 2) if clock.epochs else 0.0,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
    }
    if evaluate_each_epoch:
        kept = [entry for entry in clock.epochs if "dev" in entry]
        best = max(kept, key=lambda entry: (entry["dev"].get(metric, 0.0), -entry["epoch"]), default=None)
        results["best_epoch"] = best["epoch"] if best else None
        logits = dev_logits(trainer.model, tokenizer, dev_features, training.batch_size, args.output)
        np.savez(args.output / "dev_logits.npz", targets=dev_targets, logits=logits)
        results["scores"] = threshold_rows(dev_targets, logits, metric, seed=training.seed)
        trainer.save_model(str(args.output / "best"))
    results["process_seconds"] = round(time.monotonic() - started, 1)
    write_json(args.output / "results.json", results)
    print(MARKER + json.dumps({"results": str(args.output / "results.json")}), flush=True)
    summary(results)


def dev_logits(model, tokenizer, features, batch_size, output):
    """`model`'s logits on `features`, in their order, as float64.

    A `Trainer` of its own: transformers 5 groups evaluation batches by length too when training does
    (`train_sampling_strategy`), so the training `Trainer`'s `predict` returns the rows reordered."""
    import numpy as np
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    arguments = TrainingArguments(
        output_dir=str(output / "checkpoints"),
        per_device_eval_batch_size=batch_size,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    collator = DataCollatorWithPadding(tokenizer)
    predictor = Trainer(model=model, args=arguments, processing_class=tokenizer, data_collator=collator)
    return np.asarray(predictor.predict(features).predictions, dtype=np.float64)


def evaluate(args):
    results = json.loads((args.output / "results.json").read_text(encoding="utf-8"))
    config, _train, dev_split, label_names = read_job(Path(results["config"]), results["overrides"])
    set_threads(args.threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = args.output / "best"
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    features = encode(tokenizer, dev_split.texts, config.model.maxlen)
    logits = dev_logits(model, tokenizer, features, results["batch_size"], args.output)
    targets = multi_hot(dev_split.labels, label_names)
    results["scores"] = threshold_rows(targets, logits, results["metric"], seed=config.training.seed)
    write_json(args.output / "results.json", results)
    summary(results)


def summary(results):
    """What a run gave, in a few lines on stderr."""
    for entry in results["epochs"]:
        dev = entry.get("dev")
        scores = f", dev micro-F1 {dev['micro_f1']:.4f} macro-F1 {dev['macro_f1']:.4f} (0.5)" if dev else ""
        print(f"epoch {entry['epoch']}: training steps {entry['train_seconds']:.1f} s{scores}", file=sys.stderr)
    for rule, values in results.get("scores", {}).items():
        thresholds = ", ".join(f"{value:.2f}" for value in rule_thresholds(values))
        print(
            f"{rule}: threshold (logit) {thresholds}; micro-F1 {values['micro_f1']:.4f}, "
            f"macro-F1 {values['macro_f1']:.4f}",
            file=sys.stderr,
        )


def write_json(path, value):
    temporary = path.with_suffix(".partial")
    temporary.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)


# --- Inference --------------------------------------------------------------------------------------------


def inference(args):
    config, _train, dev_split, label_names = read_job(args.config, args.overrides)
    torch = set_threads(args.threads)
    import transformers
    from transformers import AutoTokenizer, pipeline

    folder = args.model or Path(config.model.encoder.path).expanduser()
    maxlen = config.model.maxlen
    texts = list(dev_split.texts[: args.texts])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    classifier = pipeline("text-classification", model=load_model(folder, label_names), tokenizer=tokenizer, top_k=None)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=maxlen)["input_ids"]]

    def one_pass(batch_size):
        start = time.perf_counter()
        outputs = classifier(texts, batch_size=batch_size, truncation=True, max_length=maxlen)
        seconds = time.perf_counter() - start
        if len(outputs) != len(texts) or len(outputs[0]) != len(label_names):
            raise SystemExit(f"the pipeline returned {len(outputs)} rows; expected {len(texts)} of every label")
        return len(texts) / seconds

    for batch_size in args.batch_sizes:  # untimed: first calls
        classifier(texts[: max(batch_size, 8)], batch_size=batch_size, truncation=True, max_length=maxlen)
    ready = {
        "texts": len(texts),
        "mean_tokens": sum(lengths) / len(lengths),
        "threads": torch.get_num_threads(),
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
    }
    if args.serve:  # hf_comparison's worker: a round each time the parent asks
        print(MARKER + json.dumps({"ready": ready}), flush=True)
        for line in sys.stdin:
            if line.strip() != "round":
                break
            rates = {str(size): one_pass(size) for size in args.batch_sizes}
            print(MARKER + json.dumps({"round": rates}), flush=True)
        return
    rates = {size: [one_pass(size) for _ in range(args.rounds)] for size in args.batch_sizes}
    print(f"{len(texts)} dev texts of {args.config}, {ready['mean_tokens']:.1f} tokens on average (maxlen {maxlen})")
    for size, values in rates.items():
        print(f"pipeline batch_size={size}: {statistics.median(values):.1f} texts/s (median of {len(values)})")


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise SystemExit("needs transformers: pip install -r benchmarks/requirements-hf.txt") from None
    {"train": train, "evaluate": evaluate, "inference": inference}[args.command](args)


if __name__ == "__main__":
    main()
