"""Kill a training run at a random instant, resume it, and check it ends as if never killed.

For each of `--runs` trials, `python -m toolkit train` of a tiny config (a random
one-layer encoder on generated multi-label data, dropout and EMA on, three epochs) is
started, killed with SIGKILL at a random instant, then started again with `--resume`
until it exits 0. The instant is drawn from the span the trial's run lives: the
lifetime of the uninterrupted run (timed first, from its start to its exit), or the
shorter lifetime of a trial that ended before its instant came. Such a trial is not
counted: its folder is removed, the span becomes its lifetime, and it is drawn again
(at most `--redraws` times), so that every trial is really killed. Odd trials draw
uniformly over the whole span (start-up, training, backups, scoring: wherever it
lands); even trials over the part where the run folder holds state (from the first
epoch's start to the end of the span), since start-up takes most of a tiny run. The
trial counts as identical when the files a user reads hold what the uninterrupted
run's hold: `history.csv`, `best.json`, `report.txt` byte for byte, and
`metrics.json` but for `train_seconds`; and when the folder keeps no resume state or
temporary file.

    python benchmarks/kill_anywhere.py                      # 20 trials, ~10 min on 2 cores
    python benchmarks/kill_anywhere.py --runs 3 --seed 1    # a quick look

Prints one line per trial (when the kill landed, where the run stood, how many
redraws and resumes) and summary lines: how many trials were killed before their
end, how many ended identical. Exit status 0 when every trial was killed and is
identical, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from toolkit.config import default_config  # noqa: E402
from toolkit.data.synthetic import write_multilabel_demo  # noqa: E402
from toolkit.runs import RunFolder  # noqa: E402

OVERRIDES = [
    "model.encoder.num_layers=1",
    "model.encoder.hidden_dim=32",
    "model.encoder.num_heads=2",
    "model.encoder.intermediate_dim=64",
    "model.maxlen=48",
    "model.dropout=0.2",
    "training.epochs=3",
    "training.batch_size=16",
    "training.learning_rate=0.003",
    "training.ema=0.9",
    "training.early_stopping_patience=null",
]
SAME_BYTES = ("history.csv", "best.json", "report.txt")
LEFTOVERS = (".tmp", ".old", ".partial")


def train(config_path: Path, *extra: str, output=subprocess.DEVNULL, errors=subprocess.PIPE) -> subprocess.Popen:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "toolkit", "train", str(config_path), *extra],
        stdout=output,
        stderr=errors,
        text=True,
        env=environment,
    )


def write_config(data: Path, folder: Path) -> Path:
    config = default_config("multilabel_classification", data_dir=data, output_dir=folder, overrides=OVERRIDES)
    return config.save(folder.parent / f"{folder.name}.yaml")


def differences(folder: Path, reference: Path) -> list:
    """What differs from the uninterrupted run (empty when identical)."""
    found = []
    for name in SAME_BYTES:
        if not (folder / name).is_file() or (folder / name).read_bytes() != (reference / name).read_bytes():
            found.append(name)
    if (folder / "metrics.json").is_file():
        metrics, expected = (json.loads((path / "metrics.json").read_text()) for path in (folder, reference))
        metrics.pop("train_seconds"), expected.pop("train_seconds")
        if metrics != expected:
            found.append("metrics.json")
    else:
        found.append("metrics.json (missing)")
    left = [path.name for path in folder.rglob("*") if path.name.endswith(LEFTOVERS) or path.name == "backup"]
    return found + [f"left over: {', '.join(sorted(left))}"] * bool(left)


def kill_instant(draw: random.Random, trial: int, span: float, first_epoch: float) -> float:
    """When to kill `trial`, in seconds from its start: uniform over `[0, span]` for odd trials, over
    `[first_epoch, span]` for even ones (the part where the run folder holds state; all of `span` when
    the first epoch starts after it)."""
    low = 0.0 if trial % 2 else min(first_epoch, span)
    return draw.uniform(low, span)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="trials (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill instants")
    parser.add_argument("--redraws", type=int, default=3, help="draws again for a trial that ended first (default 3)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "runs" / "kill_anywhere", help="work folder")
    args = parser.parse_args(argv)

    shutil.rmtree(args.output, ignore_errors=True)
    data = args.output / "data"
    write_multilabel_demo(data, n_train=1200, n_dev=160, n_test=80, seed=3)
    reference = args.output / "uninterrupted"
    started = time.monotonic()
    process = train(write_config(data, reference), output=subprocess.PIPE)
    first_epoch = None
    for line in process.stdout:  # Keras' progress: "Epoch 1/3" when the first epoch starts
        if first_epoch is None and line.startswith("Epoch 1/"):
            first_epoch = time.monotonic() - started
    _, errors = process.communicate()
    duration = time.monotonic() - started
    if process.returncode != 0 or first_epoch is None:
        print(errors[-3000:], file=sys.stderr)
        return 1
    print(
        f"uninterrupted run: {duration:.1f} s, the first epoch starting at {first_epoch:.1f} s; kills drawn in "
        f"[0, {duration:.1f}] s (odd trials) and [{first_epoch:.1f}, {duration:.1f}] s (even trials), the end "
        "moving to the lifetime of a trial that ends first"
    )

    draw = random.Random(args.seed)
    span = duration  # the shortest lifetime of an uninterrupted run seen so far
    identical = killed = redraws = 0
    landings = {}
    for trial in range(1, args.runs + 1):
        folder = args.output / f"trial_{trial:02d}"
        instant, landed, attempts = None, None, 0
        while landed is None and attempts <= args.redraws:
            attempts += 1
            shutil.rmtree(folder, ignore_errors=True)
            config_path = write_config(data, folder)
            instant = kill_instant(draw, trial, span, first_epoch)
            started = time.monotonic()
            process = train(config_path, errors=subprocess.DEVNULL)  # nothing reads it while it runs
            try:
                process.wait(timeout=max(0.0, instant - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                landed = RunFolder(folder).status() if folder.is_dir() else "before the run folder"
                break
            lived = time.monotonic() - started  # it ended first: an uninterrupted run this short
            if process.returncode != 0:
                landed = f"not killed: it failed first (exit {process.returncode})"
                break
            span = min(span, lived)
            redraws += 1
            print(f"trial {trial:2d}: ended at {lived:5.1f} s, before its instant {instant:5.1f} s: drawn again "
                  f"within {span:.1f} s", flush=True)  # fmt: skip
        killed += landed is not None and not landed.startswith("not killed")
        landed = landed or f"not killed: it ended first {attempts} times"
        resumes, code, errors = 0, None, ""
        while code != 0 and resumes < 3:
            resumes += 1
            process = train(config_path, "--resume")
            _, errors = process.communicate()
            code = process.returncode
        problems = differences(folder, reference) if code == 0 else [f"--resume exited {code}: {errors[-300:]!r}"]
        identical += not problems
        landings[landed] = landings.get(landed, 0) + 1
        verdict = "identical" if not problems else "DIFFERS: " + "; ".join(problems)
        print(
            f"trial {trial:2d}: killed at {instant:5.1f} s ({landed}), {attempts - 1} redraw(s), {resumes} resume(s): "
            f"{verdict}",
            flush=True,
        )
    print(
        f"{killed} of {args.runs} trials killed before their end ({redraws} redraw(s) of a trial that ended "
        f"first; the span drawn from ended at {span:.1f} s)"
    )
    print(f"{identical} of {args.runs} killed runs ended identical to the uninterrupted run")
    print("where the kills landed: " + ", ".join(f"{where} {count}" for where, count in sorted(landings.items())))
    return 0 if identical == killed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
