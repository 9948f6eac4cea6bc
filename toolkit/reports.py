"""Evaluation numbers, a per-label report and plots for a run folder.

A model trained with multilabel categorical crossentropy predicts a label
when its logit is above 0: nothing is tuned. A baseline trained with sigmoid
binary cross-entropy needs a threshold tuned on dev, which `best_threshold`
finds; `threshold_sweep` and `plot_threshold_curve` show how much the score
depends on it.

Every number comes from scikit-learn with `zero_division=0` and is a plain
Python `float` or `int`, so `write_json_atomic` can save it as it is. The
plots use Matplotlib's Agg canvas on a `Figure` of their own: no `pyplot`, no
change to global Matplotlib state. Every writer goes through a temporary file
in the same folder and `os.replace`, so a crash never leaves half a file.

Example:

```python
logits = model.predict(dev_inputs)            # [n, C], decision rule logit > 0
predicted = (logits > 0).astype("int32")
scores = reports.multilabel_scores(dev_targets, predicted)
text, report = reports.per_label_report(dev_targets, predicted, label_names)
reports.write_json_atomic(run_dir / "metrics.json", {"dev": scores})
reports.write_text_atomic(run_dir / "report.txt", text)
reports.plot_per_label_f1(report, run_dir / "plots" / "per_label_f1.png")
sweep = reports.threshold_sweep(dev_targets, logits)
reports.plot_threshold_curve(sweep, run_dir / "plots" / "threshold.png")
reports.plot_learning_curves(history.history, run_dir / "plots" / "learning_curves.png")
```

This module imports neither Keras nor TensorFlow, and Matplotlib only when a
plot is drawn.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "multilabel_scores",
    "per_label_report",
    "threshold_grid",
    "threshold_sweep",
    "best_threshold",
    "plot_learning_curves",
    "plot_per_label_f1",
    "plot_threshold_curve",
    "write_json_atomic",
    "write_text_atomic",
    "SWEEP_METRICS",
]

SWEEP_METRICS = ("micro_f1", "macro_f1")
AVERAGE_ROWS = ("micro avg", "macro avg", "weighted avg", "samples avg")
DPI = 120


# --------------------------------------------------------------------------
# Checking inputs


def _indicator(name, values, owner):
    """A `[n, C]` 0/1 int8 array, or a ValueError naming `name`."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(
            f"The '{name}' argument of {owner} must be a 2-D 0/1 indicator array [n, C]. "
            f"Got shape {array.shape} instead."
        )
    if array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(
            f"The '{name}' argument of {owner} needs at least 1 row and 2 label columns. "
            f"Got shape {array.shape} instead."
        )
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        found = np.unique(array[~np.isin(array, (0, 1))])[:5]
        raise ValueError(
            f"The '{name}' argument of {owner} must hold only 0 and 1 (predict with "
            f"`logits > 0` first). Got values such as {found.tolist()} instead."
        )
    return array.astype(np.int8)


def _same_shape(first, second, names, owner):
    if first.shape != second.shape:
        raise ValueError(
            f"The '{names[0]}' and '{names[1]}' arguments of {owner} must have the same shape. "
            f"Got {first.shape} and {second.shape} instead."
        )


def _logits(scores, owner):
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"The 'scores' argument of {owner} must be a 2-D array of logits [n, C]. "
            f"Got shape {array.shape} instead."
        )
    if np.isnan(array).any():
        raise ValueError(f"The 'scores' argument of {owner} must not contain NaN.")
    return array


# --------------------------------------------------------------------------
# Numbers


