"""The benchmark scripts' pure parts: the sections they write into the docs, from given figures.

The measurements themselves take minutes to hours and run by hand (`benchmarks/`); what is
checked here is that a run's figures land in the docs as they were measured: the right rows,
the right differences, the other sections of the doc left alone.
"""

import argparse
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import `_docs` as their neighbour
    yield
    for name in ("_docs", "ema_curves", "budget_comparison", "quality_report", "hf_reference", "hf_comparison"):
        sys.modules.pop(name, None)


def test_write_section_replaces_its_own_section_and_appends_a_new_one(tmp_path):
    from _docs import write_section

    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nintro\n\n## A\n\nold a\n\n## B\n\nkept b\n", encoding="utf-8")
    write_section(doc, "## A", "## A\n\nnew a\n")
    assert doc.read_text(encoding="utf-8") == "# Results\n\nintro\n\n## A\n\nnew a\n\n## B\n\nkept b\n"
    write_section(doc, "## C", "## C\n\nc\n")
    assert doc.read_text(encoding="utf-8").endswith("## B\n\nkept b\n\n## C\n\nc\n")


def test_machine_line_states_the_load_at_both_ends():
    from _docs import machine_line

    line = machine_line(0.84, 1.06, "alone")
    assert line.startswith("Machine: `nproc` = ") and "load average 0.8 at the start and 1.1 at the end (alone)" in line


def _history(*rows):
    names = ("val_micro_f1", "val_micro_f1_average", "val_micro_f1_training")
    return [{"epoch": str(epoch), **dict(zip(names, map(str, row)))} for epoch, row in enumerate(rows, 1)]


def test_the_ema_section_shows_the_kept_score_its_two_parts_and_the_gap_to_the_run_without():
    import ema_curves

    averaged, without = ema_curves.RUNS[0][0], ema_curves.RUNS[1][0]
    curves = {
        averaged: _history((0.18, 0.14, 0.18), (0.60, 0.60, 0.59)),
        without: [{"epoch": "1", "val_micro_f1": "0.17"}, {"epoch": "2", "val_micro_f1": "0.59"}],
    }
    args = argparse.Namespace(epochs=2, limit=None)
    text = ema_curves.section(args, curves, {averaged: 5.2, without: 4.6}, 0.5, 1.2)
    assert (
        "Dev F1 of the averaged run minus the run without, epoch by epoch: +0.010, +0.010 "
        "(the average alone: -0.030, +0.010)." in text
    )
    assert f"| {averaged} | 0.180 | 0.600 | 5 |" in text
    assert "| &nbsp;&nbsp;its average alone | 0.140 | 0.600 | |" in text
    assert "| &nbsp;&nbsp;its training weights | 0.180 | 0.590 | |" in text
    assert f"| {without} | 0.170 | 0.590 | 5 |" in text
    assert "Command: `python benchmarks/ema_curves.py --epochs 2 --write-doc`" in text
    assert "load average 0.5 at the start and 1.2 at the end" in text


def test_the_budget_section_has_a_row_a_run_with_its_best_epoch():
    import budget_comparison

    results = {
        "webnlg_star": {
            "toolkit": {"f1": [0.1, 0.5, 0.4], "seconds": 540.0},
            "bert4keras": {"f1": {"ema": [0.0, 0.0], "raw": [0.2, 0.3]}, "seconds": 510.0},
        }
    }
    args = argparse.Namespace(minutes=8.0, limit=None, configs=budget_comparison.CONFIGS.split(","))
    text = budget_comparison.section(args, results, 0.8, 1.1)
    rows = [line for line in text.splitlines() if line.startswith("| WebNLG*")]
    assert rows == [
        "| WebNLG* | toolkit, the shipped config (its average or training weights, the better) | 3 | 9.0 "
        "| 0.100, 0.500, 0.400 | 0.500 (2) |",
        "| WebNLG* | bert4keras script, its AdamEMA average (as its example scores) | 2 | 8.5 | 0.000, 0.000 "
        "| 0.000 (1) |",
        "| WebNLG* | bert4keras script, the same run's raw weights | 2 | 8.5 | 0.200, 0.300 | 0.300 (2) |",
    ]
    assert "Command: `python benchmarks/budget_comparison.py --minutes 8 --write-doc`" in text


