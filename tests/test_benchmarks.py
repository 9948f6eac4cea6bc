"""The benchmark scripts' pure parts: the sections they write into the docs, from given figures.

The measurements themselves take minutes to hours and run by hand (`benchmarks/`); what is
checked here is that a run's figures land in the docs as they were measured: the right rows,
the right differences, the other sections of the doc left alone.
"""

import argparse
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import `_docs` as their neighbour
    yield
    for name in ("_docs", "ema_curves", "budget_comparison"):
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