def multilabel_scores(y_true, y_pred):
    """Scores of 0/1 predictions against 0/1 targets, as a JSON-ready dict.

    `y_true` and `y_pred` are indicator arrays `[n, C]` (predict with
    `logits > 0` first). Precision, recall and F1 come in the `micro`,
    `macro` and `samples` averages (F1 also `weighted`), with
    `zero_division=0`; then `subset_accuracy` (exact match), `hamming_loss`,
    the label cardinality (mean labels a row) of the targets and of the
    predictions, and `empty_predictions`, the fraction of rows predicted with
    no label at all.

    Example:

    >>> scores = multilabel_scores([[1, 0, 1], [0, 1, 0]], [[1, 0, 0], [0, 1, 0]])
    >>> scores["micro_f1"], scores["subset_accuracy"]
    (0.8, 0.5)
    """
    owner = "multilabel_scores"
    y_true = _indicator("y_true", y_true, owner)
    y_pred = _indicator("y_pred", y_pred, owner)
    _same_shape(y_true, y_pred, ("y_true", "y_pred"), owner)
    scores = {}
    for average in ("micro", "macro", "samples"):
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        scores[f"{average}_f1"] = float(f1)
        scores[f"{average}_precision"] = float(precision)
        scores[f"{average}_recall"] = float(recall)
    scores["weighted_f1"] = float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    scores["subset_accuracy"] = float(skm.accuracy_score(y_true, y_pred))
    scores["hamming_loss"] = float(skm.hamming_loss(y_true, y_pred))
    scores["n_examples"] = int(y_true.shape[0])
    scores["n_labels"] = int(y_true.shape[1])
    scores["label_cardinality_true"] = float(y_true.sum(axis=1).mean())
    scores["label_cardinality_pred"] = float(y_pred.sum(axis=1).mean())
    scores["empty_predictions"] = float((y_pred.sum(axis=1) == 0).mean())
    return scores


def per_label_report(y_true, y_pred, label_names):
    """scikit-learn's `classification_report`, as text and as a dict.

    One row a label (in the order of `label_names`, one name a column), then
    the micro, macro, weighted and samples averages; `zero_division=0`. The
    dict (`output_dict=True`) maps each name to `precision`, `recall`,
    `f1-score` and `support`, and is what `plot_per_label_f1` draws.

    Example:

    >>> text, report = per_label_report([[1, 0], [1, 1]], [[1, 0], [0, 1]], ["sports", "politics"])
    >>> report["sports"]["recall"], report["politics"]["support"]
    (0.5, 1)
    """
    owner = "per_label_report"
    y_true = _indicator("y_true", y_true, owner)
    y_pred = _indicator("y_pred", y_pred, owner)
    _same_shape(y_true, y_pred, ("y_true", "y_pred"), owner)
    names = [str(name) for name in label_names]
    if len(names) != y_true.shape[1]:
        raise ValueError(
            f"The 'label_names' argument of {owner} must name each of the {y_true.shape[1]} "
            f"label columns. Got {len(names)} names instead."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"The 'label_names' argument of {owner} must not repeat a name. Got {repeated[:5]}.")
    common = dict(labels=np.arange(len(names)), target_names=names, zero_division=0)
    text = skm.classification_report(y_true, y_pred, digits=4, **common)
    report = _plain(skm.classification_report(y_true, y_pred, output_dict=True, **common))
    for entry in report.values():
        if isinstance(entry, dict) and "support" in entry:
            entry["support"] = int(entry["support"])
    return text, report