def test_train_cli_stops_the_benchmark_with_the_failed_run_s_message(tmp_path, capsys):
    from _docs import train_cli

    with pytest.raises(SystemExit, match=r"toolkit training failed \(exit 2\)"):
        train_cli(tmp_path / "missing.yaml", ["training.epochs=1"], what="toolkit training")
    err = capsys.readouterr().err
    assert "-m toolkit train " + str(tmp_path / "missing.yaml") + " --set training.epochs=1" in err
    assert "missing.yaml" in err.splitlines()[-1]


# --- The comparison with Hugging Face transformers (benchmarks/hf_reference.py, hf_comparison.py) -----------


def test_the_threshold_rules_tune_on_dev_and_cross_tune_on_its_halves():
    import numpy as np
    from hf_reference import threshold_rows

    # Every positive at logit -0.3, every negative at -1.0: nothing is predicted at 0 (probability 0.5);
    # every threshold between -1.0 and -0.3 is perfect, and the one closest to 0 on the grid is -0.31.
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 1], [1, 0], [1, 1]], dtype="int8")
    logits = np.where(targets == 1, -0.3, -1.0)
    rows = threshold_rows(targets, logits, "macro_f1")
    assert rows["zero"]["micro_f1"] == 0.0 and rows["zero"]["threshold"] == 0.0
    assert rows["zero"]["probabilities"] == [0.5]
    assert rows["tuned"]["threshold"] == -0.31 and rows["tuned"]["micro_f1"] == rows["tuned"]["macro_f1"] == 1.0
    assert rows["tuned"]["probabilities"] == [round(1 / (1 + math.exp(0.31)), 4)]
    assert rows["cross"]["thresholds"] == [-0.31, -0.31] and rows["cross"]["macro_f1"] == 1.0


def test_cross_tuning_scores_each_half_at_the_other_half_s_threshold():
    import numpy as np
    from hf_reference import threshold_rows

    # A threshold tuned on all of dev sees every row; tuned on one half, it can miss the other half's.
    rng = np.random.default_rng(0)
    targets = (rng.random((40, 3)) < 0.3).astype("int8")
    logits = np.where(targets == 1, 0.5, -0.5) + rng.normal(0.0, 0.6, size=targets.shape)
    rows = threshold_rows(targets, logits, "micro_f1")
    assert len(rows["cross"]["thresholds"]) == 2
    assert rows["cross"]["micro_f1"] <= rows["tuned"]["micro_f1"]  # the tuned one has seen the answers


def test_the_reference_and_the_comparison_parse_their_arguments():
    import hf_comparison
    import hf_reference

    args = hf_comparison.parse_args(["speed"])
    assert args.backends == ["tensorflow", "jax", "torch"] and args.max_examples == 1024 and args.rounds == 3
    assert [path.as_posix() for path in args.configs] == ["configs/goemotions.yaml", "configs/reuters.yaml"]
    args = hf_comparison.parse_args(["budget", "--minutes", "0.3", "--max-examples", "64"])
    assert args.minutes == 0.3 and args.max_examples == 64
    assert hf_comparison.parse_args(["inference", "--hf-batch-sizes", "1, 8"]).hf_batch_sizes == [1, 8]
    for bad in (["speed", "--backends", "theano"], ["budget", "--minutes", "0"], ["speed", "--rounds", "0"],
                ["inference", "--hf-batch-sizes", "1,x"], ["budget", "--configs", "configs/nothing.yaml"]):  # fmt: skip
        with pytest.raises(SystemExit):
            hf_comparison.parse_args(bad)
    args = hf_reference.parse_args(
        ["train", "configs/goemotions.yaml", "--output", "out", "--set", "a=1", "--set", "b=2"]
    )
    assert args.overrides == ["a=1", "b=2"] and args.minutes is None and not args.speed
    assert hf_reference.parse_args(["inference", "configs/reuters.yaml", "--batch-sizes", "1,32"]).batch_sizes == [
        1,
        32,
    ]
    with pytest.raises(SystemExit):
        hf_reference.parse_args(["train", "configs/goemotions.yaml", "--output", "out", "--minutes", "-1"])


def test_a_run_s_samples_per_second_leave_out_its_warm_up_epochs():
    from hf_comparison import rate

    measured = rate(640, [30.0, 10.0, 6.0], warmup=1)
    assert measured["samples_per_second"] == 640 * 2 / 16.0 and measured["warmup_seconds"] == 30.0
    with pytest.raises(SystemExit, match="no timed epoch"):
        rate(640, [30.0], warmup=1)


