"""Speed of the multi-label categorical crossentropy against sigmoid binary crossentropy.

Times forward + backward (the summed loss, and its gradient with respect to the logits) of
`toolkit.losses.multilabel_categorical_crossentropy` and of the standard multi-label baseline,
`keras.ops.binary_crossentropy(..., from_logits=True)` averaged over the classes, at logits
`[4096, 10000]` float32 with about 1% positive targets, in four modes: TensorFlow eager,
`tf.function`, `tf.function(jit_compile=True)` (XLA), and `jax.jit(jax.value_and_grad(...))`.

A second table compares `sparse_multilabel_categorical_crossentropy` (targets as `[512, 10]`
int32 class indices) with the dense loss (multi-hot `[512, 100000]` float32 targets) at 100,000
classes, with the size in bytes of each label input.

Keras fixes its backend once per process, so each backend runs in a subprocess of its own
(this script with `--worker`), and the parent prints the markdown tables. Within a worker the
two contenders alternate (A B, B A, A B, ...) so that load from other processes on the machine
falls on both alike. A time is the median over the repeats; a ratio is the median of the
per-repeat ratios of two adjacent calls, with its interquartile range in brackets.

    python benchmarks/loss_benchmark.py            # the full run: about 10 minutes on 2 cores
    python benchmarks/loss_benchmark.py --quick    # small shapes, a smoke run of about a minute
    python benchmarks/loss_benchmark.py --write-doc   # also replace "## Loss" in docs/benchmarks.md
"""

import argparse
import functools
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _docs import cpu_model, write_section  # benchmarks/ is on the path (run as a script)

BACKEND_MODES = {"tensorflow": ["TF eager", "tf.function", "tf.function XLA"], "jax": ["jax.jit"]}
TABLES = ("dense", "sparse")
RESULT_MARKER = "RESULT "
FULL_SIZES = dict(repeats=15, batch=4096, classes=10000, sparse_batch=512, sparse_classes=100000)
QUICK_SIZES = dict(repeats=3, batch=256, classes=1000, sparse_batch=64, sparse_classes=10000)
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Loss"
TARGET_RATIO = 1.15  # this loss within 1.15x of sigmoid BCE
TARGET_BYTES_RATIO = 1000  # sparse label input at least 1000x smaller than dense