def threshold_grid(scores, *, max_points=400):
    """Candidate thresholds for `scores`: midpoints between distinct values, and 0.0.

    Each midpoint between two neighbouring distinct score values gives a
    different set of predictions (`scores > t`). When there are more than
    `max_points` of them, evenly spaced ones (by rank, so a quantile grid) are
    kept. 0.0, the decision rule of the loss, is always in the grid. Sorted.

    Example:

    >>> threshold_grid([[-1.0, 3.0], [1.0, 3.0]]).tolist()
    [0.0, 2.0]
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise ValueError(
            f"The 'max_points' argument of threshold_grid must be a positive integer. Got {max_points!r} instead."
        )
    values = np.unique(_logits(np.atleast_2d(scores), "threshold_grid"))
    values = values[np.isfinite(values)]
    midpoints = (values[:-1] + values[1:]) / 2.0
    if midpoints.size > max_points:
        keep = np.unique(np.round(np.linspace(0, midpoints.size - 1, max_points)).astype(np.int64))
        midpoints = midpoints[keep]
    return np.unique(np.concatenate([midpoints, [0.0]]))


def _counts_above(sorted_columns, thresholds):
    """`[T, C]` counts of entries `> t` in each column, from columns sorted ascending `[C, n]`."""
    n = sorted_columns.shape[1]
    return np.stack(
        [n - np.searchsorted(column, thresholds, side="right") for column in sorted_columns], axis=1
    )


def _f1(true_positives, true_count, predicted_count):
    """`2 tp / (true + predicted)` as scikit-learn computes it, 0 where undefined."""
    denominator = (true_count + predicted_count).astype(np.float64)
    numerator = 2.0 * true_positives.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def threshold_sweep(y_true, scores, thresholds=None):
    """Micro and macro F1 of the predictions `scores > t` for each threshold `t`.

    `scores` are logits `[n, C]`; `thresholds` default to `threshold_grid(scores)`.
    The F1 values equal scikit-learn's `f1_score(..., zero_division=0)`, but
    come from sorted columns and counts, not one call a threshold: 10,000
    rows of 100 labels take a fraction of a second. Returns plain lists:
    `{"thresholds": [...], "micro_f1": [...], "macro_f1": [...]}`.

    Example:

    >>> sweep = threshold_sweep([[1, 0], [0, 1]], [[2.0, -1.0], [0.5, 1.0]], [0.0, 0.7])
    >>> sweep["micro_f1"]
    [0.8, 1.0]
    """
    owner = "threshold_sweep"
    targets = _indicator("y_true", y_true, owner).astype(bool)
    logits = _logits(scores, owner)
    _same_shape(targets, logits, ("y_true", "scores"), owner)
    if thresholds is None:
        thresholds = threshold_grid(logits)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thresholds.size == 0 or np.isnan(thresholds).any():
        raise ValueError(f"The 'thresholds' argument of {owner} must be a non-empty list of numbers.")
    predicted_count = _counts_above(np.sort(logits.T, axis=1), thresholds)
    positive_logits = np.where(targets, logits, -np.inf).T
    true_positives = _counts_above(np.sort(positive_logits, axis=1), thresholds)
    true_count = targets.sum(axis=0)
    micro = _f1(true_positives.sum(axis=1), true_count.sum(), predicted_count.sum(axis=1))
    macro = _f1(true_positives, true_count[None, :], predicted_count).mean(axis=1)
    return {
        "thresholds": thresholds.tolist(),
        "micro_f1": micro.tolist(),
        "macro_f1": macro.tolist(),
    }


def best_threshold(y_true, scores, *, metric="micro_f1", thresholds=None):
    """The threshold on the logits with the best `metric` on (`y_true`, `scores`).

    `metric` is `"micro_f1"` or `"macro_f1"`; `thresholds` default to
    `threshold_grid(scores)` (at most about 400 points, always with 0.0).
    Among equally good thresholds the one closest to 0 wins, so a model
    trained with this loss keeps its own rule unless another is better. Tune
    on dev, never on test.

    Example:

    >>> best_threshold([[1, 0], [0, 1]], [[-0.5, -2.0], [-3.0, -1.0]])
    -1.5
    """
    if metric not in SWEEP_METRICS:
        raise ValueError(
            f"The 'metric' argument of best_threshold must be one of {list(SWEEP_METRICS)}. Got {metric!r} instead."
        )
    sweep = threshold_sweep(y_true, scores, thresholds)
    candidates = np.asarray(sweep["thresholds"])
    values = np.asarray(sweep[metric])
    tied = np.flatnonzero(values >= values.max() - 1e-12)
    return float(candidates[tied[np.argmin(np.abs(candidates[tied]))]])


# --------------------------------------------------------------------------
# Writing files


def _plain(value):
    """`value` with NumPy scalars and arrays, tuples and non-finite floats made JSON-ready."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, Path):
        return str(value)
    return value


