"""Plots of a run: learning curves, per-label F1, F1 against the decision threshold.

The plots use Matplotlib's Agg canvas on a `Figure` of their own: no `pyplot`,
no change to Matplotlib's settings. Each PNG is written atomically
(`toolkit.atomic.replace_file`). Matplotlib is imported when a plot is drawn.

Label names in Chinese, Japanese or Korean: a text with characters its font
lacks gets a CJK font as its fallback (WenQuanYi Micro Hei, from the
`paperang-p2-fonts-cjk` dependency, registered with Matplotlib's font manager
the first time a plot needs it; else a CJK font the machine has). Without one,
the plot is still drawn, its missing characters as boxes, with one warning.

Example:

```python
plot_per_label_f1(report, run_dir / "plots" / "per_label_f1.png")       # per_label_report's dict
plot_threshold_curve(sweep, run_dir / "plots" / "threshold.png")         # threshold_sweep's lists
plot_learning_curves(history.history, run_dir / "plots" / "learning_curves.png")
```
"""

import functools
import os
import warnings

import numpy as np

from toolkit.atomic import replace_file
from toolkit.scores import lower_is_better

__all__ = ["plot_learning_curves", "plot_per_label_f1", "plot_threshold_curve"]

AVERAGE_ROWS = ("micro avg", "macro avg", "weighted avg", "samples avg")
DPI = 120
# The CJK font a plot falls back to: the package (a toolkit dependency), its module and font file.
CJK_FONT_PACKAGE = ("paperang-p2-fonts-cjk", "paperang_p2_fonts_cjk", "fonts/wqy-microhei.ttc")
# Used instead when that package is missing: CJK fonts a machine may have installed.
INSTALLED_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
)
MISSING_GLYPH_WARNING = r"Glyph \d+ .* missing from font"


def _new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure, path):
    unknown = _add_fallback_fonts(figure)
    with warnings.catch_warnings():
        if unknown:
            example = "".join(sorted(unknown)[:3])
            warnings.warn(
                f"{len(unknown)} characters of the plot's labels (e.g. {example!r}) are in none of Matplotlib's fonts "
                f"and are drawn as boxes; `pip install {CJK_FONT_PACKAGE[0]}` adds the toolkit's CJK font.",
                UserWarning,
                stacklevel=3,
            )
            # that one line instead of Matplotlib's, one for every glyph each time a text is measured or drawn
            warnings.filterwarnings("ignore", message=MISSING_GLYPH_WARNING)
        return replace_file(path, lambda temporary: figure.savefig(temporary, format="png", dpi=DPI))


@functools.cache
def _glyphs(font_path):
    """The code points the font file at `font_path` has glyphs for (its first face)."""
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font_path).get_charmap())


@functools.cache
def _cjk_font():
    """The family name of a font with CJK glyphs, or None without one.

    The dependency's font file is registered with Matplotlib's font manager
    here, on first use; without the package, the first of
    `INSTALLED_CJK_FONTS` Matplotlib knows.
    """
    from importlib.resources import files

    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    try:
        path = files(CJK_FONT_PACKAGE[1]).joinpath(CJK_FONT_PACKAGE[2])
    except ModuleNotFoundError:
        path = None
    if path is not None and path.is_file():
        path = os.fspath(path)
        if not any(entry.fname == path for entry in font_manager.fontManager.ttflist):
            font_manager.fontManager.addfont(path)
        return FT2Font(path).family_name
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((name for name in INSTALLED_CJK_FONTS if name in installed), None)


def _add_fallback_fonts(figure):
    """Give every text of `figure` with characters its font lacks the CJK font as a fallback.

    Matplotlib (>= 3.6) takes a list of families and looks each character up
    in them in turn, so the text's own font still sets everything it has.
    Returns the characters no font has (an empty set when all can be drawn).
    """
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.text import Text

    unknown = set()
    for text in figure.findobj(Text):
        string = text.get_text()
        if string.isascii():
            continue
        properties = text.get_fontproperties()
        lacking = {
            character
            for character in string
            if character.isprintable()
            and not character.isspace()
            and ord(character) not in _glyphs(findfont(properties))
        }
        if not lacking:
            continue
        fallback = _cjk_font()
        if fallback is not None:
            text.set_fontfamily([*properties.get_family(), fallback])
            fallback_glyphs = _glyphs(findfont(FontProperties(family=fallback)))
            lacking = {character for character in lacking if ord(character) not in fallback_glyphs}
        unknown |= lacking
    return unknown


