"""Where the time of a training step goes, for a shipped config: input, forward, backward, optimizer.

Builds the config's pipeline as `python -m toolkit train` does (`read_data`, `build`,
`training_feed`, `compile`), on the first `--examples` training examples, then measures in
one process:

1. **step**: the wall time of `--steps` training steps through `model.fit` (after `--warmup`
   untimed ones): what a user's epoch is made of, the input pipeline included;
2. **input alone**: the wall time of drawing and padding the same number of batches from the
   config's stream, without training (on 2 cores the stream's work competes with the step's);
3. **op time by phase**: `--steps` steps traced with TensorFlow's profiler, each op's self time
   put in a phase by its name: the optimizer's update (split into gradient clipping, weight
   decay, the Adam update and the weight average), the backward pass (`gradient_tape/`), the
   loss and metrics, and the forward pass (the rest).

`--variants` names the optimizer updates to compare (`keras`: Keras' AdamW op for op; `fused`:
`toolkit.optimization.make_optimizer(fused=True)`, the default; `sparse`: fused, and embedding
rows updated only when looked up, `sparse_updates=True`): each variant is measured in turn in the same process, so their ratios hold under
the same load.

    python benchmarks/step_profile.py configs/goemotions.yaml --write-doc   # ~4 min on 2 cores
    python benchmarks/step_profile.py configs/goemotions.yaml --variants keras,fused --steps 10 --examples 512
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _docs import cpu_model, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Where a training step's time goes"
# `make_optimizer` settings by variant name.
VARIANTS = {"keras": {"fused": False}, "fused": {"fused": True}, "sparse": {"fused": True, "sparse_updates": True}}
PHASES = ("input", "forward", "loss and metrics", "backward", "clip", "weight decay", "update", "average")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a shipped config, e.g. configs/goemotions.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--examples", type=int, default=4096, help="training examples read")
    parser.add_argument("--steps", type=int, default=30, help="timed (and traced) steps per variant")
    parser.add_argument("--warmup", type=int, default=8, help="untimed steps first (tracing)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of --steps per variant; the best counts")
    parser.add_argument("--variants", default="keras,fused,sparse", help="comma-separated optimizer updates to compare")
    parser.add_argument("--write-doc", action="store_true", help=f"replace {SECTION} in {DOC}")
    args = parser.parse_args(argv)
    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    return args


def phase_of(name: str) -> str:
    """The phase of a traced op, from its (lower-cased) name scope."""
    if "adam" in name:
        if "clip_by_norm" in name:
            return "clip"
        if "moving_average" in name or "/ema" in name:
            return "average"
        if "weight_decay" in name:
            return "weight decay"
        return "update"
    if "gradient_tape/" in name or "gradients/" in name:
        return "backward"
    if "compile_loss" in name or "metric" in name or "f1" in name or "precision" in name or "recall" in name:
        return "loss and metrics"
    return "forward"


def traced_phases(tf, run_steps, steps):
    """Op self time (µs) by phase over `steps` traced steps, and by op type."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin

    folder = tempfile.mkdtemp(prefix="step_profile_")
    tf.profiler.experimental.start(folder)
    try:
        run_steps(steps)
    finally:
        tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)
    data, ok = profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise SystemExit("TensorFlow's profiler returned no op statistics.")
    phases, types = {}, {}
    for table in json.loads(data)[:1]:
        names = [column["id"] for column in table["cols"]]
        for row in table["rows"]:
            cells = dict(zip(names, [cell.get("v") if cell else None for cell in row["c"]]))
            op_type, name = cells["type"], cells["operation"].lower()
            if op_type == "IDLE":
                continue
            self_time = float(cells["total_self_time"])
            phase = "input" if ("Dataset" in op_type or "Iterator" in op_type) else phase_of(name)
            phases[phase] = phases.get(phase, 0.0) + self_time
            types[op_type] = types.get(op_type, 0.0) + self_time
    return phases, types


def build(args, variant):
    """The config's pipeline on the first `--examples` examples: `(model, stream, steps, pipeline)`."""
    import keras

    import toolkit.optimization
    from toolkit.config import load_config
    from toolkit.pipeline import expected_warnings_silenced
    from toolkit.tasks import pipeline_class

    overrides = [f"data.max_examples={args.examples}", *args.set]
    config = load_config(args.config, overrides=overrides)
    # The pipelines call `make_optimizer` at compile time; the variant picks its update.
    toolkit.optimization.make_optimizer = functools.partial(MAKE_OPTIMIZER, **VARIANTS[variant])
    keras.utils.set_random_seed(config.training.seed)
    pipeline = pipeline_class(config.task)(config, log=lambda message: None)
    with expected_warnings_silenced():
        data = pipeline.read_data()
        predictor = pipeline.build(data)
        feed = pipeline.training_feed(predictor, data)
        pipeline.compile(predictor, feed)
    return feed, pipeline, data


