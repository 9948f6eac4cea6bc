"""Read multi-label text classification data: JSON lines, CSV or TSV.

Every problem is a `toolkit.data.errors.DataError` whose message starts
with `path:line:`. With `on_bad_line="skip"` bad records are left out and
counted in `dataset.report`.

Example (Reuters R90 as JSON lines, GoEmotions as headerless TSV):

```python
from toolkit.data.multilabel import read_multilabel, build_label_vocabulary, to_multi_hot

reuters = read_multilabel("mlc/reuters_r90/train.jsonl")   # fields "text" and "labels"
emotions = read_multilabel(
    "mlc/goemotions/train.tsv", text_field=0, labels_field=1,
    label_separator=",", label_names="mlc/goemotions/labels.txt",
)
vocabulary = build_label_vocabulary([emotions], label_names="mlc/goemotions/labels.txt")
y = to_multi_hot(emotions.labels, vocabulary)   # (n, 28) int8
```
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

import numpy as np
from sklearn.preprocessing import MultiLabelBinarizer

from toolkit.data._io import iter_json_lines, iter_lines, iter_raw_lines
from toolkit.data._records import DIGITS, RecordError, check_text, kind, short, split_path, suggest, text_and_field
from toolkit.data.errors import BadLineReport, DataError, check_on_bad_line

PathType = Union[str, PathLike]
FieldType = Union[str, int]

FORMATS = ("jsonl", "csv", "tsv")
_EXTENSION_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
}


def infer_format(path: PathType) -> Optional[str]:
    """The data format implied by a file name (`.jsonl`/`.json`/`.ndjson`,
    `.csv`, `.tsv`/`.tab`), or None.

    >>> infer_format("train.tsv")
    'tsv'
    """
    return _EXTENSION_FORMATS.get(Path(path).suffix.lower())


def layout_defaults(format, *, header=None, text_field=None, labels_field=None, label_separator=None):
    """The layout of a multi-label file with every unset setting filled in, the one place they are derived:
    `(header, text_field, labels_field, label_separator)`.

    JSON lines read fields `text` and `labels` (a list, no separator, no
    header); CSV has a header and TSV none; with a header the columns are
    named `text` and `labels`, without one they are 0 and 1; CSV/TSV labels
    are split on `,`. The config's `data` section and `read_multilabel` both
    call this.

    >>> layout_defaults("tsv")
    (False, 0, 1, ',')
    >>> layout_defaults("jsonl", text_field="body")
    (None, 'body', 'labels', None)
    """
    if format != "jsonl" and header is None:
        header = format == "csv"
    named = format == "jsonl" or bool(header)
    text_field = ("text" if named else 0) if text_field is None else text_field
    labels_field = ("labels" if named else 1) if labels_field is None else labels_field
    if label_separator is None and format != "jsonl":
        label_separator = ","
    return header, text_field, labels_field, label_separator


@dataclass
class MultilabelDataset:
    """Texts and their label lists as read from one file.

    `lines[i]` is the line where example `i` starts, for messages;
    `label_names` is the label file's list when one was given; `report`
    counts the lines skipped with `on_bad_line="skip"`.
    """

    path: str
    texts: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    label_names: Optional[list] = None
    report: BadLineReport = None

    def __post_init__(self):
        if self.report is None:
            self.report = BadLineReport(self.path)

    #: The fields with one entry per example (`split_off` divides these).
    PER_EXAMPLE: ClassVar[tuple] = ("texts", "labels", "lines")

    def __len__(self) -> int:
        return len(self.texts)


def read_label_names(path: PathType) -> list:
    """Read a label file: one label a line; label id = line number counted from 0.

    Blank lines at the end are ignored; a blank line in the middle (it would
    shift the ids) or a repeated label is a DataError.

    >>> read_label_names("mlc/goemotions/labels.txt")[:2]   # doctest: +SKIP
    ['admiration', 'amusement']
    """
    names: list = []
    seen: dict = {}
    blank_line = None
    for number, text, error in iter_lines(path):
        if error is not None:
            raise error
        name = text.strip()
        if not name:
            blank_line = blank_line or number
            continue
        if blank_line is not None:
            raise DataError(
                path,
                blank_line,
                "blank line inside the label file (it would shift the label ids)",
                reason="blank label",
            )
        if name in seen:
            raise DataError(path, number, f"label {name!r} repeats line {seen[name]}", reason="duplicate label")
        seen[name] = number
        names.append(name)
    return names


class _LabelMapper:
    """Turn raw label values into label names, checking them against a label file."""

    def __init__(
        self, separator: Optional[str], names: Optional[list], names_path: Optional[str], labels_field: FieldType
    ):
        self.separator = separator
        self.names = names
        self.names_path = names_path
        self.name_set = set(names) if names is not None else None
        self.labels_field = labels_field

    def __call__(self, value: Any) -> list:
        tokens = self._tokens(value)
        labels: list = []
        for token in tokens:
            label = self._map(token)
            if label not in labels:
                labels.append(label)
        return labels

    def _tokens(self, value: Any) -> list:
        where = f"labels field {self.labels_field!r}"
        if isinstance(value, bool) or value is None:
            raise RecordError(f"{where} must be a list of labels, got {kind(value)}", "bad labels")
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            if self.separator is None:
                raise RecordError(
                    f"{where} is a string ({short(value)}); give a list of labels, or set label_separator to split it",
                    "bad labels",
                )
            return [piece.strip() for piece in value.split(self.separator) if piece.strip()]
        if isinstance(value, list):
            tokens = []
            for item in value:
                if isinstance(item, bool) or not isinstance(item, (str, int)):
                    raise RecordError(
                        f"{where} holds {kind(item)}; labels must be strings or integer ids",
                        "bad labels",
                    )
                if isinstance(item, str):
                    item = item.strip()
                    if not item:
                        raise RecordError(f"{where} holds an empty label", "bad labels")
                tokens.append(item)
            return tokens
        raise RecordError(f"{where} must be a list of labels, got {kind(value)}", "bad labels")

    def _map(self, token: Union[str, int]) -> str:
        if self.names is None:
            return str(token)
        if isinstance(token, str):
            if token in self.name_set:
                return token
            if not DIGITS.fullmatch(token):
                raise RecordError(
                    f"label {token!r} is not in the label file {self.names_path}" + suggest(token, self.names),
                    "unknown label",
                )
            if len(token) > 18:
                self._out_of_range(token)
            token = int(token)
        if not 0 <= token < len(self.names):
            self._out_of_range(token)
        return self.names[token]

    def _out_of_range(self, token: Union[str, int]) -> None:
        raise RecordError(
            f"label id {token} is out of range: the label file {self.names_path} has "
            f"{len(self.names)} labels (ids 0-{len(self.names) - 1})",
            "label id out of range",
        )


def _jsonl_records(path, text_field, labels_field, mapper) -> Iterator[tuple[int, Any]]:
    if isinstance(text_field, int) or isinstance(labels_field, int):
        raise DataError(
            path,
            None,
            "JSON lines need field names for text_field and labels_field, not column numbers",
            reason="bad configuration",
        )
    for number, record in iter_json_lines(path):
        if isinstance(record, DataError):
            yield number, record
            continue
        try:
            text, labels = text_and_field(record, text_field, labels_field)
            yield number, (text, mapper(labels))
        except RecordError as problem:
            yield number, DataError(path, number, problem.message, reason=problem.reason)


def column_index(path, name: FieldType, header: Optional[list], header_line: int, role: str) -> int:
    """The column number of `name` (a header name, or a column number) in a CSV/TSV file; DataError if none."""
    if isinstance(name, int):
        if name < 0:
            raise DataError(path, None, f"{role} column index must be >= 0, got {name}", reason="bad configuration")
        return name
    if header is None:
        if DIGITS.fullmatch(name):
            return int(name)
        raise DataError(
            path,
            None,
            f"{role} {name!r} is a column name but the file has no header; give a column number "
            "(from 0) or set header: true",
            reason="bad configuration",
        )
    if name in header:
        return header.index(name)
    raise DataError(
        path,
        header_line,
        f"no column {name!r} in the header (columns: {', '.join(map(repr, header))})" + suggest(name, header),
        reason="missing column",
    )


def table_rows(path, delimiter: str, *, blank: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield `(line, cells)` or `(line, DataError)` for each row of a CSV (`","`) or TSV (`"\t"`) file.

    A row is a line of a TSV file (split on tabs, no quoting) or a CSV record
    (quoted cells may span lines; `line` is where it starts). Rows whose cells
    are all blank are left out, unless `blank`: then they are yielded too
    (as `[]` for an empty line), so that a caller can keep one result per
    row (`toolkit.streaming` does).
    """
    if delimiter == "\t":
        for number, line, error in iter_lines(path):
            if error is not None:
                yield number, error
            elif line.strip():
                yield number, line.split("\t")
            elif blank:
                yield number, []
        return
    bad_lines: dict = {}

    def decoded_lines():
        for number, text, error in iter_raw_lines(path):
            if error is not None:
                bad_lines[number] = error
            yield text

    reader = csv.reader(decoded_lines(), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield start, DataError(path, start, f"malformed CSV: {error}", reason="malformed CSV")
            start = reader.line_num + 1
            continue
        end = reader.line_num
        bad = [bad_lines.pop(n) for n in range(start, end + 1) if n in bad_lines]
        if bad:
            yield start, bad[0]
        elif (row and any(cell.strip() for cell in row)) or blank:
            yield start, row
        start = end + 1


def _table_records(path, delimiter, text_field, labels_field, header, mapper):
    rows = table_rows(path, delimiter)
    names = None
    header_line = 0
    if header:
        for number, row in rows:
            if isinstance(row, DataError):
                raise row
            names = [cell.strip() for cell in row]
            header_line = number
            break
    text_index = column_index(path, text_field, names, header_line, "text_field")
    labels_index = column_index(path, labels_field, names, header_line, "labels_field")
    needed = max(text_index, labels_index) + 1
    for number, row in rows:
        if isinstance(row, DataError):
            yield number, row
            continue
        try:
            if len(row) < needed:
                raise RecordError(f"expected at least {needed} columns, got {len(row)}", "too few columns")
            text = check_text(row[text_index], text_field)
            yield number, (text, mapper(row[labels_index]))
        except RecordError as problem:
            yield number, DataError(path, number, problem.message, reason=problem.reason)


def read_multilabel(
    path: PathType,
    *,
    format: Optional[str] = None,
    text_field: Optional[FieldType] = None,
    labels_field: Optional[FieldType] = None,
    label_separator: Optional[str] = None,
    header: Optional[bool] = None,
    label_names: Union[PathType, Sequence[str], None] = None,
    max_examples: Optional[int] = None,
    on_bad_line: str = "error",
) -> MultilabelDataset:
    """Read one split of a multi-label data set.

    Args:
        path: the file.
        format: `"jsonl"`, `"csv"` or `"tsv"`; None infers it from the extension.
        text_field, labels_field: field names for JSON lines (a dotted name walks
            nested objects) and for CSV/TSV with a header, or column numbers
            from 0. Defaults: `"text"`/`"labels"` for JSON lines and files
            with a header, columns 0 and 1 without one.
        label_separator: splits a label string such as `"a|b"`; None when
            labels are a JSON list. CSV/TSV default to `","`.
        header: whether a CSV/TSV file starts with a header row (default: yes
            for CSV, no for TSV); must be None for JSON lines.
        label_names: a label file path (one label a line) or a list of names.
            Labels must then be names from it, or integer ids (JSON integers,
            or digit strings that are not themselves names) indexing it.
        max_examples: stop after this many good examples (the first ones; a
            config's `data.max_examples` is a seeded sample instead, see
            `toolkit.data.read_splits`).
        on_bad_line: `"error"` raises DataError at the first bad record;
            `"skip"` leaves bad records out and counts them in `report`.
            A line of invalid UTF-8 counts as a bad record; an unreadable or
            empty file is always an error, and so is a file where every record
            is bad.

    Returns:
        A `MultilabelDataset` with `texts`, `labels` (lists of label
        names, duplicates removed, order kept), `lines` and `report`.

    Example:

    ```python
    data = read_multilabel("train.csv", text_field="review", labels_field="tags",
                           label_separator="|", on_bad_line="skip")
    print(len(data), data.report.summary())
    ```
    """
    check_on_bad_line(on_bad_line)
    path = str(path)
    if format is None:
        format = infer_format(path)
        if format is None:
            raise DataError(
                path,
                None,
                "cannot tell the format from the file name; pass format='jsonl', 'csv' or 'tsv'",
                reason="bad configuration",
            )
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}; got {format!r}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer or None; got {max_examples!r}")
    if format == "jsonl" and header is not None:
        raise ValueError("header applies to csv and tsv files only; leave it None for jsonl")
    header, text_field, labels_field, label_separator = layout_defaults(
        format, header=header, text_field=text_field, labels_field=labels_field, label_separator=label_separator
    )
    if label_separator == "":
        raise ValueError("label_separator must not be empty")

    names = names_path = None
    if label_names is not None:
        if isinstance(label_names, (str, PathLike)):
            names_path = str(label_names)
            names = read_label_names(label_names)
        else:
            names = [str(name) for name in label_names]
            names_path = "<label_names>"
    mapper = _LabelMapper(label_separator, names, names_path, labels_field)

    if format == "jsonl":
        records = _jsonl_records(path, text_field, labels_field, mapper)
    else:
        records = _table_records(path, "\t" if format == "tsv" else ",", text_field, labels_field, header, mapper)

    dataset = MultilabelDataset(path=path, label_names=names)
    for number, record in records:
        if isinstance(record, DataError):
            dataset.report.handle(record, on_bad_line)
            continue
        text, labels = record
        dataset.texts.append(text)
        dataset.labels.append(labels)
        dataset.lines.append(number)
        if max_examples is not None and len(dataset.texts) >= max_examples:
            break
    if not dataset.texts:
        detail = f" ({dataset.report.summary()})" if dataset.report.num_skipped else ""
        raise DataError(path, None, f"no examples found{detail}", reason="no examples")
    return dataset


