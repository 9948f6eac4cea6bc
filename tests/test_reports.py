"""Report numbers against hand counts and scikit-learn; plots and writers on disk."""

import doctest
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from toolkit import atomic, plots
from toolkit import scores as scoring

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def random_multilabel(rng, rows=80, classes=6):
    targets = (rng.random((rows, classes)) < 0.3).astype(np.int32)
    logits = rng.normal(size=(rows, classes)) + 1.5 * (targets - 0.5)
    targets[:4] = 0  # rows with no labels
    targets[:, -1] = 0  # a label with no support
    return targets, logits


def sklearn_f1(targets, predictions, average):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skm.f1_score(targets, predictions, average=average, zero_division=0)


# --------------------------------------------------------------------------
# Numbers


def test_scores_on_a_tiny_example_by_hand():
    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    y_pred = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0]])
    scores = scoring.multilabel_scores(y_true, y_pred)
    # tp = 3 (two in label 0, one in label 1), fp = 1, fn = 2
    assert scores["micro_precision"] == pytest.approx(3 / 4)
    assert scores["micro_recall"] == pytest.approx(3 / 5)
    assert scores["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    # label F1: 1.0, 2/3, 0.0
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert scores["macro_precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["macro_recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    # weights are supports 2, 2, 1
    assert scores["weighted_f1"] == pytest.approx((2 * 1 + 2 * 2 / 3 + 0) / 5)
    # row F1: 2/3, 1, 1/2, 0 (the empty row counts 0 with zero_division=0)
    assert scores["samples_f1"] == pytest.approx((2 / 3 + 1 + 0.5 + 0) / 4)
    assert scores["samples_precision"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert scores["samples_recall"] == pytest.approx((0.5 + 1 + 0.5 + 0) / 4)
    assert scores["subset_accuracy"] == pytest.approx(2 / 4)
    assert scores["hamming_loss"] == pytest.approx(3 / 12)
    assert scores["n_examples"] == 4 and scores["n_labels"] == 3
    assert scores["label_cardinality_true"] == pytest.approx(5 / 4)
    assert scores["label_cardinality_pred"] == pytest.approx(4 / 4)
    assert scores["empty_predictions"] == pytest.approx(1 / 4)
    expected_keys = {
        f"{average}_{name}" for average in ("micro", "macro", "samples") for name in ("f1", "precision", "recall")
    } | {
        "weighted_f1",
        "subset_accuracy",
        "hamming_loss",
        "n_examples",
        "n_labels",
        "label_cardinality_true",
        "label_cardinality_pred",
        "empty_predictions",
    }
    assert set(scores) == expected_keys
    assert all(type(value) in (int, float) for value in scores.values())
    json.dumps(scores)


def test_scores_match_sklearn_on_random_data(rng):
    targets, logits = random_multilabel(rng, rows=200, classes=9)
    predictions = (logits > 0).astype(np.int32)
    scores = scoring.multilabel_scores(targets, predictions)
    for average in ("micro", "macro", "samples", "weighted"):
        assert scores[f"{average}_f1"] == pytest.approx(sklearn_f1(targets, predictions, average))
    for average in ("micro", "macro", "samples"):
        assert scores[f"{average}_precision"] == pytest.approx(
            skm.precision_score(targets, predictions, average=average, zero_division=0)
        )
        assert scores[f"{average}_recall"] == pytest.approx(
            skm.recall_score(targets, predictions, average=average, zero_division=0)
        )
    assert scores["subset_accuracy"] == pytest.approx(skm.accuracy_score(targets, predictions))
    assert scores["hamming_loss"] == pytest.approx(skm.hamming_loss(targets, predictions))


@pytest.mark.parametrize(
    "y_true,y_pred,message",
    [
        (np.zeros(5), np.zeros(5), "2-D"),
        (np.zeros((3, 4)), np.zeros((3, 5)), "same shape"),
        (np.zeros((3, 4)), np.full((3, 4), 0.7), "only 0 and 1"),
        (np.zeros((3, 1)), np.zeros((3, 1)), "2 label columns"),
    ],
)
def test_scores_reject_bad_input_naming_the_argument(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        scoring.multilabel_scores(y_true, y_pred)


def test_per_label_report_text_and_dict(rng):
    targets, logits = random_multilabel(rng, rows=50, classes=4)
    predictions = (logits > 0).astype(np.int32)
    names = ["earn", "acq", "money-fx", "never seen"]
    text, report = scoring.per_label_report(targets, predictions, names)
    for name in names + ["micro avg", "macro avg", "weighted avg", "samples avg"]:
        assert name in text and name in report
    for column, name in enumerate(names):
        assert report[name]["support"] == int(targets[:, column].sum())
        assert report[name]["f1-score"] == pytest.approx(
            sklearn_f1(targets[:, column], predictions[:, column], "binary")
        )
    assert report["never seen"]["f1-score"] == 0.0
    json.dumps(report)
    with pytest.raises(ValueError, match="label_names"):
        scoring.per_label_report(targets, predictions, names[:3])
    with pytest.raises(ValueError, match="repeat"):
        scoring.per_label_report(targets, predictions, ["a", "b", "a", "c"])


# --------------------------------------------------------------------------
# Thresholds


@pytest.mark.parametrize("seed", [0, 1])
def test_threshold_sweep_equals_a_brute_force_sklearn_loop(seed):
    rng = np.random.default_rng(seed)
    targets, logits = random_multilabel(rng, rows=30, classes=4)
    logits[5:10] = np.round(logits[5:10])  # ties between scores
    thresholds = scoring.threshold_grid(logits, max_points=36)
    extra = np.array([-np.inf, -10.0, logits.min(), 0.0, float(logits[7, 2]), logits.max(), 10.0])
    thresholds = np.concatenate([thresholds, extra])
    sweep = scoring.threshold_sweep(targets, logits, thresholds)
    assert sweep["thresholds"] == thresholds.tolist()
    for index, threshold in enumerate(thresholds):
        predictions = (logits > threshold).astype(np.int32)
        assert sweep["micro_f1"][index] == sklearn_f1(targets, predictions, "micro"), threshold
        assert sweep["macro_f1"][index] == sklearn_f1(targets, predictions, "macro"), threshold


def test_threshold_grid_holds_zero_midpoints_and_at_most_max_points(rng):
    logits = np.array([[-1.0, 3.0], [1.0, 3.0], [1.0, 5.0]])
    assert scoring.threshold_grid(logits).tolist() == [0.0, 2.0, 4.0]
    many = rng.normal(size=(5000, 20))
    grid = scoring.threshold_grid(many)
    assert 0.0 in grid and len(grid) <= 401
    assert np.all(np.diff(grid) > 0)
    assert grid[0] < np.quantile(many, 0.001) and grid[-1] > np.quantile(many, 0.999)
    assert scoring.threshold_grid(np.ones((3, 2))).tolist() == [0.0]


def test_best_threshold_picks_the_maximum(rng):
    targets, logits = random_multilabel(rng, rows=60, classes=5)
    shifted = logits - 1.3  # a model whose logits are off by a constant
    for metric in ("micro_f1", "macro_f1"):
        sweep = scoring.threshold_sweep(targets, shifted)
        chosen = scoring.best_threshold(targets, shifted, metric=metric)
        assert sweep[metric][sweep["thresholds"].index(chosen)] == max(sweep[metric])
        grid = np.linspace(-3.0, 1.0, 13)
        brute = [sklearn_f1(targets, (shifted > threshold).astype(int), metric[:5]) for threshold in grid]
        assert scoring.best_threshold(targets, shifted, metric=metric, thresholds=grid) == grid[np.argmax(brute)]
    assert scoring.best_threshold(targets, shifted) < 0


def test_best_threshold_is_zero_when_all_thresholds_score_the_same():
    targets = np.zeros((6, 3), dtype=int)  # F1 is 0 whatever is predicted
    logits = np.random.default_rng(3).normal(size=(6, 3))
    assert scoring.best_threshold(targets, logits) == 0.0
    assert scoring.best_threshold(targets, logits, thresholds=[-2.0, 0.5, -0.25, 1.0]) == -0.25
    with pytest.raises(ValueError, match="metric"):
        scoring.best_threshold(targets, logits, metric="accuracy")


def test_threshold_sweep_is_fast_on_ten_thousand_rows_of_a_hundred_labels(rng):
    targets = (rng.random((10_000, 100)) < 0.05).astype(np.int8)
    logits = rng.normal(size=(10_000, 100)).astype(np.float32) + 3 * targets - 2
    start = time.perf_counter()
    threshold = scoring.best_threshold(targets, logits)
    sweep = scoring.threshold_sweep(targets, logits)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, elapsed
    assert len(sweep["thresholds"]) <= 401
    assert threshold in sweep["thresholds"]


# --------------------------------------------------------------------------
# Plots


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    assert not list(path.parent.glob("*.tmp*"))


def long_names(count):
    stems = ["grain", "crude", "money-fx", "interest", "ship", "trade", "wheat", "corn", "dlr", "supply"]
    return [
        f"{stems[index % len(stems)]}-{index}" + (" and a rather long descriptive suffix" if index % 7 == 0 else "")
        for index in range(count)
    ]


@pytest.mark.parametrize("classes", [3, 90])
def test_per_label_plot_writes_a_png(tmp_path, rng, classes):
    targets, logits = random_multilabel(rng, rows=300, classes=classes)
    _, report = scoring.per_label_report(targets, (logits > 0).astype(int), long_names(classes))
    path = plots.plot_per_label_f1(report, tmp_path / "plots" / f"per_label_f1_{classes}.png")
    assert path == tmp_path / "plots" / f"per_label_f1_{classes}.png"
    assert_png(path)


def test_threshold_plot_writes_a_png(tmp_path, rng):
    targets, logits = random_multilabel(rng, rows=300, classes=8)
    sweep = scoring.threshold_sweep(targets, logits - 0.8)
    chosen = scoring.best_threshold(targets, logits - 0.8)
    assert_png(plots.plot_threshold_curve(sweep, tmp_path / "threshold.png", chosen_threshold=chosen, title="dev"))


@pytest.mark.parametrize(
    "keys",
    [
        ["loss", "val_loss", "micro_f1", "val_micro_f1", "macro_f1", "val_macro_f1", "learning_rate"],
        ["loss"],
        ["loss", "val_micro_f1"],
    ],
)
def test_learning_curves_write_a_png_for_any_set_of_keys(tmp_path, keys):
    epochs = np.arange(1, 13)
    curves = {
        "loss": 2.0 / epochs,
        "val_loss": 2.2 / epochs + 0.02 * epochs,
        "micro_f1": 1 - 0.8 / epochs,
        "val_micro_f1": 0.9 - 0.8 / epochs - 0.005 * epochs,
        "macro_f1": 0.8 - 0.7 / epochs,
        "val_macro_f1": 0.7 - 0.7 / epochs,
        "learning_rate": np.full(12, 1e-3, dtype=np.float32),
    }
    history = {key: [np.float32(value) for value in curves[key]] for key in keys}
    assert_png(plots.plot_learning_curves(history, tmp_path / "curves.png", title="run"))


def test_learning_curves_mark_the_kept_epoch_once_a_panel_and_lead_with_the_monitor(tmp_path):
    """Not a star at each metric's own best epoch (val_precision peaks at epoch 1 from few predictions):
    one mark at the epoch whose model was kept, in every panel; the monitored metric and a few others."""
    names = ["micro_f1", "macro_f1", "micro_precision", "micro_recall", "subset_accuracy"]
    history = {"loss": [1.0, 0.6, 0.5, 0.45], "val_loss": [1.1, 0.8, 0.7, 0.75]}
    for name in names:
        history[name] = [0.2, 0.4, 0.6, 0.7]
        history[f"val_{name}"] = [0.9, 0.3, 0.5, 0.4] if name == "micro_precision" else [0.1, 0.3, 0.5, 0.45]
    panels, hidden = plots._curve_panels(history, monitor="val_macro_f1", max_metrics=3)
    assert panels == [("loss", ["loss"]), ("metrics", ["macro_f1", "micro_f1", "micro_precision"])] and hidden == 2
    figure = plots._learning_curves_figure(history, kept_epoch=3, monitor="val_macro_f1", max_metrics=3)
    for axes in figure.axes:
        assert [line.get_label() for line in axes.lines].count("kept: epoch 3") == 1
        assert not [line for line in axes.lines if line.get_marker() == "*"]
    assert figure.axes[1].get_title() == "metrics (kept epoch 3); 2 more in history.csv"
    starred = plots._learning_curves_figure(history)  # no kept epoch given: each validation curve's best
    assert sum(line.get_marker() == "*" for line in starred.axes[1].lines) == len(names)
    assert_png(plots.plot_learning_curves(history, tmp_path / "kept.png", kept_epoch=3, monitor="val_macro_f1"))


def test_span_class_report_has_the_micro_and_macro_rows_the_plot_draws(tmp_path):
    per_class = {
        "born_in": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "num_gold": 2},
        "works_for": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "num_gold": 4},
        "unseen": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "num_gold": 0},
    }
    micro = {"precision": 0.6, "recall": 2 / 3, "f1": 0.6316, "num_gold": 6}
    report = scoring.span_class_report(per_class, micro)
    assert report["micro avg"] == {"precision": 0.6, "recall": 2 / 3, "f1-score": 0.6316, "support": 6}
    assert report["macro avg"]["f1-score"] == pytest.approx(4 / 9) and report["macro avg"]["support"] == 6
    assert report["works_for"] == {"precision": 1.0, "recall": 0.5, "f1-score": 2 / 3, "support": 4}
    assert_png(plots.plot_per_label_f1(report, tmp_path / "per_predicate.png"))


def test_learning_curves_refuse_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.plot_learning_curves({"learning_rate": [0.1]}, tmp_path / "curves.png")


def test_plots_leave_global_matplotlib_state_alone(tmp_path, rng):
    import matplotlib

    before = (matplotlib.get_backend(), dict(matplotlib.rcParams))
    plots.plot_learning_curves({"loss": [1.0, 0.5]}, tmp_path / "curves.png")
    assert (matplotlib.get_backend(), dict(matplotlib.rcParams)) == before
    for module in (scoring, plots):
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert "pyplot" not in source.replace("no `pyplot`", "")
        assert "import keras" not in source and "tensorflow" not in source


CHINESE_PREDICATES = ["出生地", "妻子", "作者", "国籍", "毕业院校"]


def chinese_report():
    per_class = {
        name: {"precision": 0.5 + 0.1 * index, "recall": 0.6, "f1": 0.55 + 0.05 * index, "num_gold": 3 + index}
        for index, name in enumerate(CHINESE_PREDICATES)
    }
    return scoring.span_class_report(per_class, {"precision": 0.7, "recall": 0.6, "f1": 0.65, "num_gold": 25})


def glyph_complaints(caught, caplog):
    messages = [str(warning.message) for warning in caught] + [record.getMessage() for record in caplog.records]
    return [message for message in messages if "missing from font" in message or "drawn as boxes" in message]


def test_chinese_label_names_are_drawn_in_a_cjk_font(tmp_path, caplog):
    """LIC2019 predicates as label names: no "Glyph ... missing" warning (one a glyph each time a text is
    measured or drawn: 240 for a small plot before), and the names drawn in the dependency's CJK font."""
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "val_micro_f1": [0.3, 0.6]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_png(plots.plot_per_label_f1(chinese_report(), tmp_path / "per_predicate.png", title="谓词 F1"))
        assert_png(plots.plot_learning_curves(history, tmp_path / "curves.png", title="LIC2019 关系抽取"))
    assert glyph_complaints(caught, caplog) == []
    assert plots._cjk_font() == "WenQuanYi Micro Hei"


def test_a_cjk_fallback_draws_the_characters_and_leaves_latin_text_to_the_first_font():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def pixels(text, family):
        figure = Figure(figsize=(2.0, 0.5), dpi=100)
        canvas = FigureCanvasAgg(figure)
        figure.text(0.05, 0.3, text, fontfamily=family, fontsize=14)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DejaVu Sans alone: the glyphs are missing, as intended here
            canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    cjk = plots._cjk_font()
    fallback = ["DejaVu Sans", cjk]
    assert np.array_equal(pixels("出生地", fallback), pixels("出生地", [cjk]))
    assert not np.array_equal(pixels("出生地", fallback), pixels("出生地", ["DejaVu Sans"]))
    assert np.array_equal(pixels("n=12", fallback), pixels("n=12", ["DejaVu Sans"]))
    assert (pixels("出生地", [cjk]) < 128).sum() > 100  # ink, not a blank canvas


def test_without_a_cjk_font_a_plot_is_drawn_with_one_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(plots, "_cjk_font", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_png(plots.plot_per_label_f1(chinese_report(), tmp_path / "per_predicate.png"))
    complaints = glyph_complaints(caught, caplog)
    assert len(complaints) == 1 and "pip install paperang-p2-fonts-cjk" in complaints[0], complaints


# --------------------------------------------------------------------------
# Writers


def test_write_json_atomic_converts_numpy_and_leaves_no_tmp(tmp_path):
    path = tmp_path / "run" / "metrics.json"
    obj = {"f1": np.float32(0.5), "n": np.int64(3), "rows": np.arange(3), "nan": float("nan"), "名": "标签"}
    assert atomic.write_json_atomic(path, obj) == path
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and '  "f1": 0.5' in text and "标签" in text
    assert json.loads(text) == {"f1": 0.5, "n": 3, "rows": [0, 1, 2], "nan": None, "名": "标签"}
    assert os.listdir(path.parent) == ["metrics.json"]


def test_interrupted_writes_leave_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic.write_json_atomic(path, {"micro_f1": 0.9})
    old = path.read_bytes()
    with pytest.raises(TypeError):
        atomic.write_json_atomic(path, {"micro_f1": 0.1, "model": object()})
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["metrics.json"]

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text_atomic(path, "half")
    with pytest.raises(OSError, match="disk full"):
        plots.plot_learning_curves({"loss": [1.0, 0.5]}, tmp_path / "curves.png")
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_write_text_atomic(tmp_path):
    path = tmp_path / "report.txt"
    path.write_text("old", encoding="utf-8")
    atomic.write_text_atomic(path, "new report\n")
    assert path.read_text(encoding="utf-8") == "new report\n"
    assert os.listdir(tmp_path) == ["report.txt"]


def test_docstring_examples_run():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for module in (scoring, plots, atomic):
        for test in finder.find(module):
            runner.run(test)
    assert runner.failures == 0
