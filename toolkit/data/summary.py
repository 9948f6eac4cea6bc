"""What a data set holds, and the likely mistakes in reading it, said before the first epoch.

A pipeline passes what it read (the texts and the label list of each example,
per split) and each text's length in tokens under its own tokenizer; it gets
back plain JSON-ready data: `data_summary` (examples per split, the labels and
their frequencies, labels per example, token lengths and how many texts
`maxlen` cuts, two rows as parsed), `summary_lines` (a few lines for the log)
and `data_warnings`, the checks for likely mistakes, each naming the config
key to look at:

- `label_separator`: label strings that hold a likely separator (`|`, `;`,
  `,`, `/`) other than the configured one, when the other labels show them
  to be lists (a part is a label too, or the parts come in either order);
  hierarchical names such as `灾害/意外-地震` are not;
- `swapped_fields`: about as many distinct labels as examples, or labels
  longer than the texts (text and label fields swapped?);
- `unseen_labels`: labels of dev or test that train never has;
- `maxlen_cut`: more than 5% of a split's texts cut by `maxlen`.

`check_warnings` turns them into one `DataError` under `data.on_warning: error`.
Nothing here reads a file or imports Keras; "labels" may be any per-example
list of names (a relation task's predicates, say).

```python
from toolkit.data.summary import SplitData, data_summary, data_warnings, summary_lines

splits = {"train": SplitData(train.texts, train.labels, train_lengths, lines=train.lines),
          "dev": SplitData(dev.texts, dev.labels, dev_lengths, lines=dev.lines)}
warnings = data_warnings(splits, label_separator=",", maxlen=128)
summary = data_summary(splits, label_names=vocabulary, maxlen=128, warnings=warnings)
for line in summary_lines(summary):
    print(line)
```
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from toolkit.data.errors import DataError

__all__ = [
    "LIKELY_SEPARATORS",
    "DataWarning",
    "SplitData",
    "check_warnings",
    "data_summary",
    "data_warnings",
    "maxlen_warning",
    "number_stats",
    "separator_warning",
    "split_summary",
    "summary_lines",
    "swapped_fields_warning",
    "unseen_labels_warnings",
]

#: Characters that often join several labels into one string.
LIKELY_SEPARATORS = ("|", ";", ",", "/")

# Labels per example at or above this many share one histogram bin ("10+").
_HISTOGRAM_CAP = 10


@dataclass
class SplitData:
    """One split as a pipeline read it: texts, each example's labels, and optionally
    each text's length in tokens (`[CLS]` and `[SEP]` included, before `maxlen` cuts it),
    the line each example starts on, and the file."""

    texts: Sequence[str]
    labels: Sequence[Sequence[str]]
    token_lengths: Optional[Sequence[int]] = None
    lines: Optional[Sequence[int]] = None
    path: Optional[str] = None


@dataclass(frozen=True)
class DataWarning:
    """A likely mistake in the data or in how it is read: a short `code`, the
    `message`, and the config `key` to check.

    >>> str(DataWarning("maxlen_cut", "model.maxlen 32 cuts 40% of train texts", "model.maxlen"))
    'model.maxlen 32 cuts 40% of train texts (check model.maxlen)'
    """

    code: str
    message: str
    key: str

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "key": self.key}

    def __str__(self) -> str:
        return f"{self.message} (check {self.key})"


# ----------------------------------------------------------------------------- numbers


def number_stats(values: Sequence[float]) -> dict:
    """Mean (2 decimals), median, min and max of some numbers; None values for none.

    >>> number_stats([3, 1, 2, 10])
    {'mean': 4.0, 'median': 2.5, 'min': 1, 'max': 10}
    >>> number_stats([])
    {'mean': None, 'median': None, 'min': None, 'max': None}
    """
    if len(values) == 0:
        return {"mean": None, "median": None, "min": None, "max": None}
    array = np.asarray(values)
    median = float(np.median(array))
    return {
        "mean": round(float(array.mean()), 2),
        "median": int(median) if median.is_integer() else median,
        "min": array.min().item(),
        "max": array.max().item(),
    }


def _counts(label_lists: Sequence[Sequence[str]]) -> Counter:
    return Counter(label for labels in label_lists for label in labels)


def _ranked(counts: Counter, names: Sequence[str], top: int) -> tuple:
    """`(most frequent, least frequent)` as `[name, count]` pairs; ties in name order."""
    ordered = sorted(names, key=lambda name: (-counts[name], name))
    least = sorted(names, key=lambda name: (counts[name], name))
    return [[name, counts[name]] for name in ordered[:top]], [[name, counts[name]] for name in least[:top]]


def _histogram(sizes: Sequence[int]) -> dict:
    """Examples per number of labels, `{"0": n, "1": n, ..., "10+": n}` (bins from 0 to the largest seen)."""
    counts = Counter(min(size, _HISTOGRAM_CAP) for size in sizes)
    top = max(counts, default=0)
    return {(f"{k}+" if k == _HISTOGRAM_CAP else str(k)): counts.get(k, 0) for k in range(top + 1)}


def _shorten(text: str, limit: int = 80) -> str:
    """`text` on one line, cut to `limit` characters with `...`.

    >>> _shorten("a  long\\ntext", limit=6)
    'a long...'
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "..."


