"""The demo scores the docs state are the ones recorded in docs/demo_scores.json, and the demos reach them.

The docs check is quick and always runs. Running the demos themselves (about 8 minutes on
2 CPU cores) is opt-in:

    TOOLKIT_RUN_DEMOS=1 python -m pytest tests/test_demo_scores.py -s

The default suite still notices a change in what the demos score: tests/test_examples.py runs each
example's quick demo and compares its score with the `quick` one recorded beside the full scores,
and tests/test_bert4keras_interop.py runs the bert4keras example whole.
"""

import importlib.util
import json
import os

import pytest

from tests.conftest import DEMO_SCORES, RERUN_DEMOS, demo_scores_script

script = demo_scores_script()


def test_the_docs_state_the_recorded_demo_scores():
    scores = script.load()
    assert script.stated_mismatches(scores) == []
    stated = {key for item in scores["stated"] for key in script.PLACEHOLDER.findall(item["text"])}
    assert {demo for demo, _ in stated} == set(script.DEMOS) == set(scores["demos"])
    for demo, key in stated:
        assert key in scores["demos"][demo]["scores"], f"{demo}.{key}"


def test_rewriting_keeps_each_stated_number_s_decimals_and_finds_a_stale_one(tmp_path):
    (tmp_path / "README.md").write_text("Test micro-F1 about 0.81; dev F1 0.700\nand test F1 0.712 (best epoch 3).\n")
    scores = {
        "demos": {"demo": {"scores": {"test_f1": 0.8946, "dev_f1": 0.9001, "best_epoch": 6}}},
        "stated": [
            {"file": "README.md", "text": "about {demo.test_f1};"},
            {
                "file": "README.md",
                "text": "dev F1 {demo.dev_f1} and test F1 {demo.test_f1} (best epoch {demo.best_epoch})",
            },
        ],
    }
    problems = script.stated_mismatches(scores, root=tmp_path)
    assert len(problems) == 4 and "demo.dev_f1 is stated as 0.700" in problems[1]
    assert script.rewrite_stated(scores, root=tmp_path) == ["README.md"]
    assert (tmp_path / "README.md").read_text() == (
        "Test micro-F1 about 0.89; dev F1 0.900\nand test F1 0.895 (best epoch 6).\n"
    )
    assert script.stated_mismatches(scores, root=tmp_path) == []
    (tmp_path / "README.md").write_text("about 0.89; and about 0.89;\n")  # a stated text must say where it is
    assert "text found 2 times" in script.stated_mismatches(scores, root=tmp_path)[0]
    with pytest.raises(ValueError, match="text found 2 times"):
        script.rewrite_stated(scores, root=tmp_path)
    (tmp_path / "README.md").write_text("reworded\n")
    assert [problem.split(":")[1] for problem in script.stated_mismatches(scores, root=tmp_path)] == [
        " text not found"
    ] * 2


def test_a_run_that_moves_a_score_or_an_epoch_is_reported():
    recorded = {"test_f1": 0.821, "best_epoch": 17, "train_seconds": 120.0}
    measured = {"test_f1": 0.824, "best_epoch": 17, "train_seconds": 90.0}
    assert script.differences("relations", measured, recorded, 0.005) == []
    measured.update(test_f1=0.83, best_epoch=16)
    assert script.differences("relations", measured, recorded, 0.005) == [
        "relations.test_f1: measured 0.83, recorded 0.821 (tolerance 0.005)",
        "relations.best_epoch: measured 16, recorded 17",
    ]


@pytest.mark.skipif(
    os.environ.get("TOOLKIT_RUN_DEMOS") != "1",
    reason="runs every demo to its end (about 8 minutes on 2 CPU cores): set TOOLKIT_RUN_DEMOS=1",
)
@pytest.mark.parametrize("demo", sorted(json.loads(DEMO_SCORES.read_text(encoding="utf-8"))["demos"]))
def test_the_demo_reaches_its_recorded_scores(tmp_path, demo):
    if demo == "bert4keras_interop" and not (
        importlib.util.find_spec("bert4keras") and importlib.util.find_spec("tf_keras")
    ):
        pytest.skip("needs bert4keras and tf-keras (scripts/install-dev)")
    scores = script.load()
    measured = script.measure(demo, tmp_path)
    print(demo, measured)
    recorded = scores["demos"][demo]["scores"]
    assert script.differences(demo, measured, recorded, scores["tolerance"]) == [], RERUN_DEMOS