def _shorten(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _series(values):
    return np.array([np.nan if value is None else float(value) for value in values], dtype=np.float64)


def plot_learning_curves(history, path, *, title=None, kept_epoch=None, monitor=None, max_metrics=4):
    """Training curves of a Keras `history.history`, as a PNG; returns the path.

    Left panel: `loss` and `val_loss`. Right panel: the other metrics, the
    training value solid and its `val_` twin dashed in the same colour (a
    metric with only one of the two is drawn alone): with `monitor`, the
    monitored metric first and at most `max_metrics` in all (the rest stay in
    `history.csv`). With `kept_epoch` (the epoch whose model the run kept),
    that epoch is marked once in every panel; without it, each validation
    curve's best epoch gets a star. Epochs count from 1. Learning-rate keys
    are left out.

    Example:

    >>> plot_learning_curves({"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}, "curves.png", kept_epoch=2)  # doctest: +SKIP
    """
    figure = _learning_curves_figure(
        history, title=title, kept_epoch=kept_epoch, monitor=monitor, max_metrics=max_metrics
    )
    return _save_figure(figure, path)


def _curve_panels(history, monitor=None, max_metrics=4):
    """`[(panel, metric names)]` of `plot_learning_curves`, and how many metrics were left out."""
    skipped = {"lr", "learning_rate"}
    metrics = []
    for key in history:
        name = key[4:] if key.startswith("val_") else key
        if name not in metrics and name not in skipped and name != "loss":
            metrics.append(name)
    hidden = 0
    if monitor is not None:
        focus = monitor[4:] if monitor.startswith("val_") else monitor
        if focus in metrics:
            metrics = [focus] + [name for name in metrics if name != focus]
        hidden = max(0, len(metrics) - max_metrics)
        metrics = metrics[:max_metrics]
    panels = [("loss", ["loss"])] if any(key in history for key in ("loss", "val_loss")) else []
    if metrics:
        panels.append(("metrics", metrics))
    return panels, hidden


def _learning_curves_figure(history, *, title=None, kept_epoch=None, monitor=None, max_metrics=4):
    from matplotlib.ticker import MaxNLocator

    history = {str(key): _series(values) for key, values in dict(history).items() if len(values)}
    panels, hidden = _curve_panels(history, monitor, max_metrics)
    if not panels:
        raise ValueError(
            f"The 'history' argument of plot_learning_curves has nothing to plot. Got keys {sorted(history)} instead."
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
                    epochs,
                    values,
                    style,
                    color=line_colour,
                    label=key,
                    marker="o" if len(values) <= 30 else None,
                    markersize=3,
                    linewidth=1.6,
                )
                if kept_epoch is None and key.startswith("val_") and np.isfinite(values).any():
                    best = np.nanargmin(values) if lower_is_better(name) else np.nanargmax(values)
                    axes.plot(
                        epochs[best],
                        values[best],
                        "*",
                        color=line_colour,
                        markersize=13,
                        markeredgecolor="black",
                        markeredgewidth=0.6,
                        zorder=5,
                    )
        if kept_epoch is not None:
            axes.axvline(kept_epoch, color="0.25", linestyle=":", linewidth=1.4, label=f"kept: epoch {kept_epoch}")
            note = f" (kept epoch {kept_epoch})"
        else:
            has_validation = any(f"val_{name}" in history for name in names)
            note = " (★ best validation epoch)" if has_validation else ""
        if panel == "metrics" and hidden:
            note += f"; {hidden} more in history.csv"
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss" if panel == "loss" else "score")
        axes.set_title(panel + note)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        # one legend column per metric: its training line above its validation line
        columns = 2 if panel == "loss" else min(len(names), 4)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=columns, fontsize=8, frameon=False)
    if title:
        figure.suptitle(title)
    return figure


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
        rows = rows[:top] + [None] + rows[len(rows) - (max_labels - top) :]
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
        axes.text(
            f1 + 0.01,
            position,
            f"{f1:.2f}",
            va="center",
            fontsize=7,
            zorder=4,
            bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none", alpha=0.8),
        )
    axes.set_yticks(positions, tick_labels, fontsize=8)
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
        axes.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=len(handles),
            fontsize=8,
            frameon=False,
        )
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
            thresholds[best],
            values[best],
            "*",
            color=colour,
            markersize=14,
            markeredgecolor="black",
            markeredgewidth=0.6,
            zorder=5,
            label=f"best {label} {values[best]:.3f} at {thresholds[best]:.3g}",
        )
        at_chosen = float(np.interp(chosen, thresholds, values))
        exact = np.isclose(thresholds, chosen, rtol=0, atol=1e-12).any()
        notes.append(f"{label} {'' if exact else '≈ '}{at_chosen:.3f}")
    line = axes.axvline(chosen, color="0.2", linestyle="--", linewidth=1.2, label=f"chosen threshold {chosen:.3g}")
    low, high = axes.get_xlim()
    on_the_right = chosen > low + 0.7 * (high - low)
    axes.annotate(
        f"threshold {chosen:.3g}\n" + "\n".join(notes),
        xy=(chosen, 0.03),
        xycoords=("data", "axes fraction"),
        xytext=(-6 if on_the_right else 6, 0),
        textcoords="offset points",
        fontsize=8,
        va="bottom",
        ha="right" if on_the_right else "left",
        bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="0.6", alpha=0.9),
    )
    axes.set_xlabel("decision threshold on the logit")
    axes.set_ylabel("F1")
    axes.set_ylim(0, 1.02)
    axes.grid(True, alpha=0.3)
    # column by column: each curve above its best point, then the chosen threshold
    handles = [handle for pair in zip(curves, stars) for handle in pair] + [line]
    axes.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncols=len(curves) + 1,
        fontsize=8,
        frameon=False,
    )
    axes.set_title(title or "F1 against the decision threshold (predict: logit > threshold)")
    return _save_figure(figure, path)
