"""The benchmark scripts' pure parts: the sections they write into the docs, from given figures.

The measurements themselves take minutes to hours and run by hand (`benchmarks/`); what is
checked here is that a run's figures land in the docs as they were measured: the right rows,
the right differences, the other sections of the doc left alone; and the rules the serving and
kill benchmarks judge by (percentiles, FLOPs a text, a flat memory, a kill instant, what a bad
request must get), with one short fault run of a real server against a tiny run.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import `_docs` as their neighbour
    yield
    modules = ("_docs", "_serving", "ema_curves", "budget_comparison", "serve_load", "serve_faults", "kill_anywhere")
    for name in (*modules, "quality_report", "hf_reference", "hf_comparison", "call_cost"):
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


def test_the_budget_section_of_other_configs_has_its_own_title_and_their_settings():
    import budget_comparison

    training = argparse.Namespace(
        batch_size=32, learning_rate=1e-4, warmup_ratio=0.05, decay="linear", epochs=12, weight_decay=0.01,
        ema=0.999, early_stopping_patience=3,
    )  # fmt: skip
    encoder = argparse.Namespace(path="/home/someone/.cache/pretrained/m3e-small")
    config = argparse.Namespace(training=training, model=argparse.Namespace(encoder=encoder))
    settings = budget_comparison.settings_text(config)
    assert settings == (
        "m3e-small, batch 32, learning rate 0.0001, 5% warm-up and linear decay over 12 epochs, weight decay 0.01, "
        "clipping at norm 1, the warmed-up weight average at 0.999, early stopping after 3 epochs without a better "
        "dev F1"
    )
    results = {
        "lic2019_sample_m3e": {
            "settings": settings,
            "toolkit": {"f1": [0.2, 0.6], "seconds": 600.0},
            "bert4keras": {"f1": {"raw": [0.1, 0.3]}, "seconds": 630.0},
        }
    }
    args = argparse.Namespace(minutes=30.0, limit=None, configs=[Path("configs/lic2019_sample_m3e.yaml")])
    text = budget_comparison.section(args, results, 0.8, 1.1)
    title = "## The same minutes for each: LIC2019 sample, m3e-small against a bert4keras script"
    assert budget_comparison.section_title(args) == title and text.startswith(title + "\n")
    assert "(LIC2019 sample, m3e-small: m3e-small, batch 32" in text
    assert "| LIC2019 sample, m3e-small | bert4keras script | 2 | 10.5 | 0.100, 0.300 | 0.300 (2) |" in text
    assert "--configs configs/lic2019_sample_m3e.yaml --write-doc`" in text


def test_train_cli_stops_the_benchmark_with_the_failed_run_s_message(tmp_path, capsys):
    from _docs import train_cli

    with pytest.raises(SystemExit, match=r"toolkit training failed \(exit 2\)"):
        train_cli(tmp_path / "missing.yaml", ["training.epochs=1"], what="toolkit training")
    err = capsys.readouterr().err
    assert "-m toolkit train " + str(tmp_path / "missing.yaml") + " --set training.epochs=1" in err
    assert "missing.yaml" in err.splitlines()[-1]


# --- serving: the rules the load and fault benchmarks judge by ------------------------------


def test_percentiles_are_nearest_rank_values_that_were_measured():
    from _serving import latency_summary, percentile

    assert [percentile(range(1, 101), share) for share in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([0.3, 0.1, 0.2], 50) == 0.2 and percentile([0.3, 0.1, 0.2], 1) == 0.1
    assert percentile([7.0], 99) == 7.0
    summary = latency_summary([index / 1000 for index in range(1, 1001)])  # 1 ms ... 1000 ms
    assert summary == pytest.approx({"p50": 500.0, "p95": 950.0, "p99": 990.0, "mean": 500.5})
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_encoder_flops_count_the_dense_layers_and_attention_of_a_tiny_config(tmp_path):
    from _serving import encoder_dims, encoder_flops

    dims = {"layers": 2, "hidden": 4, "intermediate": 8, "heads": 2}
    # per token and layer 2 * (4 * 4^2 + 2 * 4 * 8) = 256; per layer 4 * 3^2 * 4 = 144 for 3 tokens
    assert encoder_flops(dims, 3) == 2 * (256 * 3 + 144) == 1824
    assert encoder_flops(dims, 0) == 0
    model = tmp_path / "model.keras"  # the backbone's config as a saved task model holds it
    config = {"class_name": "MultilabelTextClassifier", "config": {"backbone": {"config": {
        "num_layers": 2, "hidden_dim": 4, "intermediate_dim": 8, "num_heads": 2, "vocabulary_size": 30}}}}  # fmt: skip
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    assert encoder_dims(model) == dims
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"config": {"units": 3}}))
    with pytest.raises(ValueError, match="no encoder config"):
        encoder_dims(tmp_path / "other.keras")


def test_memory_is_flat_when_the_second_half_s_slope_adds_less_than_the_bound():
    from _serving import MIB, fitted_slope, memory_trend

    assert fitted_slope([(0, 1), (1, 3), (2, 5)]) == 2 and fitted_slope([(1, 5)]) == 0
    warm_then_flat = [(t, 1000 * MIB + min(t, 20) * 4 * MIB + (t % 2) * MIB // 2) for t in range(61)]
    trend = memory_trend(warm_then_flat, bound=20 * MIB)
    assert (trend.start, trend.peak, trend.seconds) == (1000 * MIB, 1080 * MIB + MIB // 2, 60)
    assert trend.flat and abs(trend.growth) < MIB  # the warm-up's 80 MiB is in the first half
    leaking = [(t, 1000 * MIB + t * MIB // 2) for t in range(61)]  # 0.5 MiB a second: 30 MiB a minute
    trend = memory_trend(leaking, bound=20 * MIB)
    assert trend.slope == pytest.approx(MIB / 2) and trend.growth == pytest.approx(30 * MIB) and not trend.flat
    assert memory_trend(leaking, bound=40 * MIB).flat
    with pytest.raises(ValueError, match="at least 3 samples"):
        memory_trend([(0, 1), (1, 1)], bound=MIB)


def test_answers_match_to_score_rounding_and_nothing_else():
    from _serving import records_match

    record = {"text": "a", "labels": ["x"], "scores": {"x": 1.25, "y": -0.5}}
    assert records_match([record], [{"text": "a", "labels": ["x"], "scores": {"x": 1.2500001, "y": -0.5}}])
    assert not records_match([record], [{"text": "a", "labels": ["x"], "scores": {"x": 1.26, "y": -0.5}}])
    assert not records_match([record], [{"text": "a", "labels": ["y"], "scores": {"x": 1.25, "y": -0.5}}])
    assert not records_match([record], [record, record]) and not records_match(1, True)
    triple = {"spo_list": [{"subject": "A", "predicate": "p", "object": "B", "subject_span": [0, 1]}]}
    assert records_match([triple], [json.loads(json.dumps(triple))])


def test_each_bad_request_kind_is_what_the_server_s_own_checks_answer_with_its_status():
    from serve_faults import KINDS, bad_request

    from toolkit.serving.limits import ServeLimits
    from toolkit.serving.validation import RequestError, check_content_type, parse_predict_body

    limits = ServeLimits()
    assert len(KINDS) == 10
    for kind in KINDS:
        statuses = set()
        for seed in range(40):
            bad = bad_request(kind, random.Random(seed), "a good text, quite short", limits)
            statuses.add(bad.status)
            assert 400 <= bad.status < 500 and bad.raw().startswith(f"{bad.method} {bad.path} HTTP/1.1\r\n".encode())
            if (bad.method, bad.path) != ("POST", "/predict"):
                assert kind == "wrong method or path"
                continue
            with pytest.raises(RequestError) as raised:
                check_content_type(bad.headers.get("Content-Type"))
                parse_predict_body(bad.body, bad.headers.get("Content-Type"), limits)
            assert raised.value.status == bad.status, (kind, seed, raised.value.message)
    assert statuses == {404, 405}  # the last kind: the router's answers, not the body checks


def test_a_bad_request_s_answer_must_be_its_4xx_with_one_json_line():
    from serve_faults import error_problem

    headers = {"Content-Type": "application/json; charset=utf-8"}
    assert error_problem(422, headers, b'{"error": "\'texts\' is empty"}', 422) is None
    assert "expected 413" in error_problem(500, headers, b'{"error": "x"}', 413)
    assert "Content-Type" in error_problem(400, {"Content-Type": "text/plain"}, b'{"error": "x"}', 400)
    assert "more than one line" in error_problem(400, headers, b'{\n"error": "x"}', 400)
    assert "not {" in error_problem(400, headers, b'{"error": "x", "detail": 1}', 400)
    assert "empty" in error_problem(400, headers, b'{"error": " "}', 400)


def test_the_fault_section_has_a_row_a_check_and_one_a_kind_of_bad_request():
    import serve_faults
    from serve_faults import KINDS, Check

    kinds = {kind: {"right": 2, "statuses": {422: 2}, "problems": [], "example": "'texts' is empty"} for kind in KINDS}
    kinds["wrong method or path"] = {"right": 1, "statuses": {404: 1, 405: 1}, "problems": [], "example": "a | b"}
    checks = [Check("soak: resident memory flat, every answer right", True, "1,000 requests"), Check("x", False, "y")]
    args = argparse.Namespace(rss_bound_mib=20.0)
    text = serve_faults.section(args, ["/runs/goemotions", "--per-kind", "2"], [{"run": Path("/runs/goemotions"),
                                "checks": checks, "kinds": kinds}], 0.1, 1.0)  # fmt: skip
    assert "| goemotions | soak: resident memory flat, every answer right | 1,000 requests | yes |" in text
    assert "| goemotions | x | y | NO |" in text
    assert "| malformed JSON | 422 | 2 of 2 | 'texts' is empty |" in text
    assert "| wrong method or path | 404/405 | 1 of 2 | a \\| b |" in text
    assert "Command: `python benchmarks/serve_faults.py /runs/goemotions --per-kind 2 --write-doc`" in text
    assert "less than 20 MiB: 20 MiB is about" in text


def test_serve_load_s_tables_put_each_figure_and_the_targets_where_they_belong(tmp_path):
    import serve_load
    from _docs import write_block

    def row(rate, p50):
        return {"texts": 1024, "rate": rate, "p50": p50, "p95": 2 * p50, "p99": 3 * p50, "mean": p50,
                "texts_per_call": rate / 100, "server_cores": 1.5, "client_cores": 0.25, "failures": []}  # fmt: skip

    result = {
        "name": "goemotions", "task": "multilabel_classification", "texts": 1024, "distinct_texts": 1000,
        "serve": {"on": {1: row(100.0, 9.5), 8: row(500.0, 15.0), 32: row(900.0, 35.0)},
                  "off": {1: row(110.0, 9.0), 8: row(200.0, 40.0), 32: row(200.0, 160.0)}},
        "predict_file": {"texts": 1024, "rate": 1500.0, "chunk": 2048, "batch": 32},
        "saved_model": None,
        "work": {"dims": {"layers": 6, "hidden": 384, "intermediate": 1536, "heads": 12}, "maxlen": 64,
                 "mean_tokens": 20.0, "over_maxlen": 3, "flops": 1e9, "flops_at_maxlen": 4e9},
    }  # fmt: skip
    args = argparse.Namespace(clients=[1, 8, 32], requests=1024, matmul_size=2048)
    text = serve_load.section(args, ["/runs/goemotions"], [result], (990.0, 1000.0), 0.2, 1.9)
    assert (
        "| serve, batching on (its defaults) | 32 | 1,024 | 900.0 | 35.0 | 70.0 | 105.0 | 9.0 | 1.50 + 0.25 |" in text
    )
    assert "| serve, batching off (`--max-batch-texts 1`) | 32 | 1,024 | 200.0 | 160.0 | 320.0 | 480.0 |" in text
    assert "| exported SavedModel, `serving_default` in this process | | | not measured (no --saved-model) |" in text
    assert "over 1.000 GFLOP a text (each text's own tokens, nothing padded) | | | 1,000.0 |" in text
    assert "| FLOP limit at maxlen 64 (every text padded to it; 4.000 GFLOP a text) | | | 250.0 |" in text
    assert (
        "Serve at 32 clients: 4.50x batching off at 32 clients (target >= 3x: met); 90% of the FLOP limit "
        "(target >= 50%: met; 360% of the limit at maxlen)." in text
    )
    assert "Command: `python benchmarks/serve_load.py /runs/goemotions --write-doc --write-readme`" in text
    assert "990.0 GFLOP/s before the servers, 1,000.0 after" in text
    result["serve"]["off"][32] = row(450.0, 70.0)
    block = serve_load.readme_block(args, [result], (990.0, 1000.0))
    assert (
        "| goemotions (multilabel_classification) | 100 / 500 / 900 | 35.0 / 105.0 | 450 | 1,500 | not measured "
        "| 1,000 | 2.0x (not met: >= 3x) | 90% (met: >= 50%) |" in block
    )
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- serve_load: begin -->\nold\n<!-- serve_load: end -->\nafter\n", encoding="utf-8")
    write_block(readme, "serve_load", block)
    assert readme.read_text(encoding="utf-8") == (
        "intro\n<!-- serve_load: begin -->\n" + block + "<!-- serve_load: end -->\nafter\n"
    )
    with pytest.raises(SystemExit, match="no '<!-- other: begin -->'"):
        write_block(readme, "other", block)


def test_texts_for_the_load_are_a_seeded_sample_repeated_when_short():
    from serve_load import pick_texts

    assert sorted(pick_texts(["a", "b", "c"], 3, seed=0)) == ["a", "b", "c"]
    assert pick_texts(["a", "b", "c"], 7, seed=1) == pick_texts(["a", "b", "c"], 7, seed=1)
    assert pick_texts(["a", "b"], 5, seed=0)[:2] * 3 == pick_texts(["a", "b"], 6, seed=0)


# --- kill_anywhere: every trial killed -----------------------------------------------------------


def test_kill_instants_fall_inside_the_span_a_trial_lives():
    from kill_anywhere import kill_instant

    draw = random.Random(0)
    odd = [kill_instant(draw, 1, span=30.0, first_epoch=12.0) for _ in range(2000)]
    even = [kill_instant(draw, 2, span=30.0, first_epoch=12.0) for _ in range(2000)]
    assert 0 <= min(odd) < 1 and 29 < max(odd) <= 30  # the whole span, start-up included
    assert 12 <= min(even) < 13 and 29 < max(even) <= 30  # from the first epoch on
    assert sum(instant < 15 for instant in odd) == pytest.approx(1000, rel=0.1)  # uniform
    assert kill_instant(draw, 2, span=10.0, first_epoch=12.0) == 10.0  # a span shorter than start-up


# --- one short fault run of a real server ----------------------------------------------------


@pytest.mark.slow  # about 35 s on 2 idle cores (training, two server starts), a minute when busy
def test_serve_faults_passes_every_check_against_a_tiny_classification_run(tmp_path):
    """The whole script at tiny counts: 2 bad requests a kind, a 2 s soak, kill -9 after 1 s. Two seconds
    cannot tell a leak from the warm-up, so the memory bound is out of reach here; the rule is tested above."""
    from tests.conftest import REPO_ROOT, TINY_ENCODER
    from toolkit.classification.pipeline import ClassificationPipeline
    from toolkit.config import default_config
    from toolkit.data.synthetic import write_multilabel_demo

    write_multilabel_demo(tmp_path / "data", n_train=120, n_dev=20, n_test=20, seed=5)
    overrides = [*TINY_ENCODER, "model.maxlen=48", "training.epochs=1", "training.batch_size=16",
                 "training.early_stopping_patience=null"]  # fmt: skip
    config = default_config(
        "multilabel_classification", data_dir=tmp_path / "data", output_dir=tmp_path / "run", overrides=overrides
    )
    ClassificationPipeline(config, log=lambda message: None).train()
    command = [sys.executable, str(BENCHMARKS / "serve_faults.py"), str(tmp_path / "run"), "--per-kind", "2",
               "--fault-clients", "4", "--good", "4", "--soak-seconds", "2", "--sample-seconds", "0.25",
               "--soak-clients", "8", "--kill-clients", "8", "--kill-after", "1", "--after-restart", "1",
               "--rss-bound-mib", "100000", "--ready-seconds", "300"]  # fmt: skip
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "every check passed" and not any(line.lstrip().startswith("FAIL") for line in lines)
    assert "ok   10 kinds of bad request x 2: 20 of 20 the kind's 4xx with one JSON line" in done.stdout
    assert "ok   good answers after the bad requests: 4 of 4 equal" in done.stdout
    assert "ok   kill -9 under load, restart on the same port, served again: 8 clients; SIGKILL" in done.stdout
    assert "ok   SIGTERM at the end: exit status 0" in done.stdout


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


def test_the_budget_callback_within_an_epoch_stops_at_the_first_step_past_the_budget():
    pytest.importorskip("transformers", reason="transformers is installed for the benchmarks only (benchmarks/requirements-hf.txt)")  # fmt: skip
    from hf_reference import make_callback
    from transformers import TrainerControl, TrainerState

    now = [0.0]
    callback = make_callback(max_seconds=100.0, epochs=4, within_epoch=True, clock=lambda: now[0])
    arguments, control, state = argparse.Namespace(eval_strategy="epoch"), TrainerControl(), TrainerState()
    callback.on_train_begin(arguments, state, control)
    callback.on_epoch_begin(arguments, state, control)
    steps = 0
    while not control.should_training_stop:
        steps += 1
        now[0] += 30.0
        state.global_step, state.epoch = steps, steps / 10
        callback.on_step_end(arguments, state, control)
    assert steps == 4 and callback.budget_stopped == {"epoch": 1, "step": 4, "minutes": 2.0}
    callback.on_epoch_end(arguments, state, control)  # Trainer ends the epoch, then evaluates it
    now[0] += 6.0
    callback.on_evaluate(arguments, state, control, metrics={"eval_micro_f1": 0.5})
    assert callback.epochs == [
        {"epoch": 1, "train_seconds": 120.0, "epochs_trained": 0.4, "clock_seconds": 126.0, "dev": {"micro_f1": 0.5}}
    ]
    assert callback.budget_stopped["minutes"] == 2.0  # the clock at the stop; the evaluation after it is in epochs


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


def test_call_cost_fits_a_call_s_overhead_and_a_token_s_cost():
    import call_cost

    measured = [(rows, length, 0.004 + 6e-5 * rows * length) for length in (8, 16, 32) for rows in (1, 8, 32)]
    overhead, per_token = call_cost.fit(measured)
    assert overhead == pytest.approx(0.004) and per_token == pytest.approx(6e-5)
    args = argparse.Namespace(run=Path("/runs/goemotions"), rounds=5)
    text = call_cost.section(args, measured, overhead, per_token, 0.2, 0.4)
    assert "**Overhead 4.00 ms a call, 60.0 us a padded token: a call costs 67 tokens.**" in text
    assert "| 32 | 32 | 1024 | 65.44 | 65.44 |" in text
    assert "Command: `python benchmarks/call_cost.py /runs/goemotions --write-doc`" in text