SETTINGS = {"batch_size": 32, "maxlen": 64, "epochs": 4, "monitor": "val_macro_f1"}


def test_the_speed_section_has_a_row_a_side_with_its_ratio_to_transformers():
    import hf_comparison

    def run(rate):
        return {"samples_per_second": rate, "warmup_seconds": 50.0, "examples": 1024}

    rounds = {"tensorflow": [run(90.0), run(100.0)], "jax": [run(120.0), run(130.0)], "transformers": [run(100.0), run(125.0)]}  # fmt: skip
    results = {"configs/goemotions.yaml": {"settings": SETTINGS, "rounds": rounds}}
    args = hf_comparison.parse_args(["speed", "--rounds", "2", "--backends", "tensorflow,jax"])
    text = hf_comparison.speed_section(args, results, 0.3, 1.4)
    assert text.startswith(hf_comparison.SPEED_SECTION + "\n")
    assert (
        "| `configs/goemotions.yaml` | 32 | 64 | toolkit, tensorflow | 95.0 (90.0-100.0) | 0.85x (0.80-0.90) | 50 |"
        in text
    )
    assert (
        "| `configs/goemotions.yaml` | 32 | 64 | toolkit, jax | 125.0 (120.0-130.0) | 1.12x (1.04-1.20) | 50 |" in text
    )
    assert "| `configs/goemotions.yaml` | 32 | 64 | transformers | 112.5 (100.0-125.0) | 1.00x | 50 |" in text
    assert (
        "the toolkit's fastest backend is **jax**, 1.12x transformers' samples/s (TensorFlow, the default: 0.85x)"
        in text
    )
    assert "Fastest toolkit backend at every shape measured: **jax**." in text
    assert (
        "Command: `python benchmarks/hf_comparison.py speed --rounds 2 --backends tensorflow,jax --write-doc`" in text
    )
    assert "load average 0.3 at the start and 1.4 at the end" in text


def test_the_budget_section_has_the_toolkit_row_and_transformers_three_rules():
    import hf_comparison

    toolkit = {
        "metrics": {"dev": {"micro_f1": 0.58, "macro_f1": 0.43}, "best_epoch": 2, "train_seconds": 1300.0,
                    "budget_stopped": {"epoch": 2, "minutes": 21.5}},
        "history": [{"val_macro_f1": "0.40"}, {"val_macro_f1": "0.43"}],
        "process_seconds": 1400.0,
    }  # fmt: skip
    scores = {
        "zero": {"micro_f1": 0.52, "macro_f1": 0.30, "threshold": 0.0, "probabilities": [0.5]},
        "tuned": {"micro_f1": 0.56, "macro_f1": 0.38, "threshold": -1.5, "probabilities": [0.1824]},
        "cross": {"micro_f1": 0.55, "macro_f1": 0.37, "thresholds": [-1.4, -1.6], "probabilities": [0.1978, 0.168]},
    }
    transformers = {
        "epochs": [{"epoch": 1, "dev": {"macro_f1": 0.25}}, {"epoch": 2, "dev": {"macro_f1": 0.30}}],
        "best_epoch": 2, "minutes": 22.0, "process_seconds": 1380.0, "budget_stopped": {"epoch": 2},
        "scores": scores, "versions": {},
    }  # fmt: skip
    results = {
        "configs/goemotions.yaml": {"settings": SETTINGS, "runs": {"toolkit": toolkit, "transformers": transformers}}
    }
    args = hf_comparison.parse_args(["budget", "--minutes", "20"])
    text = hf_comparison.budget_section(args, results, 0.2, 2.0)
    rows = [line for line in text.splitlines() if line.startswith("| GoEmotions |")]
    assert rows == [
        "| GoEmotions | toolkit, the shipped config | threshold 0 (no tuning) | 0 | 0.5800 | 0.4300 | 2 | 2 | 21.5 (23.3) | macro_f1: 0.400, 0.430 |",
        "| GoEmotions | transformers, sigmoid BCE | probability 0.5 (its default) | 0.00 (0.50) | 0.5200 | 0.3000 | 2 | 2 | 22.0 (23.0) | macro_f1: 0.250, 0.300 |",
        "| GoEmotions | transformers, sigmoid BCE | tuned on dev for macro_f1 | -1.50 (0.18) | 0.5600 | 0.3800 | 2 | 2 | 22.0 (23.0) |  |",
        "| GoEmotions | transformers, sigmoid BCE | cross-tuned on dev halves | -1.40 (0.20), -1.60 (0.17) | 0.5500 | 0.3700 | 2 | 2 | 22.0 (23.0) |  |",
    ]  # fmt: skip
    assert "Command: `python benchmarks/hf_comparison.py budget --minutes 20 --write-doc`" in text