def read_multilabel_split(data_config: Any, split: str = "train") -> MultilabelDataset:
    """Read `split` (`"train"`, `"dev"` or `"test"`) as a config's data section describes.

    `data_config` is `config.data` of a multilabel
    `toolkit.config.MultilabelConfig`. The whole file is read:
    `data.max_examples` is a seeded sample that `toolkit.data.read_splits`
    draws from it afterwards, not the first lines.

    ```python
    train = read_multilabel_split(config.data, "train")
    ```
    """
    path = split_path(data_config, split)
    return read_multilabel(
        path,
        format=data_config.format,
        text_field=data_config.text_field,
        labels_field=data_config.labels_field,
        label_separator=data_config.label_separator,
        header=data_config.header if data_config.format != "jsonl" else None,
        label_names=data_config.label_names,
        on_bad_line=data_config.on_bad_line,
    )


def build_label_vocabulary(
    datasets: Iterable[Union[MultilabelDataset, Sequence[Sequence[str]]]],
    label_names: Union[PathType, Sequence[str], None] = None,
) -> list:
    """The label list that fixes the output order: the label file's order when
    given, else every label seen, sorted.

    Save this list with the model; never recompute it at prediction time.

    >>> build_label_vocabulary([[["b", "a"], ["c"]], [["a"]]])
    ['a', 'b', 'c']
    >>> build_label_vocabulary([[["b"]]], label_names=["b", "a"])
    ['b', 'a']
    """
    label_lists = [
        example
        for dataset in datasets
        for example in (dataset.labels if isinstance(dataset, MultilabelDataset) else dataset)
    ]
    seen = MultiLabelBinarizer().fit(label_lists).classes_.tolist()
    if label_names is None:
        return seen
    if isinstance(label_names, (str, PathLike)):
        names = read_label_names(label_names)
    else:
        names = [str(name) for name in label_names]
    unknown = sorted(set(seen) - set(names))
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(f"{len(unknown)} labels are not in label_names: {shown}")
    return names


def to_multi_hot(
    labels: Union[MultilabelDataset, Sequence[Sequence[str]]],
    vocabulary: Sequence[str],
    dtype: Any = "int8",
) -> np.ndarray:
    """Encode label lists as a `(n_examples, n_labels)` 0/1 array in vocabulary order.

    >>> to_multi_hot([["b"], ["a", "b"], []], ["a", "b"]).tolist()
    [[0, 1], [1, 1], [0, 0]]
    """
    if isinstance(labels, MultilabelDataset):
        labels = labels.labels
    vocabulary = list(vocabulary)
    index = set(vocabulary)
    if len(index) != len(vocabulary):
        raise ValueError("vocabulary has repeated labels")
    for row, example_labels in enumerate(labels):
        for label in example_labels:
            if label not in index:
                raise ValueError(
                    f"example {row}: label {label!r} is not in the vocabulary" + suggest(str(label), index)
                )
    binarizer = MultiLabelBinarizer(classes=vocabulary).fit([])
    return binarizer.transform(labels).astype(dtype, copy=False)