def measure(args, variant):
    import tensorflow as tf

    from toolkit.pipeline import expected_warnings_silenced

    feed, pipeline, data = build(args, variant)
    model = feed.model

    def run_steps(count):
        with expected_warnings_silenced():
            model.fit(feed.train, epochs=1, steps_per_epoch=count, verbose=0)

    run_steps(args.warmup)
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run_steps(args.steps)
        seconds.append((time.perf_counter() - start) / args.steps)
    iterator = iter(feed.train)
    next(iterator)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(iterator)
    input_seconds = (time.perf_counter() - start) / args.steps
    phases, types = traced_phases(tf, run_steps, args.steps)
    return {
        "variant": variant,
        "step_ms": 1000 * min(seconds),
        "step_ms_median": 1000 * statistics.median(seconds),
        "input_ms": 1000 * input_seconds,
        "phases_ms": {phase: time_us / 1000 / args.steps for phase, time_us in phases.items()},
        "top_types_ms": dict(
            sorted(((op, us / 1000 / args.steps) for op, us in types.items()), key=lambda item: -item[1])[:8]
        ),
        "parameters": int(sum(int(tf.size(weight)) for weight in model.trainable_weights)),
        "examples": len(data.train.texts) if hasattr(data.train, "texts") else None,
    }


def render(args, results, load):
    config = args.config.as_posix()
    lines = [
        SECTION,
        "",
        f"A training step of `{config}` ({', '.join(args.set) or 'as shipped'}) on its first {args.examples:,} "
        f"training examples, batch and maxlen as the config sets them. **Step** is the wall time of a step "
        f"through `model.fit` (the best of {args.repeats} runs of {args.steps} steps after {args.warmup} "
        "untimed ones, the input pipeline included); **input alone** draws and pads the same batches without "
        "training. The phases are the self time of the ops of "
        f"{args.steps} steps traced with TensorFlow's profiler, by name scope (the optimizer's ops split into "
        "gradient clipping, weight decay, the Adam update and the weight average); the op time of two "
        "cores can exceed the wall time.",
        "",
        "| optimizer update | step ms | input alone ms | " + " | ".join(f"{p} ms" for p in PHASES) + " |",
        "|---|---:|---:|" + "---:|" * len(PHASES),
    ]
    for result in results:
        phases = result["phases_ms"]
        total = sum(phases.values())
        cells = [f"{phases.get(p, 0.0):.1f} ({phases.get(p, 0.0) / total:.0%})" for p in PHASES]
        lines.append(
            f"| {result['variant']} | {result['step_ms']:.0f} | {result['input_ms']:.1f} | " + " | ".join(cells) + " |"
        )
    base = results[0]
    for result in results[1:]:
        lines += [
            "",
            f"`{result['variant']}` against `{base['variant']}`: step {base['step_ms'] / result['step_ms']:.2f}x.",
        ]
    lines += [
        "",
        "Largest op types (ms a step, first variant): "
        + ", ".join(f"{op} {ms:.1f}" for op, ms in results[0]["top_types_ms"].items())
        + ".",
        "",
        f"Command: `python benchmarks/step_profile.py {config}"
        + "".join(f" --set {item}" for item in args.set)
        + (f" --variants {','.join(args.variants)}" if args.variants != ["keras", "fused", "sparse"] else "")
        + " --write-doc`",
        "",
        f"Machine: `nproc` = {os.cpu_count()}, {cpu_model()}, no GPU, load average {load[0]:.1f} at the start "
        f"and {load[1]:.1f} at the end; Python {platform.python_version()}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO_ROOT))
    global MAKE_OPTIMIZER
    import toolkit.optimization

    MAKE_OPTIMIZER = toolkit.optimization.make_optimizer
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants takes {', '.join(VARIANTS)}; got {unknown}.")
    load_start = os.getloadavg()[0]
    results = []
    for variant in args.variants:
        result = measure(args, variant)
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
    text = render(args, results, (load_start, os.getloadavg()[0]))
    print(text)
    if args.write_doc:
        write_section(DOC, SECTION, text)


if __name__ == "__main__":
    main()
