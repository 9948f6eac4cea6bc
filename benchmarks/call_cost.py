"""What one model call costs in padded tokens: the figure behind `toolkit.batching.CALL_TOKENS`.

A batch of texts of very unequal lengths (texts a server gathers from its clients) is cut into calls
of similar lengths where that saves more padded tokens than a call costs (`padding_splits`). This
times a trained run's model, through the same `predict_batch` a predictor calls, at a grid of
shapes (rows x padded length, as the predictors pad them), and fits

    seconds a call = overhead + per_token * rows * length

by least squares over the grid's medians. `overhead / per_token` is a call's cost in tokens. The fit
is linear in tokens; attention's part that grows with the square of the length is in the residual
(the table shows each shape's measured and fitted time).

    python benchmarks/call_cost.py /work/runs/goemotions --write-doc
    python benchmarks/call_cost.py RUN_DIR --rounds 3            # a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _docs import machine_line, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## What a model call costs, in padded tokens"
ROWS = (1, 4, 8, 16, 32)
LENGTHS = (8, 16, 32, 64)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a multilabel_classification run folder (its best model)")
    parser.add_argument("--rounds", type=int, default=20, help="timed calls a shape (the median is kept)")
    parser.add_argument("--write-doc", action="store_true", help=f"replace the section in {DOC}")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1; got {args.rounds}.")
    return args


def time_shapes(predictor, rounds: int) -> list:
    """`(rows, length, median seconds)` of `predict_batch` on `predictor`'s model at each shape of the
    grid, its inputs made by the predictor's own preprocessor (a text of `length` tokens, `rows` times)."""
    from toolkit.inference import predict_batch

    measured = []
    for length in LENGTHS:
        text = " ".join(["the"] * (length - 2))  # [CLS] + length - 2 words + [SEP]
        for rows in ROWS:
            inputs = predictor.preprocessor.encode_arrays([text] * rows).model_inputs(sequence_length=length)
            predict_batch(predictor.model, inputs)  # the first call of a shape: out of the timing
            seconds = []
            for _ in range(rounds):
                started = time.perf_counter()
                predict_batch(predictor.model, inputs)
                seconds.append(time.perf_counter() - started)
            measured.append((rows, length, statistics.median(seconds)))
    return measured


def fit(measured: list) -> tuple:
    """Least squares `seconds = overhead + per_token * rows * length`: `(overhead, per_token)`."""
    tokens = np.asarray([rows * length for rows, length, _ in measured], dtype=np.float64)
    seconds = np.asarray([value for _, _, value in measured], dtype=np.float64)
    design = np.stack([np.ones_like(tokens), tokens], axis=1)
    (overhead, per_token), *_ = np.linalg.lstsq(design, seconds, rcond=None)
    return float(overhead), float(per_token)


def section(args, measured, overhead, per_token, load_start, load_end) -> str:
    lines = [
        SECTION,
        "",
        f"`{args.run.name}`'s model called through `toolkit.inference.predict_batch` (as the predictors call "
        f"it) at each shape, the median of {args.rounds} calls after one untimed call, and the least-squares fit "
        "`seconds = overhead + per_token * rows * length` (`benchmarks/call_cost.py`; its docstring says why). "
        f"**Overhead {overhead * 1e3:.2f} ms a call, {per_token * 1e6:.1f} us a padded token: a call costs "
        f"{overhead / per_token:.0f} tokens.** `toolkit.batching.CALL_TOKENS` is the figure the batchers use.",
        "",
        "| rows | padded length | tokens | measured ms | fitted ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for rows, length, seconds in measured:
        lines.append(
            f"| {rows} | {length} | {rows * length} | {seconds * 1e3:.2f} | "
            f"{(overhead + per_token * rows * length) * 1e3:.2f} |"
        )
    lines += [
        "",
        f"Command: `python benchmarks/call_cost.py {args.run} --write-doc`",
        "",
        machine_line(load_start, load_end) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from toolkit.predictors import MultilabelPredictor

    load_start = os.getloadavg()[0]
    predictor = MultilabelPredictor.load(args.run / "best")
    measured = time_shapes(predictor, args.rounds)
    overhead, per_token = fit(measured)
    markdown = section(args, measured, overhead, per_token, load_start, os.getloadavg()[0])
    print(markdown)
    if args.write_doc:
        write_section(DOC, SECTION, markdown)
        print(f"wrote {SECTION} in {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