def _replace_through(temporary, path, write):
    """Call `write(temporary)`, then move it onto `path`; remove it if anything fails."""
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path, text):
    """Write `text` (UTF-8) to `path` through `path.tmp` and `os.replace`; returns the path.

    The folder is created if needed. Readers see the old file or the new one,
    never a half-written one.

    Example:

    >>> write_text_atomic(run_dir / "report.txt", text)  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    return _replace_through(path.with_name(path.name + ".tmp"), path, write)


def write_json_atomic(path, obj):
    """Write `obj` as indented UTF-8 JSON with a trailing newline, atomically.

    NumPy scalars and arrays become Python numbers and lists, NaN and
    infinity become `null`. An object JSON cannot hold raises `TypeError`
    before anything is written, so the old file stays as it was.

    Example:

    >>> write_json_atomic(run_dir / "metrics.json", {"dev": scores})  # doctest: +SKIP
    """
    text = json.dumps(_plain(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


# --------------------------------------------------------------------------
# Plots


def _new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _replace_through(
        path.with_suffix(".tmp.png"), path, lambda temporary: figure.savefig(temporary, format="png", dpi=DPI)
    )


def _label_fonts():
    """DejaVu Sans, then any installed font with CJK glyphs (for Chinese label names)."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    wanted = ["Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "SimHei"]
    return ["DejaVu Sans"] + [name for name in wanted if name in installed]


def _shorten(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lower_is_better(metric):
    return any(word in metric for word in ("loss", "hamming", "error"))


def _series(values):
    return np.array([np.nan if value is None else float(value) for value in values], dtype=np.float64)


def plot_learning_curves(history, path, *, title=None):
    """Training curves of a Keras `history.history`, as a PNG; returns the path.

    Left panel: `loss` and `val_loss`. Right panel: every other metric, the
    training value solid and its `val_` twin dashed in the same colour (a
    metric with only one of the two is drawn alone). The best validation
    epoch of each curve is marked. Epochs count from 1. Learning-rate keys
    are left out.

    Example:

    >>> plot_learning_curves({"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}, "curves.png")  # doctest: +SKIP
    """
    from matplotlib.ticker import MaxNLocator

    history = {str(key): _series(values) for key, values in dict(history).items() if len(values)}
    skipped = {"lr", "learning_rate"}
    loss_keys = [key for key in ("loss", "val_loss") if key in history]
    metrics = []
    for key in history:
        name = key[4:] if key.startswith("val_") else key
        if name not in metrics and name not in skipped and name != "loss":
            metrics.append(name)
    panels = [("loss", ["loss"])] if loss_keys else []
    if metrics:
        panels.append(("metrics", metrics))
    if not panels:
        raise ValueError(
            "The 'history' argument of plot_learning_curves has nothing to plot. "
            f"Got keys {sorted(history)} instead."
        )
    figure = _new_figure(5.6 * len(panels) + 0.6, 4.6)
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    colours = [f"C{index}" for index in range(10)]
    for axes, (panel, names) in zip(axes_list, panels):
        for index, name in enumerate(names):
            colour = colours[index % len(colours)] if panel == "metrics" else None
            for key, style in ((name, "-"), (f"val_{name}", "--")):
                if key not in history:
                    continue
                values = history[key]
                epochs = np.arange(1, len(values) + 1)
                line_colour = colour or ("C0" if key == "loss" else "C1")
                axes.plot(
                    epochs, values, style, color=line_colour, label=key,
                    marker="o" if len(values) <= 30 else None, markersize=3, linewidth=1.6,
                )
                if key.startswith("val_") and np.isfinite(values).any():
                    best = np.nanargmin(values) if _lower_is_better(name) else np.nanargmax(values)
                    axes.plot(
                        epochs[best], values[best], "*", color=line_colour, markersize=13,
                        markeredgecolor="black", markeredgewidth=0.6, zorder=5,
                    )
        has_validation = any(f"val_{name}" in history for name in names)
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss" if panel == "loss" else "score")
        axes.set_title(panel + (" (★ best validation epoch)" if has_validation else ""))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        # one legend column per metric: its training line above its validation line
        columns = 2 if panel == "loss" else min(len(names), 4)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=columns, fontsize=8, frameon=False)
    if title:
        figure.suptitle(title)
    return _save_figure(figure, path)


