"""Span tasks: GPLinker against semi-pointer semi-tagging, and what the span heads cost.

Two sections of `docs/benchmarks.md`, each from runs of its own:

- `## Relation methods`: on the same data, encoder, epochs and settings (the
  shipped config, with `model.method` switched), GPLinker and the semi-pointer
  model are trained for a fixed number of epochs and their final weights
  scored on dev with the pipeline's own scoring; training samples/s (epochs
  after the first, which traces), decode sentences/s batched (the predictor's
  own batch size) and per sentence (the same decoder, batches of one). The
  entity task on CoNLL04 runs beside them. Data sets: CoNLL04 and WebNLG*
  with the pretrained all-MiniLM-L6-v2, the LIC2019 sample with its config's
  random Chinese encoder (no Chinese weights can be had here).
- `## Span heads`: time and peak memory of one training step of the entity
  recognizer (GlobalPointer) and of GPLinker at sequence lengths 128 and 256,
  on a randomly initialised encoder of MiniLM's shape (6 layers, hidden 384),
  random tokens and random gold spans.

Every configuration runs in a process of its own (TensorFlow, one at a time);
nothing else should run on the machine meanwhile.

    python benchmarks/span_benchmark.py --write-doc                      # both sections (~45 min on 2 cores)
    python benchmarks/span_benchmark.py --sections methods --datasets conll04 --epochs 1 --limit 64   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _docs import machine_line, minilm_dir, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
DOC = REPO_ROOT / "docs" / "benchmarks.md"
METHODS_SECTION = "## Relation methods"
HEADS_SECTION = "## Span heads"

# data set: (config, epochs, what to call it, encoder in words)
DATASETS = {
    "conll04": ("configs/conll04.yaml", 10, "CoNLL04 dev (5 relations; strict span scoring)", "all-MiniLM-L6-v2"),
    "webnlg_star": ("configs/webnlg_star.yaml", 3, "WebNLG* val (171 predicates)", "all-MiniLM-L6-v2"),
    "lic2019": (
        "configs/lic2019_sample.yaml",
        8,
        "LIC2019 sample dev (49 predicates)",
        "random BERT, 4 layers, hidden 256, Chinese vocab",
    ),
}
ENTITY_CONFIG = "configs/conll04_entities.yaml"
METHODS = ("semi_pointer", "gplinker")
# step benchmark: (name, task, heads); heads = entity types, or predicates for GPLinker
HEAD_CASES = (
    ("GlobalPointer entities, 4 types", "entities", 4),
    ("GPLinker, 5 predicates (CoNLL04)", "gplinker", 5),
    ("GPLinker, 49 predicates (LIC2019)", "gplinker", 49),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="methods,heads", help="comma-separated: methods, heads")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every data set (default: per data set)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N sentences, decode N (smoke runs)")
    parser.add_argument("--per-sentence", type=int, default=200, help="dev sentences decoded one at a time")
    parser.add_argument("--no-entities", action="store_true", help="skip the CoNLL04 entity row")
    parser.add_argument("--lengths", default="128,256", help="span heads: sequence lengths")
    parser.add_argument("--batch-size", type=int, default=16, help="span heads: sentences per step")
    parser.add_argument("--steps", type=int, default=5, help="span heads: timed steps (after 2 untimed)")
    parser.add_argument("--write-doc", action="store_true", help=f"replace the two sections in {DOC}")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- workers (one process each) ------------------------------------------------


class _EpochTimer:
    """A Keras callback factory: wall-clock seconds of each training epoch."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return Timer()