def test_the_inference_section_compares_with_the_pipeline_at_its_default_batch_size():
    import hf_comparison

    ready = {
        "tensorflow": {"texts": 512, "batch_size": 256},
        "transformers": {"texts": 512, "mean_tokens": 21.04, "versions": {}},
    }
    rounds = {
        "tensorflow": [{"texts_per_second": 400.0}, {"texts_per_second": 420.0}],
        "transformers": [{"1": 100.0, "32": 300.0}, {"1": 105.0, "32": 280.0}],
    }
    results = {"configs/goemotions.yaml": {"settings": SETTINGS, "ready": ready, "rounds": rounds}}
    args = hf_comparison.parse_args(["inference", "--rounds", "2", "--hf-batch-sizes", "1,32"])
    text = hf_comparison.inference_section(args, results, 0.1, 0.9)
    assert "| `configs/goemotions.yaml` | 64 | 512 | 21.0 | toolkit, tensorflow | `predict`, batch 256 | 410.0 (400.0-420.0) | 4.00x |" in text  # fmt: skip
    assert "| `configs/goemotions.yaml` | 64 | 512 | 21.0 | transformers | `pipeline(..., batch_size=32)` | 290.0 (280.0-300.0) | 2.83x |" in text  # fmt: skip
    assert "| `configs/goemotions.yaml` | 64 | 512 | 21.0 | transformers | `pipeline(..., batch_size=1)` | 102.5 (100.0-105.0) | 1.00x |" in text  # fmt: skip
    assert (
        "Command: `python benchmarks/hf_comparison.py inference --rounds 2 --hf-batch-sizes 1,32 --write-doc`" in text
    )


def test_the_budget_callback_stops_at_the_first_epoch_end_past_the_budget_after_its_evaluation():
    pytest.importorskip("transformers", reason="transformers is installed for the benchmarks only (benchmarks/requirements-hf.txt)")  # fmt: skip
    from hf_reference import make_callback
    from transformers import TrainerControl

    now = [0.0]
    callback = make_callback(max_seconds=600.0, epochs=4, clock=lambda: now[0])
    arguments, control = argparse.Namespace(eval_strategy="epoch"), TrainerControl()
    callback.on_train_begin(arguments, None, control)
    epochs = 0
    while not control.should_training_stop:
        epochs += 1
        callback.on_epoch_begin(arguments, None, control)
        now[0] += 240.0  # the epoch's training steps
        callback.on_step_end(arguments, None, control)
        callback.on_epoch_end(arguments, None, control)
        assert not control.should_training_stop  # checked after the epoch's evaluation, not before
        now[0] += 30.0  # its evaluation
        callback.on_evaluate(arguments, None, control, metrics={"eval_micro_f1": 0.5, "eval_macro_f1": 0.25})
    # 270 s an epoch: 540 s after the second, 810 s after the third, the first epoch end past 600 s
    assert epochs == 3 and callback.budget_stopped == {"epoch": 3, "minutes": 13.5}
    assert [entry["train_seconds"] for entry in callback.epochs] == [240.0] * 3
    assert [entry["dev"] for entry in callback.epochs] == [{"micro_f1": 0.5, "macro_f1": 0.25}] * 3


def test_the_budget_callback_never_stops_the_last_epoch_and_times_without_evaluation():
    pytest.importorskip("transformers", reason="transformers is installed for the benchmarks only (benchmarks/requirements-hf.txt)")  # fmt: skip
    from hf_reference import make_callback
    from transformers import TrainerControl

    now = [0.0]
    callback = make_callback(max_seconds=1.0, epochs=1, clock=lambda: now[0])
    arguments, control = argparse.Namespace(eval_strategy="no"), TrainerControl()
    callback.on_train_begin(arguments, None, control)
    callback.on_epoch_begin(arguments, None, control)
    now[0] += 5.0
    callback.on_step_end(arguments, None, control)
    callback.on_epoch_end(arguments, None, control)
    assert callback.budget_stopped is None and callback.epochs == [
        {"epoch": 1, "train_seconds": 5.0, "clock_seconds": 5.0}
    ]