def _label_rows(report):
    rows = []
    for name, entry in report.items():
        if name in AVERAGE_ROWS or not isinstance(entry, dict) or "f1-score" not in entry:
            continue
        rows.append((str(name), float(entry["f1-score"]), int(entry.get("support", 0))))
    return rows


def plot_per_label_f1(report, path, *, title=None, max_labels=60):
    """Per-label F1 as sorted horizontal bars, as a PNG; returns the path.

    `report` is the dict of `per_label_report`. Each bar is labelled with the
    label name (shortened past 40 characters) and its support `n`, and ends in
    its F1 value; labels with no support in the data are grey. The macro and
    micro averages are dashed lines. With more than `max_labels` labels, the
    best half and the worst half are drawn with a gap row between them.

    Example:

    >>> text, report = per_label_report(y_true, y_pred, label_names)  # doctest: +SKIP
    >>> plot_per_label_f1(report, run_dir / "plots" / "per_label_f1.png")  # doctest: +SKIP
    """
    from matplotlib.patches import Patch

    if isinstance(max_labels, bool) or not isinstance(max_labels, int) or max_labels < 2:
        raise ValueError(
            f"The 'max_labels' argument of plot_per_label_f1 must be an integer >= 2. Got {max_labels!r} instead."
        )
    rows = _label_rows(report)
    if not rows:
        raise ValueError("The 'report' argument of plot_per_label_f1 holds no per-label rows.")
    rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    hidden = len(rows) - max_labels
    if hidden > 0:
        top = (max_labels + 1) // 2
        rows = rows[:top] + [None] + rows[len(rows) - (max_labels - top):]
    longest = max(len(_shorten(row[0], 40)) for row in rows if row)
    figure = _new_figure(6.5 + 0.075 * longest, max(2.8, 1.4 + 0.24 * len(rows)))
    axes = figure.subplots()
    positions = np.arange(len(rows))
    tick_labels = []
    for position, row in zip(positions, rows):
        if row is None:
            tick_labels.append(f"… {hidden} labels not shown …")
            axes.axhspan(position - 0.5, position + 0.5, color="0.93", zorder=0)
            continue
        name, f1, support = row
        tick_labels.append(f"{_shorten(name, 40)} (n={support})")
        colour = "0.7" if support == 0 else "C0"
        axes.barh(position, f1, color=colour, height=0.75, zorder=2)
        axes.text(f1 + 0.01, position, f"{f1:.2f}", va="center", fontsize=7, zorder=4,
                  bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none", alpha=0.8))
    axes.set_yticks(positions, tick_labels, fontsize=8, fontfamily=_label_fonts())
    if hidden > 0:
        gap = rows.index(None)
        axes.get_yticklabels()[gap].set_fontstyle("italic")
        axes.get_yticklabels()[gap].set_color("0.35")
    axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.set_xlim(0, 1.1)
    axes.set_xticks(np.linspace(0, 1, 6))
    axes.set_xlabel("F1")
    axes.grid(True, axis="x", alpha=0.3)
    handles = []
    for key, style, colour in (("micro avg", "--", "C3"), ("macro avg", ":", "C2")):
        entry = report.get(key)
        if isinstance(entry, dict) and "f1-score" in entry:
            value = float(entry["f1-score"])
            label = f"{key} F1 {value:.3f}"
            handles.append(axes.axvline(value, color=colour, linestyle=style, linewidth=1.5, zorder=3, label=label))
    if any(row and row[2] == 0 for row in rows):
        handles.append(Patch(color="0.7", label="no support (F1 set to 0)"))
    if handles:
        axes.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(handles),
                    fontsize=8, frameon=False)
    shown = f"{len(rows) - 1} of {len(rows) - 1 + hidden}" if hidden > 0 else f"{len(rows)}"
    figure.suptitle(title or f"F1 per label ({shown} labels, sorted)")
    return _save_figure(figure, path)