def _rate(count, seconds):
    return count / seconds if seconds > 0 else float("nan")


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def train_and_decode(job: dict) -> dict:
    """Train one (config, method) for `epochs`, score the final weights on dev, time decoding."""
    from toolkit.config import load_config
    from toolkit.tasks import pipeline_class

    overrides = [f"training.epochs={job['epochs']}", f"output.dir={job['output']}", "output.overwrite=true"]
    if job["method"] != "entities":
        overrides.append(f"model.method={job['method']}")
    if job.get("limit"):
        overrides.append(f"data.max_examples={job['limit']}")
    config = load_config(REPO_ROOT / job["config"], overrides=overrides)
    pipeline = pipeline_class(config.task)(config, log=lambda line: print(line, file=sys.stderr))
    data = pipeline.read_data()
    dev_texts = list(data.dev.texts[: job["limit"]] if job.get("limit") else data.dev.texts)
    with pipeline.training_run() as run:
        predictor = pipeline.build(data)
        feed = pipeline.training_feed(predictor, data, run)
        pipeline.compile(predictor, feed)
        timer = _EpochTimer()
        steps = feed.steps_per_epoch if feed.steps_per_epoch is not None else len(feed.train)
        feed.model.fit(
            feed.train,
            epochs=config.training.epochs,
            steps_per_epoch=feed.steps_per_epoch,
            callbacks=[timer],
            shuffle=False,
            verbose=0,
        )
        sentences = steps * config.training.batch_size  # the last batch of an epoch may be short
        scores = feed.evaluate()
    decode = predictor.spans if job["method"] == "entities" else predictor.extract
    decode(dev_texts[:64])  # traces the batched shapes
    _, batched_seconds = _timed(decode, dev_texts)
    one_by_one = dev_texts[: job["per_sentence"]]
    batch_size, predictor.batch_size = predictor.batch_size, 1
    decode(one_by_one)  # traces every length of a batch of one
    _, single_seconds = _timed(decode, one_by_one)
    predictor.batch_size = batch_size
    epoch_seconds = timer.seconds[1:] or timer.seconds
    model = predictor.model if job["method"] == "entities" else predictor.extractor
    batched_flops = encoder_flops(model.backbone, predictor.tokenizer, dev_texts, predictor.maxlen, batch_size)
    single_flops = encoder_flops(model.backbone, predictor.tokenizer, one_by_one, predictor.maxlen, 1)
    return {
        "dev_f1": scores["val_micro_f1"],
        "dev_precision": scores["val_precision"],
        "dev_recall": scores["val_recall"],
        "epochs": config.training.epochs,
        "batch_size": config.training.batch_size,
        "steps_per_epoch": steps,
        "train_sentences": len(data.train),
        "epoch_seconds": timer.seconds,
        "train_samples_per_s": _rate(sentences, float(np.median(epoch_seconds))),
        "decode_sentences": len(dev_texts),
        "decode_batched_per_s": _rate(len(dev_texts), batched_seconds),
        "decode_single_sentences": len(one_by_one),
        "decode_single_per_s": _rate(len(one_by_one), single_seconds),
        "decode_batch_size": batch_size,
        "decode_batched_gflops": batched_flops / batched_seconds / 1e9,
        "decode_single_gflops": single_flops / single_seconds / 1e9,
        "matmul_gflops": matmul_gflops(),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def encoder_flops(backbone, tokenizer, texts, maxlen, batch_size) -> float:
    """Forward FLOPs of the encoder's matmuls over `texts` as the decoder batches them (padded).

    Per token `2 * layers * (4 h^2 + 2 h i)` (projections and feed-forward), per row and layer
    `4 * L^2 * h` (the attention scores and their product with the values); the heads, layer norms,
    softmax and GELU are not counted, so this is a floor on the work done.
    """
    from toolkit.batching import batches_by_length

    layers, hidden, inner = backbone.num_layers, backbone.hidden_dim, backbone.intermediate_dim
    encodings = tokenizer.encode_batch(list(texts), maxlen=maxlen)
    total = 0.0
    for _, _, token_ids, _ in batches_by_length(encodings, batch_size, 0, limit=maxlen):
        rows, length = token_ids.shape
        total += 2.0 * layers * (4 * hidden * hidden + 2 * hidden * inner) * rows * length
        total += 4.0 * layers * hidden * rows * length * length
    return total


def matmul_gflops(size=2048, repeats=8) -> float:
    """The machine's float32 matmul speed in this process: `[size, size] @ [size, size]`, GFLOP/s."""
    import tensorflow as tf

    left, right = tf.random.normal((size, size), seed=1), tf.random.normal((size, size), seed=2)
    tf.linalg.matmul(left, right).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        product = tf.linalg.matmul(left, right)
    float(product[0, 0].numpy())
    return 2.0 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def head_step(job: dict) -> dict:
    """Time training steps of one span model on random tokens and random gold spans."""
    import keras

    from toolkit.encoders import load_encoder
    from toolkit.spans.targets import span_targets

    keras.utils.set_random_seed(0)
    encoder = load_encoder({"source": "random", "path": job["encoder"]}, maxlen=job["length"])
    heads, length, batch = job["heads"], job["length"], job["batch_size"]
    rng = np.random.default_rng(0)
    if job["task"] == "entities":
        from toolkit.entities.model import EntityRecognizer

        model = EntityRecognizer(encoder.backbone, [f"T{i}" for i in range(heads)], pad_id=encoder.tokenizer.pad_id)
        kinds = {"y": (heads, True)}
    else:
        from toolkit.relations.gplinker import GPLinkerExtractor

        model = GPLinkerExtractor(encoder.backbone, [f"p{i}" for i in range(heads)], pad_id=encoder.tokenizer.pad_id)
        kinds = {"entities": (2, True), "head_links": (heads, False), "tail_links": (heads, False)}
    model.compile(keras.optimizers.AdamW(1e-4, clipnorm=1.0))
    token_ids = rng.integers(1000, encoder.tokenizer.vocabulary_size, size=(batch, length)).astype("int32")
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids)}

    def random_spans(count, span_heads):
        rows = []
        for _ in range(batch):
            starts = rng.integers(1, length - 8, size=count)
            rows.append([(int(rng.integers(span_heads)), int(s), int(s + rng.integers(0, 6))) for s in starts])
        return span_targets(rows, span_heads, length, ordered=True, width=count)

    targets = {name: random_spans(4, span_heads) for name, (span_heads, _) in kinds.items()}
    y = targets["y"] if job["task"] == "entities" else targets
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2):
        model.train_on_batch(inputs, y)
    seconds = []
    for _ in range(job["steps"]):
        start = time.perf_counter()
        loss = model.train_on_batch(inputs, y)
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "step_ms": 1000 * float(np.median(seconds)),
        "samples_per_s": batch / float(np.median(seconds)),
        "peak_rss_gib": peak / 2**20,
        "rss_before_steps_gib": before / 2**20,
        "logits_per_sentence": (heads if job["task"] == "entities" else 2 + 2 * heads) * length * length,
        "loss_finite": bool(np.all(np.isfinite(np.asarray(loss, dtype="float64")))),
        "parameters": model.count_params(),
    }