def _percent(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    return f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"


# ----------------------------------------------------------------------------- the summary


def split_summary(split: SplitData, *, maxlen: Optional[int] = None, rows: int = 2, top: int = 5) -> dict:
    """One split in numbers: examples, labels, labels per example, text lengths and the first `rows` rows.

    `tokens` (with `token_lengths`) gives the mean, median and max length and
    how many texts are longer than `maxlen` (`cut`, `cut_share`).

    >>> summary = split_summary(SplitData(["a b c", "d"], [["x", "y"], ["x"]], [5, 3], lines=[1, 2]), maxlen=4)
    >>> summary["examples"], summary["labels_per_example"]["histogram"], summary["tokens"]["cut"]
    (2, {'0': 0, '1': 1, '2': 1}, 1)
    >>> summary["rows"][0]
    {'line': 1, 'text': 'a b c', 'labels': ['x', 'y']}
    """
    counts = _counts(split.labels)
    most, least = _ranked(counts, sorted(counts), top)
    sizes = [len(labels) for labels in split.labels]
    result: dict[str, Any] = {"examples": len(split.texts)}
    if split.path is not None:
        result["path"] = split.path
    result["labels"] = {"distinct": len(counts), "most_frequent": most, "least_frequent": least}
    result["labels_per_example"] = {**number_stats(sizes), "histogram": _histogram(sizes)}
    result["characters"] = number_stats([len(text) for text in split.texts])
    if split.token_lengths is not None:
        lengths = [int(length) for length in split.token_lengths]
        tokens = number_stats(lengths)
        if lengths:
            tokens["p95"] = int(np.ceil(np.percentile(lengths, 95)))
        if maxlen is not None:
            cut = sum(1 for length in lengths if length > maxlen)
            tokens.update(maxlen=maxlen, cut=cut, cut_share=round(cut / len(lengths), 4) if lengths else 0.0)
        result["tokens"] = tokens
    lines = split.lines if split.lines is not None and len(split.lines) == len(split.texts) else None
    result["rows"] = [
        {
            "line": lines[i] if lines is not None else None,
            "text": _shorten(split.texts[i]),
            "labels": list(split.labels[i]),
        }
        for i in range(min(rows, len(split.texts)))
    ]
    return result


def data_summary(
    splits: Mapping[str, Optional[SplitData]],
    *,
    label_names: Optional[Sequence[str]] = None,
    maxlen: Optional[int] = None,
    warnings: Sequence[DataWarning] = (),
    top: int = 5,
    extra: Optional[Mapping[str, Any]] = None,
) -> dict:
    """The whole data set in numbers (what `data_summary.json` holds).

    `splits` maps split names to their data (None for an absent split); the
    first is the training split. `labels` counts the model's labels
    (`label_names`, else every label seen) and ranks them by how often train
    has them, zeros included (`unseen_in_train`); `warnings` are recorded as
    dicts; `extra` is merged in at the top (`on_warning`, say).

    >>> splits = {"train": SplitData(["a", "b", "c"], [["x"], ["x", "y"], ["x"]]), "test": None}
    >>> summary = data_summary(splits, label_names=["x", "y", "z"])
    >>> summary["labels"]
    {'count': 3, 'most_frequent': [['x', 3], ['y', 1], ['z', 0]], 'least_frequent': [['z', 0], ['y', 1], ['x', 3]], 'unseen_in_train': 1}
    >>> sorted(summary["splits"]), summary["warnings"]
    (['train'], [])
    """
    present = {name: split for name, split in splits.items() if split is not None}
    if not present:
        raise ValueError("data_summary needs at least one split")
    train_name = next(iter(present))
    train_counts = _counts(present[train_name].labels)
    if label_names is None:
        names = sorted({label for split in present.values() for labels in split.labels for label in labels})
    else:
        names = list(label_names)
    most, least = _ranked(train_counts, names, top)
    summary: dict[str, Any] = dict(extra or {})
    summary["labels"] = {
        "count": len(names),
        "most_frequent": most,
        "least_frequent": least,
        "unseen_in_train": sum(1 for name in names if train_counts[name] == 0),
    }
    summary["splits"] = {name: split_summary(split, maxlen=maxlen, top=top) for name, split in present.items()}
    summary["warnings"] = [warning.to_dict() for warning in warnings]
    return summary


def summary_lines(summary: dict, *, maxlen_key: str = "model.maxlen") -> list:
    """A few readable log lines for a `data_summary`, its warnings last.

    >>> splits = {"train": SplitData(["a b", "c"], [["x"], ["x", "y"]], [4, 3], lines=[1, 2])}
    >>> for line in summary_lines(data_summary(splits, maxlen=3)):
    ...     print(line)
    data: 2 labels; train 2 examples
    labels per example (train): mean 1.5, min 1, max 2; most frequent: x 2, y 1; least frequent: y 1, x 2
    tokens per text ([CLS] and [SEP] included): train mean 3.5, median 3.5, max 4; model.maxlen 3 cuts 1 train text (50%)
    train line 1: 'a b' -> x
    train line 2: 'c' -> x, y
    """
    splits = summary["splits"]
    labels = summary["labels"]
    first = next(iter(splits))
    sizes = ", ".join(
        f"{name} {split['examples']}" + (" examples" if index == 0 else "")
        for index, (name, split) in enumerate(splits.items())
    )
    lines = [f"data: {labels['count']} labels; {sizes}"]
    per_example = splits[first]["labels_per_example"]

    def ranked(pairs):
        return ", ".join(f"{name} {count}" for name, count in pairs)

    lines.append(
        f"labels per example ({first}): mean {per_example['mean']:g}, min {per_example['min']}, "
        f"max {per_example['max']}; most frequent: {ranked(labels['most_frequent'])}; "
        f"least frequent: {ranked(labels['least_frequent'])}"
    )
    measured = {name: split["tokens"] for name, split in splits.items() if "tokens" in split}
    if measured:
        name, tokens = next(iter(measured.items()))
        line = (
            f"tokens per text ([CLS] and [SEP] included): {name} mean {tokens['mean']:g}, "
            f"median {tokens['median']:g}, max {tokens['max']}"
        )
        if "maxlen" in tokens:
            cuts = ", ".join(
                f"{counted['cut']} {split}"
                + (" text" if counted["cut"] == 1 else " texts") * (index == 0)
                + f" ({_percent(counted['cut'], splits[split]['examples'])})"
                for index, (split, counted) in enumerate(measured.items())
            )
            line += f"; {maxlen_key} {tokens['maxlen']} cuts {cuts}"
        lines.append(line)
    for row in splits[first]["rows"]:
        where = f"{first} line {row['line']}" if row["line"] is not None else first
        lines.append(f"{where}: {row['text']!r} -> {', '.join(row['labels']) or '(no labels)'}")
    lines.extend(f"data warning: {warning['message']} (check {warning['key']})" for warning in summary["warnings"])
    return lines


# ----------------------------------------------------------------------------- the checks


def separator_warning(
    label_lists: Sequence[Sequence[str]],
    separator: Optional[str],
    *,
    in_lists: bool = False,
    key: str = "data.label_separator",
) -> Optional[DataWarning]:
    """Labels that look like several labels joined by a separator other than `separator`.

    A label holding one of `LIKELY_SEPARATORS` says so only with evidence from
    the other labels, and the message names what was found:

    - a part of it is a label of its own (`"sports|politics"` beside `"sports"`);
    - a part comes first in one such label and after the separator in another
      (`"sports|politics"` and `"politics|economy"`): the items of a list come in
      any order.

    Parts that only repeat in their own place are not evidence: hierarchical
    names (`"灾害/意外-地震"`, `"灾害/意外-起火"`, `"财经/交易-上市"`: a category
    first, a subtype after it, neither a label alone) are single labels that
    splitting would break, and one label such as `"Sci/Tech"` alone is not
    suspect. `in_lists`: the labels came as JSON lists, which no separator
    splits (the advice is then to write one label per list item).

    >>> labels = [["sports|politics"], ["sports"], ["economy|politics"]]
    >>> print(separator_warning(labels, ","))   # doctest: +NORMALIZE_WHITESPACE
    labels look joined with "|": 2 of 3 examples have a label holding it (e.g. 'sports|politics'),
    and 'sports' is a label of its own too; data.label_separator is ",", so each is read as one label:
    set data.label_separator: "|" (check data.label_separator)
    >>> separator_warning([["灾害/意外-地震"], ["灾害/意外-起火"], ["财经/交易-上市"]], ",") is None
    True
    >>> separator_warning([["Sci/Tech"], ["World"]], ",") is None
    True
    """
    distinct = {label for labels in label_lists for label in labels}
    for candidate in LIKELY_SEPARATORS:
        if candidate == separator:
            continue
        parts = {}
        for label in distinct:
            pieces = [piece.strip() for piece in label.split(candidate) if piece.strip()]
            if candidate in label and len(pieces) >= 2:
                parts[label] = pieces
        found = _joined_evidence(parts, distinct)
        if found is None:
            continue
        affected = sum(1 for labels in label_lists if any(label in parts for label in labels))
        evidence, example = found
        found = (
            f'labels look joined with "{candidate}": {affected} of {len(label_lists)} examples have a label holding it '
            f"(e.g. {example!r}), and {evidence}"
        )
        if in_lists:
            message = f"{found}; a list item is one label, whatever it holds: write each label as its own list item"
            return DataWarning("label_separator", message, "data.labels_field")
        told = "unset" if separator is None else f'"{separator}"'
        message = f'{found}; {key} is {told}, so each is read as one label: set {key}: "{candidate}"'
        return DataWarning("label_separator", message, key)
    return None


def _joined_evidence(parts: Mapping[str, list], labels: set) -> Optional[tuple]:
    """`(what was found, an example label)` when the split labels `parts` (label -> its pieces, in
    order) look like lists of labels, by `separator_warning`'s two kinds of evidence; else None."""
    alone = sorted({piece for pieces in parts.values() for piece in pieces if piece in labels})
    if alone:
        example = min(
            (label for label, pieces in parts.items() if alone[0] in pieces), key=lambda label: (len(label), label)
        )
        named = ", ".join(repr(piece) for piece in alone[:3]) + (
            f" and {len(alone) - 3} more" if len(alone) > 3 else ""
        )
        verb = "is a label" if len(alone) == 1 else "are labels"
        return f"{named} {verb} of {'its' if len(alone) == 1 else 'their'} own too", example
    first = {pieces[0] for pieces in parts.values()}
    later = {piece for pieces in parts.values() for piece in pieces[1:]}
    either = sorted(first & later)
    if not either:
        return None
    piece = either[0]
    leading = min(
        (label for label, pieces in parts.items() if pieces[0] == piece), key=lambda label: (len(label), label)
    )
    trailing = min(
        (label for label, pieces in parts.items() if piece in pieces[1:]), key=lambda label: (len(label), label)
    )
    return f"{piece!r} comes first in {leading!r} but after it in {trailing!r}, as the items of a list do", trailing


def swapped_fields_warning(
    texts: Sequence[str],
    label_lists: Sequence[Sequence[str]],
    *,
    key: str = "data.text_field, data.labels_field",
    min_examples: int = 20,
    ratio: Optional[float] = 0.5,
) -> Optional[DataWarning]:
    """A hint that the text and the labels fields are swapped: more distinct labels
    than `ratio` times the examples (with at least `min_examples` examples;
    `ratio=None` leaves this rule out), or labels longer than the texts on
    average (in characters).

    >>> texts = ["sports|politics", "economy", "art"] * 10
    >>> labels = [[f"a long sentence that was meant to be the text, number {i}"] for i in range(30)]
    >>> print(swapped_fields_warning(texts, labels))   # doctest: +NORMALIZE_WHITESPACE
    30 distinct labels for 30 examples, and labels longer than the texts (56 against 8 characters
    on average): are the text and the labels fields swapped? (check data.text_field, data.labels_field)
    >>> swapped_fields_warning(["a text about sports", "one about the economy"], [["sports"], ["economy"]]) is None
    True
    """
    label_strings = [label for labels in label_lists for label in labels]
    if not texts or not label_strings:
        return None
    reasons = []
    distinct = len(set(label_strings))
    if ratio is not None and len(texts) >= min_examples and distinct > ratio * len(texts):
        reasons.append(f"{distinct} distinct labels for {len(texts)} examples")
    label_length = sum(map(len, label_strings)) / len(label_strings)
    text_length = sum(map(len, texts)) / len(texts)
    if label_length > text_length:
        reasons.append(
            f"labels longer than the texts ({label_length:.0f} against {text_length:.0f} characters on average)"
        )
    if not reasons:
        return None
    return DataWarning("swapped_fields", f"{', and '.join(reasons)}: are the text and the labels fields swapped?", key)


def unseen_labels_warnings(
    train_labels: Sequence[Sequence[str]],
    others: Mapping[str, Optional[Sequence[Sequence[str]]]],
    *,
    keys: Optional[Mapping[str, str]] = None,
    shown: int = 5,
) -> list:
    """One warning per split of `others` (dev, test) with labels that train never has:
    how many, in how many examples, and the first few. `keys` names the config
    key of each split (default `data.<split>`).

    >>> [str(w) for w in unseen_labels_warnings([["a"], ["b"]], {"dev": [["a", "c"], ["d"]], "test": [["b"]]})]
    ["2 labels of dev never occur in train ('c', 'd'; in 2 of 2 dev examples): the model cannot learn them (check data.dev)"]
    """
    seen = {label for labels in train_labels for label in labels}
    found = []
    for split, label_lists in others.items():
        if label_lists is None:
            continue
        counts = _counts([[label for label in labels if label not in seen] for labels in label_lists])
        if not counts:
            continue
        names = sorted(counts, key=lambda name: (-counts[name], name))
        listed = ", ".join(map(repr, names[:shown])) + (", ..." if len(names) > shown else "")
        affected = sum(1 for labels in label_lists if any(label not in seen for label in labels))
        count = f"{len(names)} label{'s' if len(names) != 1 else ''}"
        message = (
            f"{count} of {split} never occur in train ({listed}; in {affected} of {len(label_lists)} {split} "
            "examples): the model cannot learn them"
        )
        found.append(DataWarning("unseen_labels", message, (keys or {}).get(split, f"data.{split}")))
    return found


def maxlen_warning(
    token_lengths: Mapping[str, Optional[Sequence[int]]],
    maxlen: int,
    *,
    share: float = 0.05,
    key: str = "model.maxlen",
) -> Optional[DataWarning]:
    """`maxlen` cuts more than `share` of the texts of some split (token lengths per split).

    >>> print(maxlen_warning({"train": [10, 40, 50, 12], "dev": [10, 11]}, 32))   # doctest: +NORMALIZE_WHITESPACE
    model.maxlen 32 cuts 2 of 4 train texts (50%); 95% of train texts have at most 49 tokens, the longest 50:
    raise model.maxlen (at most model.encoder.max_sequence_length) if the ends of the texts matter
    (check model.maxlen)
    """
    measured = {split: [int(n) for n in lengths] for split, lengths in token_lengths.items() if lengths is not None}
    measured = {split: lengths for split, lengths in measured.items() if lengths}
    parts = []
    for split, lengths in measured.items():
        cut = sum(1 for length in lengths if length > maxlen)
        if cut > share * len(lengths):
            parts.append(f"{cut} of {len(lengths)} {split} texts ({_percent(cut, len(lengths))})")
    if not parts:
        return None
    name, lengths = next(iter(measured.items()))
    p95 = int(np.ceil(np.percentile(list(lengths), 95)))
    message = (
        f"{key} {maxlen} cuts {', '.join(parts)}; 95% of {name} texts have at most {p95} tokens, the longest "
        f"{max(lengths)}: raise {key} (at most model.encoder.max_sequence_length) if the ends of the texts matter"
    )
    return DataWarning("maxlen_cut", message, key)


def data_warnings(
    splits: Mapping[str, Optional[SplitData]],
    *,
    label_separator: Optional[str] = None,
    check_separator: bool = True,
    labels_in_lists: bool = False,
    maxlen: Optional[int] = None,
    split_keys: Optional[Mapping[str, str]] = None,
) -> list:
    """Every check that applies, in order: the label separator (unless
    `check_separator` is false: a task whose labels are not read from strings),
    swapped fields (on the first split, train; only by the labels' length
    when labels look joined, which explains many labels), labels unseen in train, and
    `maxlen` (when token lengths are given). `split_keys` names the config key
    of each later split (`{"dev": "data.dev_fraction"}`).

    >>> splits = {"train": SplitData(["x"] * 20, [["sports|politics"], ["sports"]] * 10), "dev": None}
    >>> [warning.code for warning in data_warnings(splits, label_separator=",")]
    ['label_separator', 'swapped_fields']
    """
    present = {name: split for name, split in splits.items() if split is not None}
    if not present:
        return []
    train_name, train = next(iter(present.items()))
    found = []
    if check_separator:
        every = [labels for split in present.values() for labels in split.labels]
        found.append(separator_warning(every, label_separator, in_lists=labels_in_lists))
    # Joined labels explain many distinct labels: then only their length hints at swapped fields.
    joined = found and found[0] is not None
    found.append(swapped_fields_warning(train.texts, train.labels, ratio=None if joined else 0.5))
    others = {name: split.labels for name, split in present.items() if name != train_name}
    found.extend(unseen_labels_warnings(train.labels, others, keys=split_keys))
    if maxlen is not None:
        lengths = {name: split.token_lengths for name, split in present.items() if split.token_lengths is not None}
        if lengths:
            found.append(maxlen_warning(lengths, maxlen))
    return [warning for warning in found if warning is not None]


def check_warnings(warnings: Sequence[DataWarning], on_warning: str, path: str) -> None:
    """Under `on_warning == "error"`, one `DataError` (naming `path`, the train file)
    listing every warning; under `"count"`, nothing.

    >>> check_warnings([DataWarning("maxlen_cut", "model.maxlen 8 cuts 9 of 10 train texts", "model.maxlen")],
    ...                "error", "train.csv")   # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    toolkit.data.errors.DataError: train.csv: 1 data warning with data.on_warning: error: 1) model.maxlen 8 cuts
    9 of 10 train texts (check model.maxlen). Fix it, or set data.on_warning: count to train anyway
    """
    if on_warning not in ("count", "error"):
        raise ValueError(f"on_warning must be 'count' or 'error'; got {on_warning!r}")
    if on_warning == "count" or not warnings:
        return
    listed = "; ".join(f"{number}) {warning}" for number, warning in enumerate(warnings, start=1))
    count = f"{len(warnings)} data warning{'s' if len(warnings) != 1 else ''}"
    fix = "Fix it" if len(warnings) == 1 else "Fix them"
    raise DataError(
        path,
        None,
        f"{count} with data.on_warning: error: {listed}. {fix}, or set data.on_warning: count to train anyway",
        reason="data warnings",
    )
