"""The weight average of a short run: dev F1 per epoch on WebNLG* with and without `training.ema`.

The shipped WebNLG* config averages the weights (`ema: 0.999`). Keras' plain
average kept `0.999 ** t` of the untrained start after `t` steps, so a run of a
few epochs was scored on mostly random heads (dev F1 0.0001 after two epochs).
The toolkit's average warms up (`toolkit.optimization.ema_decay`), and each
epoch scores both the average and the training weights and keeps the better
(`training.ema_compare`, `toolkit.callbacks.AverageOrTrainingWeights`). This
script trains the shipped config for a few epochs twice, with its average and
with `training.ema=null`, and writes the dev triple F1 of every epoch (the
`val_micro_f1` column of each run's `history.csv`: the kept weights' score, and
the average's and the training weights' beside it) as a table and a plot into
`docs/results.md`.

Each run is `python -m toolkit train` in a process of its own, one after the
other; nothing else should run on the machine meanwhile.

    python benchmarks/ema_curves.py --write-doc                 # 2 x 5 epochs (~30 min on 2 cores)
    python benchmarks/ema_curves.py --epochs 1 --limit 200      # smoke run
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

from _docs import machine_line, minilm_dir, train_cli, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
DOC = REPO_ROOT / "docs" / "results.md"
PLOT = REPO_ROOT / "docs" / "results" / "ema_webnlg_star.png"
SECTION = "## A short run with a weight average (WebNLG*)"
CONFIG = "configs/webnlg_star.yaml"
RUNS = (("with its average (ema 0.999): the better of the two kept", []), ("without (ema null)", ["training.ema=null"]))
PARTS = (("its average alone", "val_micro_f1_average"), ("its training weights", "val_micro_f1_training"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run")
    parser.add_argument("--limit", type=int, default=None, help="train on N sentences (smoke runs)")
    parser.add_argument("--write-doc", action="store_true", help=f"replace the section in {DOC} and the plot")
    return parser.parse_args(argv)


def train(output: Path, epochs: int, limit, extra) -> list:
    """One run of the shipped config; its `history.csv` rows."""
    overrides = [f"training.epochs={epochs}", f"output.dir={output}", "output.overwrite=true", *extra]
    if limit:
        overrides.append(f"data.max_examples={limit}")
    train_cli(CONFIG, overrides)
    with open(output / "history.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.6))
    for label, rows in curves.items():
        axes.plot([int(row["epoch"]) for row in rows], [float(row["val_micro_f1"]) for row in rows], "o-", label=label)
    averaged = curves[RUNS[0][0]]
    if averaged and PARTS[0][1] in averaged[0]:
        epochs = [int(row["epoch"]) for row in averaged]
        axes.plot(epochs, [float(row[PARTS[0][1]]) for row in averaged], "x:", color="gray", label=PARTS[0][0])
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("dev triple F1")
    axes.set_title("WebNLG*, shipped config cut to a short run")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def gap_sentence(curves: dict) -> list:
    """How far the averaged run's dev F1 (kept, and the average's alone) is from the run without, epoch by epoch."""
    averaged, without = curves[RUNS[0][0]], [float(row["val_micro_f1"]) for row in curves[RUNS[1][0]]]

    def gaps(column):
        return ", ".join(f"{float(row[column]) - alone:+.3f}" for row, alone in zip(averaged, without))

    sentence = f"Dev F1 of the averaged run minus the run without, epoch by epoch: {gaps('val_micro_f1')}"
    if averaged and PARTS[0][1] in averaged[0]:
        sentence += f" (the average alone: {gaps(PARTS[0][1])})"
    return [sentence + ".", ""]


def section(args, curves: dict, minutes: dict, load_start: float, load_end: float) -> str:
    epochs = max(len(rows) for rows in curves.values())
    header = "| run | " + " | ".join(f"epoch {epoch}" for epoch in range(1, epochs + 1)) + " | minutes |"
    lines = [
        SECTION,
        "",
        f"`configs/webnlg_star.yaml` (all-MiniLM-L6-v2, batch 32, learning rate 1e-4 with 5% warm-up and linear "
        f"decay over the run) cut to {args.epochs} epochs"
        + (f" on {args.limit} training sentences" if args.limit else "")
        + ", trained twice: with the config's weight average and without it. Dev (val) triple F1 after every "
        "epoch, as `history.csv` logs it. With the average, each epoch scores both the warmed-up average and the "
        "training weights and keeps the better (`training.ema_compare`, on by default): its first row is the kept "
        "score, the two indented rows the average's and the training weights'. The training weights take the same "
        "path with or without an average, so the kept score is never below the run without, up to the noise of "
        "two runs. Before the warm-up (Keras' plain average, scored alone), an earlier run of the config cut to 5 "
        "epochs scored dev F1 0.0001 after two.",
        "",
        *gap_sentence(curves),
        header,
        "|---|" + "---:|" * (epochs + 1),
    ]
    for label, rows in curves.items():
        scores = " | ".join(f"{float(row['val_micro_f1']):.3f}" for row in rows)
        lines.append(f"| {label} | {scores} | {minutes[label]:.0f} |")
        for part, column in PARTS if rows and PARTS[0][1] in rows[0] else ():
            scores = " | ".join(f"{float(row[column]):.3f}" for row in rows)
            lines.append(f"| &nbsp;&nbsp;{part} | {scores} | |")
    lines += [
        "",
        f'<img src="results/{PLOT.name}" width="55%">',
        "",
        f"Command: `python benchmarks/ema_curves.py --epochs {args.epochs}"
        + (f" --limit {args.limit}" if args.limit else "")
        + " --write-doc`",
        "",
        machine_line(load_start, load_end) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ["MINILM_DIR"] = minilm_dir()
    load_start = os.getloadavg()[0]
    curves, minutes = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for index, (label, extra) in enumerate(RUNS):
            start = time.monotonic()
            curves[label] = train(Path(scratch) / f"run{index}", args.epochs, args.limit, extra)
            minutes[label] = (time.monotonic() - start) / 60
    markdown = section(args, curves, minutes, load_start, os.getloadavg()[0])
    print(markdown)
    if args.write_doc:
        plot(curves, PLOT)
        write_section(DOC, SECTION, markdown)
        print(f"wrote {SECTION} in {DOC} and {PLOT}", file=sys.stderr)


if __name__ == "__main__":
    main()
