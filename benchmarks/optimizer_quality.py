"""Does an optimizer setting change what a shipped config learns? Dev scores with and without it.

Trains the same config twice through the command line, as a user would, once as shipped and once
with `--set` overrides (by default `training.sparse_embedding_updates=true`: embedding rows
updated only when looked up), on the first `--examples` training examples for `--epochs`, and
writes a table of the dev scores and training seconds of both runs (from their `metrics.json`).
The runs are seeded alike; they differ only by the overrides.

    python benchmarks/optimizer_quality.py configs/goemotions.yaml --examples 12000 --write-doc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from _docs import cpu_model, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Row-wise embedding updates: what they cost in dev score"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a shipped classification config")
    parser.add_argument("--examples", type=int, default=12000, help="training examples read (data.max_examples)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--set", action="append", default=None, metavar="KEY=VALUE",
        help="the setting compared (default training.sparse_embedding_updates=true)",
    )  # fmt: skip
    parser.add_argument("--keep", type=Path, help="keep the two run folders under this folder")
    parser.add_argument("--write-doc", action="store_true", help=f"replace {SECTION} in {DOC}")
    args = parser.parse_args(argv)
    args.set = args.set or ["training.sparse_embedding_updates=true"]
    return args


def train(config, output, settings):
    command = [sys.executable, "-m", "toolkit", "train", str(config)]
    for setting in settings + [f"output.dir={output}"]:
        command += ["--set", setting]
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    subprocess.run(command, check=True, env=environment, cwd=REPO_ROOT)
    return json.loads((output / "metrics.json").read_text(encoding="utf-8"))


def main(argv=None):
    args = parse_args(argv)
    common = [f"data.max_examples={args.examples}", f"training.epochs={args.epochs}"]
    load_start = os.getloadavg()[0]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="optimizer_quality_"))
    runs = {}
    for name, settings in (("as shipped", common), (", ".join(args.set), common + args.set)):
        runs[name] = train(args.config, folder / ("base" if name == "as shipped" else "changed"), settings)
    load_end = os.getloadavg()[0]
    scores = sorted(runs["as shipped"]["dev"].keys() & {"micro_f1", "macro_f1", "samples_f1", "subset_accuracy"})
    lines = [
        SECTION,
        "",
        f"`{args.config.as_posix()}` trained twice on its first {args.examples:,} training examples for "
        f"{args.epochs} epoch(s), as shipped and with `{' '.join(args.set)}`; dev scores and training time "
        "from each run's `metrics.json` (one seed each: differences of a few thousandths are within what "
        "another seed would move).",
        "",
        "| run | " + " | ".join(f"dev {score}" for score in scores) + " | best epoch | training s |",
        "|---|" + "---:|" * (len(scores) + 2),
    ]
    for name, metrics in runs.items():
        cells = " | ".join(f"{metrics['dev'][score]:.4f}" for score in scores)
        lines.append(f"| {name} | {cells} | {metrics.get('best_epoch')} | {metrics.get('train_seconds') or 0:.0f} |")
    lines += [
        "",
        f"Command: `python benchmarks/optimizer_quality.py {args.config.as_posix()} --examples {args.examples}"
        + (f" --epochs {args.epochs}" if args.epochs != 1 else "")
        + "".join(f" --set {item}" for item in args.set if item != "training.sparse_embedding_updates=true")
        + " --write-doc`",
        "",
        f"Machine: `nproc` = {os.cpu_count()}, {cpu_model()}, no GPU, load average {load_start:.1f} at the start "
        f"and {load_end:.1f} at the end (the runs themselves on 2 cores); Python {platform.python_version()}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_doc:
        write_section(DOC, SECTION, text)


if __name__ == "__main__":
    main()