def plot_threshold_curve(sweep, path, *, chosen_threshold=0.0, title=None):
    """Micro and macro F1 against the decision threshold, as a PNG; returns the path.

    `sweep` is the dict of `threshold_sweep`. A vertical line marks
    `chosen_threshold` (0.0, the rule of this loss, or a tuned one) with the
    F1 values there; a star marks the best threshold of each curve.

    Example:

    >>> sweep = threshold_sweep(dev_targets, dev_logits)  # doctest: +SKIP
    >>> plot_threshold_curve(sweep, run_dir / "plots" / "threshold.png")  # doctest: +SKIP
    """
    thresholds = np.asarray(sweep["thresholds"], dtype=np.float64)
    order = np.argsort(thresholds, kind="stable")
    thresholds = thresholds[order]
    chosen = float(chosen_threshold)
    figure = _new_figure(7.5, 4.8)
    axes = figure.subplots()
    notes, curves, stars = [], [], []
    for index, (key, label) in enumerate((("micro_f1", "micro F1"), ("macro_f1", "macro F1"))):
        if key not in sweep:
            continue
        values = np.asarray(sweep[key], dtype=np.float64)[order]
        colour = f"C{index}"
        style = "-" if key == "micro_f1" else "--"  # dashed, so a macro curve on top of the micro one shows both
        curves += axes.plot(thresholds, values, style, color=colour, label=label, linewidth=1.6)
        tied = np.flatnonzero(values >= values.max() - 1e-12)
        best = tied[np.argmin(np.abs(thresholds[tied]))]
        stars += axes.plot(
            thresholds[best], values[best], "*", color=colour, markersize=14, markeredgecolor="black",
            markeredgewidth=0.6, zorder=5, label=f"best {label} {values[best]:.3f} at {thresholds[best]:.3g}",
        )
        at_chosen = float(np.interp(chosen, thresholds, values))
        exact = np.isclose(thresholds, chosen, rtol=0, atol=1e-12).any()
        notes.append(f"{label} {'' if exact else '≈ '}{at_chosen:.3f}")
    line = axes.axvline(chosen, color="0.2", linestyle="--", linewidth=1.2, label=f"chosen threshold {chosen:.3g}")
    low, high = axes.get_xlim()
    on_the_right = chosen > low + 0.7 * (high - low)
    axes.annotate(
        f"threshold {chosen:.3g}\n" + "\n".join(notes),
        xy=(chosen, 0.03), xycoords=("data", "axes fraction"), xytext=(-6 if on_the_right else 6, 0),
        textcoords="offset points", fontsize=8, va="bottom", ha="right" if on_the_right else "left",
        bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="0.6", alpha=0.9),
    )
    axes.set_xlabel("decision threshold on the logit")
    axes.set_ylabel("F1")
    axes.set_ylim(0, 1.02)
    axes.grid(True, alpha=0.3)
    # column by column: each curve above its best point, then the chosen threshold
    handles = [handle for pair in zip(curves, stars) for handle in pair] + [line]
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=len(curves) + 1,
                fontsize=8, frameon=False)
    axes.set_title(title or "F1 against the decision threshold (predict: logit > threshold)")
    return _save_figure(figure, path)