def run_worker(job: dict) -> dict:
    """Run `job` in a fresh process; its result is the last line it prints."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    print(f"  running {job['name']} ...", file=sys.stderr, flush=True)
    start = time.time()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-4000:])
        raise SystemExit(f"worker {job['name']} failed (exit {completed.returncode})")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.time() - start, 1)
    print(f"  {job['name']}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


# --- the sections ----------------------------------------------------------------


def load_average():
    return os.getloadavg()[0]


def python_machine_line(load_start, load_end) -> str:
    """The `Machine:` line both sections end with."""
    return f"{machine_line(load_start, load_end)}; Python {platform.python_version()}."


def methods_section(args, minilm) -> str:
    load_start = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.datasets.split(","):
            config, epochs, label, encoder = DATASETS[name]
            epochs = args.epochs or epochs
            methods = list(METHODS) + ([] if args.no_entities or name != "conll04" else ["entities"])
            for method in methods:
                job = {
                    "kind": "train",
                    "name": f"{name} {method}",
                    "config": ENTITY_CONFIG if method == "entities" else config,
                    "method": method,
                    "epochs": epochs,
                    "limit": args.limit,
                    "per_sentence": args.per_sentence,
                    "output": str(Path(scratch) / f"{name}_{method}"),
                }
                rows.append((label, encoder, method, run_worker(job)))
    load_end = load_average()
    command = "python benchmarks/span_benchmark.py --sections methods" + (
        "" if args.datasets == ",".join(DATASETS) else f" --datasets {args.datasets}"
    )
    if args.epochs:
        command += f" --epochs {args.epochs}"
    if args.limit:
        command += f" --limit {args.limit}"
    lines = [
        METHODS_SECTION,
        "",
        "GPLinker (`model.method: gplinker`) against the semi-pointer semi-tagging model (the default), and the "
        "GlobalPointer entity recognizer beside them on CoNLL04: each trained from its shipped config (`configs/"
        "conll04.yaml`, `webnlg_star.yaml`, `lic2019_sample.yaml`, `conll04_entities.yaml`: same data, encoder, "
        "batch size, learning rate and schedule for both methods) for the same fixed number of epochs, with no "
        "early stopping or model selection, and the final weights scored on dev by the pipeline's own scoring "
        "(CoNLL04 strict: spans and types; the others: triple text). Training samples/s: the sentences of an "
        "epoch over its wall-clock time, median of the epochs after the first (which traces). Decoding: "
        "sentences/s over the dev split in the predictor's batches (similar lengths together), and over the "
        f"first {args.per_sentence} dev sentences with the same decoder in batches of one, each after an "
        "untimed pass that traces its shapes. Encoder GFLOP/s: the matmul FLOPs of the encoder's forward "
        "passes over those batches as padded (`encoder_flops` in the script: a floor, heads not counted) over "
        "the decode's wall-clock time.",
        "",
        "| data | encoder | method | epochs | dev F1 | P | R | train samples/s | decode sent/s, batched | "
        "decode sent/s, one at a time | batched speed-up | encoder GFLOP/s, batched / one at a time | peak memory |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, encoder, method, r in rows:
        shown = {"semi_pointer": "semi-pointer", "gplinker": "GPLinker", "entities": "entities (GlobalPointer)"}
        lines.append(
            f"| {label} | {encoder} | {shown[method]} | {r['epochs']} | {r['dev_f1']:.3f} | {r['dev_precision']:.3f} "
            f"| {r['dev_recall']:.3f} | {r['train_samples_per_s']:.1f} | {r['decode_batched_per_s']:.1f} "
            f"| {r['decode_single_per_s']:.1f} | {r['decode_batched_per_s'] / r['decode_single_per_s']:.1f}x "
            f"| {r['decode_batched_gflops']:.0f} / {r['decode_single_gflops']:.0f} | {r['peak_rss_gib']:.1f} GiB |"
        )
    lines += ["", *verdicts(rows), ""]
    lines += [
        f"Command: `{command}`",
        "",
        python_machine_line(load_start, load_end),
        "",
    ]
    return "\n".join(lines)


def verdicts(rows) -> list:
    """One line per data set: which relation method won, by how much, and the decode target."""
    lines = []
    by_data = {}
    for label, _, method, r in rows:
        by_data.setdefault(label, {})[method] = r
    for label, methods in by_data.items():
        if not all(m in methods for m in METHODS):
            continue
        semi, gp = methods["semi_pointer"], methods["gplinker"]
        if f"{gp['dev_f1']:.3f}" == f"{semi['dev_f1']:.3f}":  # a tie as the table shows it
            winner = "neither"
        else:
            winner = "GPLinker" if gp["dev_f1"] > semi["dev_f1"] else "semi-pointer"
        lines.append(
            f"- {label}: **{winner}** scores higher (dev F1 {gp['dev_f1']:.3f} GPLinker, {semi['dev_f1']:.3f} "
            f"semi-pointer); GPLinker trains at {gp['train_samples_per_s'] / semi['train_samples_per_s']:.2f}x and "
            f"decodes at {gp['decode_batched_per_s'] / semi['decode_batched_per_s']:.2f}x the semi-pointer model's "
            "rate."
        )
    spans = [(label, m, r) for label, _, m, r in rows if m in ("gplinker", "entities")]
    met = all(r["decode_batched_per_s"] >= 10 * r["decode_single_per_s"] for _, _, r in spans)
    lowest = min((r["decode_batched_per_s"] / r["decode_single_per_s"] for _, _, r in spans), default=float("nan"))
    lines.append(
        f"- **Target: batched span decoding at least 10x a per-sentence decode of the same model: "
        f"{'met' if met else 'not met'}** (lowest {lowest:.1f}x, over the GPLinker and entity rows)."
    )
    if spans and not met:
        lines.append("- " + decode_cause(spans))
    return lines


def decode_cause(spans) -> str:
    """Why batching cannot give 10x here, from the measured FLOP rates (the encoder's matmuls)."""
    single = [r["decode_single_gflops"] for _, _, r in spans]
    matmul = float(np.median([r["matmul_gflops"] for _, _, r in spans]))
    bounds = sorted(matmul / rate for rate in single)
    return (
        "Why: decoding a span model is one encoder pass per batch, and the encoder does the same matmul "
        f"FLOPs per sentence batched or not. One sentence at a time it ran at {min(single):.0f} to "
        f"{max(single):.0f} GFLOP/s ({min(single) / matmul:.0%} to {max(single) / matmul:.0%} of a large float32 "
        f"matmul's {matmul:.0f} GFLOP/s on this CPU), so even a batched decode at that full matmul speed would "
        f"be only {bounds[0]:.1f}x to {bounds[-1]:.1f}x faster: on 2 CPU cores a sentence alone already keeps "
        "the cores busy with arithmetic. On an accelerator, where one sentence leaves most of the chip idle, "
        "the ratio is the batch's parallelism."
    )


def heads_section(args, minilm) -> str:
    load_start = load_average()
    rows = []
    for name, task, heads in HEAD_CASES:
        for length in (int(value) for value in args.lengths.split(",")):
            job = {
                "kind": "heads",
                "name": f"{name} L={length}",
                "task": task,
                "heads": heads,
                "length": length,
                "batch_size": args.batch_size,
                "steps": args.steps,
                "encoder": minilm,
            }
            rows.append((name, length, run_worker(job)))
    load_end = load_average()
    lines = [
        HEADS_SECTION,
        "",
        f"One training step (forward, backward, AdamW update) of a span model, batch {args.batch_size}, every "
        "sentence at the full length, on a randomly initialised encoder of all-MiniLM-L6-v2's shape (6 layers, "
        "hidden 384, 12 heads, vocabulary 30,522), random token ids and 4 random gold spans per head: the "
        "sparse multi-label categorical crossentropy over every (start, end) pair of every head "
        "(`[batch, heads, L * L]` logits). Heads: GlobalPointer for the entities, GPLinker's default "
        "EfficientGlobalPointer for its entity, head-link and tail-link matrices; head size 64. Median of "
        f"{args.steps} steps after 2 untimed ones; peak memory is the process's peak resident set (encoder, "
        "optimizer state and the step's activations).",
        "",
        "| model | L | logits / sentence | step ms | samples/s | peak memory | loss finite |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, length, r in rows:
        lines.append(
            f"| {name} | {length} | {r['logits_per_sentence']:,} | {r['step_ms']:.0f} | {r['samples_per_s']:.1f} "
            f"| {r['peak_rss_gib']:.2f} GiB | {'yes' if r['loss_finite'] else 'NO'} |"
        )
    lines += [
        "",
        "The span matrices grow with L squared, the encoder with L. "
        "Finiteness under `mixed_float16` and "
        "`mixed_bfloat16` at `[batch, heads, 256 * 256]` is checked by the tests "
        "(`tests/test_global_pointer.py`), not here.",
        "",
        f"Command: `python benchmarks/span_benchmark.py --sections heads --lengths {args.lengths} "
        f"--batch-size {args.batch_size} --steps {args.steps}`",
        "",
        python_machine_line(load_start, load_end),
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        result = train_and_decode(job) if job["kind"] == "train" else head_step(job)
        print(json.dumps(result))
        return
    minilm = minilm_dir()
    os.environ["MINILM_DIR"] = minilm
    sections = args.sections.split(",")
    for section, build, title in (
        ("methods", methods_section, METHODS_SECTION),
        ("heads", heads_section, HEADS_SECTION),
    ):
        if section not in sections:
            continue
        markdown = build(args, minilm)
        print(markdown)
        if args.write_doc:
            write_section(DOC, title, markdown)
            print(f"wrote {title} in {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