def comma_list(text, allowed, flag):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise SystemExit(f"{flag} takes a comma-separated list of {', '.join(allowed)}; got {text!r}.")
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes and 3 repeats: a smoke run")
    parser.add_argument("--repeats", type=int, help="timed calls per contender (default 15; quick 3)")
    parser.add_argument("--batch", type=int, help="rows, dense table (default 4096)")
    parser.add_argument("--classes", type=int, help="classes, dense table (default 10000)")
    parser.add_argument("--positive-rate", type=float, default=0.01, help="share of positives, dense table")
    parser.add_argument("--sparse-batch", type=int, help="rows, sparse table (default 512)")
    parser.add_argument("--sparse-classes", type=int, help="classes, sparse table (default 100000)")
    parser.add_argument("--sparse-targets", type=int, default=10, help="targets per row, sparse table")
    parser.add_argument("--backends", default="tensorflow,jax", help="comma-separated: tensorflow, jax")
    parser.add_argument("--tables", default="dense,sparse", help="comma-separated: dense, sparse")
    parser.add_argument("--write-doc", action="store_true", help=f"replace {SECTION} in {DOC}")
    parser.add_argument("--worker", choices=sorted(BACKEND_MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, value in (QUICK_SIZES if args.quick else FULL_SIZES).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("repeats", *FULL_SIZES, "sparse_targets"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}.")
    if not 0.0 < args.positive_rate < 1.0:
        raise SystemExit(f"--positive-rate must lie strictly between 0 and 1; got {args.positive_rate}.")
    if args.sparse_targets > args.sparse_classes:
        raise SystemExit(
            f"--sparse-targets ({args.sparse_targets}) cannot exceed --sparse-classes ({args.sparse_classes})."
        )
    args.backends = comma_list(args.backends, tuple(BACKEND_MODES), "--backends")
    args.tables = comma_list(args.tables, TABLES, "--tables")
    return args


# ---------------------------------------------------------------------------------------------
# Worker: one backend, in a process of its own.


def dense_problem(args, rng):
    logits = (rng.normal(size=(args.batch, args.classes)) * 3.0).astype("float32")
    targets = (rng.random((args.batch, args.classes)) < args.positive_rate).astype("float32")
    return logits, targets


def sparse_problem(args, rng):
    import numpy as np

    logits = (rng.normal(size=(args.sparse_batch, args.sparse_classes)) * 3.0).astype("float32")
    indices = np.stack(
        [rng.choice(args.sparse_classes, args.sparse_targets, replace=False) for _ in range(args.sparse_batch)]
    ).astype("int32")
    multi_hot = np.zeros_like(logits)
    np.put_along_axis(multi_hot, indices, 1.0, axis=-1)
    return logits, indices, multi_hot


def sigmoid_binary_crossentropy(y_true, logits):
    """The baseline: independent sigmoids, averaged over the classes as Keras' loss does."""
    from keras import ops

    return ops.mean(ops.binary_crossentropy(y_true, logits, from_logits=True), axis=-1)


class TensorFlowMode:
    """Builds `(y_true, logits) -> (summed loss, gradient)` in TF eager, tf.function or XLA."""

    def __init__(self, mode):
        import tensorflow as tf

        self.tf, self.mode = tf, mode
        self.to_tensor = tf.convert_to_tensor

    def compile(self, loss):
        tf = self.tf

        def value_and_gradient(y_true, logits):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                total = tf.reduce_sum(loss(y_true, logits))
            return total, tape.gradient(total, logits)

        if self.mode == "TF eager":
            return value_and_gradient
        return tf.function(value_and_gradient, jit_compile=self.mode == "tf.function XLA")

    @staticmethod
    def wait(outputs):
        # Reading a value waits for the op that makes it; CPU kernels finish before returning.
        total, gradient = outputs
        return float(total.numpy()) + float(gradient[0, 0].numpy())


class JaxMode:
    """Builds `jax.jit(jax.value_and_grad(summed loss, argnums=logits))`."""

    def __init__(self, mode):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.to_tensor = jnp.asarray

    def compile(self, loss):
        jnp = self.jnp

        def summed(y_true, logits):
            return jnp.sum(loss(y_true, logits))

        return self.jax.jit(self.jax.value_and_grad(summed, argnums=1))

    def wait(self, outputs):
        total, _ = self.jax.block_until_ready(outputs)
        return float(total)


def time_alternating(first, second, wait, repeats, warmup=2):
    """Seconds per call of two zero-argument callables, run in turns; returns both lists.

    The order alternates (first second, second first, ...) so neither always runs right
    after the other. The warm-up calls compile and fill caches; they are not timed.
    """
    for call in (first, second):
        for _ in range(warmup):
            wait(call())
    seconds = ([], [])
    for repeat in range(repeats):
        order = (0, 1) if repeat % 2 == 0 else (1, 0)
        for index in order:
            start = time.perf_counter()
            wait((first, second)[index]())
            seconds[index].append(time.perf_counter() - start)
    return seconds


def summarize(baseline_seconds, contender_seconds):
    """Median milliseconds of each, and the median and quartiles of the paired ratios."""
    ratios = [contender / baseline for baseline, contender in zip(baseline_seconds, contender_seconds)]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return dict(
        baseline_ms=statistics.median(baseline_seconds) * 1e3,
        contender_ms=statistics.median(contender_seconds) * 1e3,
        ratio=statistics.median(ratios),
        ratio_low=quartiles[0],
        ratio_high=quartiles[2],
    )


def run_worker(args):
    import numpy as np

    backend = args.worker
    os.environ.setdefault("KERAS_BACKEND", backend)
    import keras

    from toolkit.losses import multilabel_categorical_crossentropy, sparse_multilabel_categorical_crossentropy

    if keras.backend.backend() != backend:
        raise SystemExit(f"the {backend} worker runs on Keras backend {keras.backend.backend()!r}.")
    rng = np.random.default_rng(0)
    dense = dense_problem(args, rng) if "dense" in args.tables else None
    sparse = sparse_problem(args, rng) if "sparse" in args.tables else None
    rows = []
    for mode_name in BACKEND_MODES[backend]:
        mode = TensorFlowMode(mode_name) if backend == "tensorflow" else JaxMode(mode_name)
        if dense is not None:
            logits, targets = (mode.to_tensor(array) for array in dense)
            baseline = mode.compile(sigmoid_binary_crossentropy)
            contender = mode.compile(multilabel_categorical_crossentropy)
            seconds = time_alternating(
                functools.partial(baseline, targets, logits),
                functools.partial(contender, targets, logits),
                mode.wait,
                args.repeats,
            )
            rows.append(dict(table="dense", mode=mode_name, **summarize(*seconds)))
        if sparse is not None:
            logits, indices, multi_hot = (mode.to_tensor(array) for array in sparse)
            baseline = mode.compile(multilabel_categorical_crossentropy)
            contender = mode.compile(sparse_multilabel_categorical_crossentropy)
            seconds = time_alternating(
                functools.partial(baseline, multi_hot, logits),
                functools.partial(contender, indices, logits),
                mode.wait,
                args.repeats,
            )
            label_bytes = dict(dense_label_bytes=int(sparse[2].nbytes), sparse_label_bytes=int(sparse[1].nbytes))
            rows.append(dict(table="sparse", mode=mode_name, **summarize(*seconds), **label_bytes))
    versions = {"keras": keras.__version__}
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    else:
        import jax

        versions["jax"] = jax.__version__
    # ru_maxrss is in KiB on Linux: the peak resident memory of this worker.
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = dict(backend=backend, versions=versions, rows=rows, peak_bytes=peak_bytes)
    print(RESULT_MARKER + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# Parent: one subprocess per backend, then the tables.


def run_backend(args, backend):
    command = [sys.executable, os.path.abspath(__file__), "--worker", backend]
    for name in ("repeats", *FULL_SIZES, "sparse_targets", "positive_rate"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--tables", ",".join(args.tables)]
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    # The worker imports `toolkit` from this checkout, installed or not.
    repo_root = str(Path(__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, environment.get("PYTHONPATH")]))
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    results = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not results:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"the {backend} worker failed (exit status {completed.returncode}).")
    return json.loads(results[-1][len(RESULT_MARKER) :])


def machine_description(versions, load_averages):
    model = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    packages = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    return (
        f"`nproc` = {cores}, {model}, no GPU; 1-minute load average {load_averages[0]:.1f} at the start and "
        f"{load_averages[1]:.1f} at the end (a shared machine); Python {sys.version.split()[0]}, {packages}."
    )


def ratio_cell(row):
    return f"{row['ratio']:.2f}x ({row['ratio_low']:.2f}-{row['ratio_high']:.2f})"


# Why the XLA row misses its target; printed under the targets when it does.
SPARSE_CAUSE = (
    "the sparse loss saves memory, not passes. To stay exact when the targets hold most of the "
    "probability mass (no `log(1 - exp(.))` cancellation), it scatters the index lists into the same "
    "dense `[batch, classes]` target mask that the dense loss receives as its input, and then does the "
    "same full-width passes. In eager mode every op is one such pass, so the two differ by the scatter "
    "against the dense loss's conversion of its input, and the paired ratio spreads around 1 with "
    "this machine's noise (the interquartile range in the table)."
)
XLA_CAUSE = (
    "The cause is structural. In TensorFlow 2.21, XLA on CPU runs reductions through YNNPACK, and "
    "YNNPACK fuses none of the elementwise work that feeds a reduction: every reduced expression is "
    "first written out in full. BCE has a single reduction; its compiled program makes about 11 full "
    "passes (reads and writes of a `[batch, classes]` array). This loss takes two stabilised "
    "log-sum-exps, one for the negatives and one for the positives; each writes its masked exponents, "
    "reduces them to a maximum, writes the exponentials and then sums them: about 18 passes, and "
    "18/11 is about 1.6. Three alternatives were tried and were slower under XLA, so they were not "
    "kept: a custom gradient that recomputes the exponentials, a fast path with no maximum chosen by "
    "`ops.cond`, and multiplying by the weights instead of adding their logs. Reaching 1.15x needs a "
    "reduction that takes the maximum and the sum in one pass (an online log-sum-exp), and "
    "`keras.ops` does not provide one."
)


def verdict(met):
    return "met" if met else "not met"


def format_section(args, results, load_averages, command):
    """The "## Loss" section: what was run, the tables, the targets, the command and the machine."""
    rows = [row for result in results for row in result["rows"]]
    versions = {name: version for result in results for name, version in result["versions"].items()}
    dense = [row for row in rows if row["table"] == "dense"]
    sparse = [row for row in rows if row["table"] == "sparse"]
    lines = [
        SECTION,
        "",
        "Forward + backward (the summed loss and its gradient with respect to the logits) of "
        "`multilabel_categorical_crossentropy` against sigmoid binary crossentropy "
        "(`keras.ops.binary_crossentropy(..., from_logits=True)` averaged over the classes). Each backend "
        "runs in its own process; within it the two contenders take turns (A B, B A, ...), 2 untimed "
        f"warm-up calls each, then {args.repeats} timed calls each. The times are medians. The ratio is "
        f"the median of the {args.repeats} ratios of back-to-back pairs, with the interquartile range in "
        "brackets: it is not the quotient of the two median columns, and on a loaded machine the two "
        "can differ.",
        "",
    ]
    if dense:
        lines += [
            f"Logits `[{args.batch}, {args.classes}]` float32, random targets with {args.positive_rate:.0%} positives.",
            "",
            "| mode | sigmoid BCE ms | this loss ms | this loss / BCE | target |",
            "|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {row['mode']} | {row['baseline_ms']:.1f} | {row['contender_ms']:.1f} | {ratio_cell(row)} "
            f"| <= {TARGET_RATIO}x: {verdict(row['ratio'] <= TARGET_RATIO)} |"
            for row in dense
        ]
        lines.append("")
    if sparse:
        label_bytes = sparse[0]["dense_label_bytes"], sparse[0]["sparse_label_bytes"]
        lines += [
            f"Sparse targets against dense targets at {args.sparse_classes:,} classes, {args.sparse_targets} "
            f"targets per row, batch {args.sparse_batch}: logits `[{args.sparse_batch}, {args.sparse_classes}]` "
            f"float32. The sparse loss gets `[{args.sparse_batch}, {args.sparse_targets}]` int32 class indices "
            f"({label_bytes[1]:,} bytes), the dense loss a multi-hot `[{args.sparse_batch}, "
            f"{args.sparse_classes}]` float32 tensor ({label_bytes[0]:,} bytes): "
            f"{label_bytes[0] / label_bytes[1]:,.0f} times as many.",
            "",
            "| mode | dense ms | sparse ms | sparse / dense | target |",
            "|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {row['mode']} | {row['baseline_ms']:.1f} | {row['contender_ms']:.1f} | {ratio_cell(row)} "
            f"| <= 1.00x: {verdict(row['ratio'] <= 1.0)} |"
            for row in sparse
        ]
        lines.append("")
    peaks = ", ".join(f"{result['backend']} {result['peak_bytes'] / 2**30:.1f} GiB" for result in results)
    lines += [f"Peak memory of each worker process: {peaks}.", ""]
    lines += ["Targets:", ""]
    for row in dense:
        lines.append(
            f"- **{row['mode']}, within {TARGET_RATIO}x of sigmoid BCE: {verdict(row['ratio'] <= TARGET_RATIO)}** "
            f"({row['ratio']:.2f}x)."
        )
    missed_xla = any(row["mode"] == "tf.function XLA" and row["ratio"] > TARGET_RATIO for row in dense)
    if sparse:
        bytes_ratio = sparse[0]["dense_label_bytes"] / sparse[0]["sparse_label_bytes"]
        slower = [row for row in sparse if row["ratio"] > 1.0]
        ratios = ", ".join(f"{row['mode']} {row['ratio']:.2f}x" for row in sparse)
        lines.append(
            f"- **Sparse no slower than dense: {verdict(not slower)}** "
            f"({ratios}); "
            f"**label input at least {TARGET_BYTES_RATIO:,}x smaller: {verdict(bytes_ratio >= TARGET_BYTES_RATIO)}** "
            f"({bytes_ratio:,.0f}x)."
        )
        thin = [row for row in sparse if row["contender_ms"] > row["baseline_ms"] and row["ratio"] <= 1.0]
        if thin:
            lines.append(
                "  The paired ratio and the median columns disagree for "
                + ", ".join(row["mode"] for row in thin)
                + " (the sparse median is the larger): there the margin is within the noise of this machine."
            )
    if missed_xla:
        lines += ["", f"Why tf.function XLA misses 1.15x: {XLA_CAUSE}"]
    slower_sparse = [row["mode"] for row in sparse if row["ratio"] > 1.0]
    if slower_sparse:
        lines += ["", f"Why the sparse loss is not faster in {', '.join(slower_sparse)}: {SPARSE_CAUSE}"]
    lines += [
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description(versions, load_averages)}",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    command = " ".join(
        ["python benchmarks/loss_benchmark.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
    )
    load_at_start = os.getloadavg()[0]
    results = [run_backend(args, backend) for backend in args.backends]
    markdown = format_section(args, results, (load_at_start, os.getloadavg()[0]), command)
    print(markdown)
    if args.write_doc:
        write_section(DOC, SECTION, markdown)
        print(f"Wrote the {SECTION!r} section of {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
