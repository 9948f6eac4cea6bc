"""Streaming prediction over a file of texts, shared by the pipelines.

`predict` reads its input the way the run read its data: a pipeline's
`prediction_input()` gives a `PredictionInput` (the run's data format, text
field and header), and `PredictionInput.for_file` decides how one file is read
from its extension:

- a file of the run's format (a CSV run and a `.csv` file): the same header
  and text column, or the same JSON `text_field`;
- a file of another known format (`.jsonl`, `.csv`, `.tsv`): that format's
  defaults (field or column `text`; a TSV file has no header and its text in
  column 0);
- anything else (`.txt`, no extension), and every file when the run names no
  format: line by line, a line starting with `{` being a JSON object with the
  text field, any other line the text itself.

Each input record (a line; a CSV record, which may span lines; never the
header) gives one output line, in order, blank ones included: a blank text
gives the record `{"text": "", **blank}` (no prediction), so output line `i`
answers input record `i`. The record's other fields (a JSON record's other
keys, a CSV row's other columns by header name, `column_<i>` without a header)
are carried into its output line, so results join back (a carried name the
prediction uses, such as the gold `labels`, becomes `input_labels`).

```python
from toolkit.streaming import PredictionInput, stream_predictions

layout = PredictionInput(format="csv", text_field="review", header=True, blank={"labels": []})
stream_predictions("reviews.csv", "predicted.jsonl", predict_records, layout=layout)
```
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Optional, Union

from toolkit.atomic import partial_file
from toolkit.data import DataError
from toolkit.data._io import iter_lines
from toolkit.data._records import get_field, suggest
from toolkit.data.multilabel import column_index, infer_format, layout_defaults, table_rows

__all__ = ["PredictionInput", "iter_records", "iter_texts", "predicted_records", "stream_predictions"]


@dataclass(frozen=True)
class PredictionInput:
    """How `predict` reads a file of texts (see the module docstring).

    Attributes:
        format: the run's data format, `"jsonl"`, `"csv"` or `"tsv"`; None reads
            every file line by line (JSON objects or plain text).
        text_field: the JSON field (a dotted name walks nested objects) or the
            CSV/TSV column (a header name, or a number from 0) of the text.
        header: whether a CSV/TSV file starts with a header row.
        blank: the fields, beside `"text"`, of the record written for a blank
            text (`{"labels": [], "scores": {}}`: nothing predicted).

    >>> run = PredictionInput(format="csv", text_field="review", header=True)
    >>> run.for_file("new.csv") == run
    True
    >>> run.for_file("new.tsv").text_field, run.for_file("notes.txt").format
    (0, None)
    """

    format: Optional[str] = None
    text_field: Union[str, int] = "text"
    header: Optional[bool] = None
    blank: Mapping = field(default_factory=dict)

    def for_file(self, path) -> "PredictionInput":
        """How to read `path`: the run's layout when the file's extension says the run's
        format, another format's defaults, or line by line (`format` None)."""
        found = infer_format(path)
        if found is None or self.format is None:
            named = isinstance(self.text_field, str) and self.format in (None, "jsonl")
            return replace(self, format=None, text_field=self.text_field if named else "text", header=None)
        if found == self.format:
            return self
        header, text_field, _, _ = layout_defaults(found)
        return replace(self, format=found, text_field=text_field, header=header)


def _json_record(path, number: int, line: str, text_field: str) -> tuple:
    """`(text, other fields)` of a JSON line; DataError naming the line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as problem:
        raise DataError(path, number, f"invalid JSON: {problem.msg}", reason="malformed JSON") from None
    except (ValueError, RecursionError) as problem:
        raise DataError(path, number, f"invalid JSON: {problem}", reason="malformed JSON") from None
    expected = f"expected an object with a string field {text_field!r}"
    if not isinstance(record, dict):
        raise DataError(path, number, expected, reason="bad text")
    try:
        text = get_field(record, text_field)
    except KeyError:
        raise DataError(path, number, expected + suggest(text_field, list(record)), reason="missing field") from None
    if not isinstance(text, str):
        raise DataError(path, number, expected, reason="bad text")
    holder = text_field if text_field in record else text_field.split(".")[0]
    return text, {key: value for key, value in record.items() if key != holder}


def _line_records(path, text_field: str, json_only: bool) -> Iterator[tuple]:
    for number, line, error in iter_lines(path):
        if error is not None:
            raise error
        if not line.strip():
            yield number, line, {}
        elif json_only or line.lstrip().startswith("{"):
            yield (number, *_json_record(path, number, line, text_field))
        else:
            yield number, line, {}


def _table_records(path, layout: PredictionInput) -> Iterator[tuple]:
    rows = table_rows(path, "\t" if layout.format == "tsv" else ",", blank=True)
    names, header_line = None, 0
    if layout.header:
        for number, row in rows:
            if isinstance(row, DataError):
                raise row
            if any(cell.strip() for cell in row):
                names, header_line = [cell.strip() for cell in row], number
                break
        if names is None:
            return
    index = column_index(path, layout.text_field, names, header_line, "text_field")
    for number, row in rows:
        if isinstance(row, DataError):
            raise row
        if not any(cell.strip() for cell in row):
            yield number, "", {}
            continue
        if len(row) <= index:
            raise DataError(
                path, number, f"expected at least {index + 1} columns, got {len(row)}", reason="too few columns"
            )
        other = {
            (names[column] if names is not None and column < len(names) else f"column_{column}"): cell
            for column, cell in enumerate(row)
            if column != index
        }
        yield number, row[index], other


def iter_records(path, layout: Optional[PredictionInput] = None) -> Iterator[tuple]:
    """Yield `(line_number, text, other_fields)` for every record of a file, blank ones included.

    `layout` (default: line by line, JSON field `text`) is resolved for the
    file with `PredictionInput.for_file`. A blank line, or a record whose text
    is blank, yields its text as it is (`""` for an empty line). A bad record
    raises `DataError` naming the file and line.
    """
    layout = (layout or PredictionInput()).for_file(path)
    if layout.format is None or layout.format == "jsonl":
        yield from _line_records(path, layout.text_field, json_only=layout.format == "jsonl")
    else:
        yield from _table_records(path, layout)


def iter_texts(path, text_field="text"):
    """Yield `(line_number, text)` for each non-blank line of a file, read line by line.

    A line starting with `{` is a JSON object whose `text_field` holds the
    text; any other line is the text itself. Problems raise `DataError` naming
    the file and line.
    """
    for number, text, _ in _line_records(path, text_field, json_only=False):
        if text.strip():
            yield number, text


def _merged(record: dict, other: dict) -> dict:
    """The prediction `record` with the input's `other` fields after it (`input_<name>` when a name is taken)."""
    if not other:
        return record
    merged = dict(record)
    for key, value in other.items():
        merged.setdefault(key if key not in record else f"input_{key}", value)
    return merged


def predicted_records(texts, predict_records, blank: Mapping = MappingProxyType({})) -> list:
    """One record per text, in order: `predict_records` on the non-blank texts (one call), and
    `{"text": text, **blank}` for a blank one (nothing predicted), as `predict` writes them and
    `serve` answers them.

    >>> predicted_records(["a b", " "], lambda texts: [{"text": t, "n": len(t)} for t in texts], {"n": 0})
    [{'text': 'a b', 'n': 3}, {'text': ' ', 'n': 0}]
    """
    given = [text for text in texts if text.strip()]
    predicted = iter(predict_records(given) if given else ())
    return [next(predicted) if text.strip() else {"text": text, **blank} for text in texts]


def stream_predictions(
    input_path,
    output_path,
    predict_records,
    *,
    text_field=None,
    chunk_size=1024,
    layout: Optional[PredictionInput] = None,
):
    """Predict chunk by chunk and write one JSON line per input record, blank ones included.

    `predict_records(texts)` returns one JSON-ready dict per (non-blank)
    text; a blank text gets `{"text": text, **layout.blank}` instead, and
    every record carries the input's other fields (see the module
    docstring). `layout` says how to read the input (default: line by line);
    `text_field`, when given, replaces its text field. Memory stays bounded by
    `chunk_size`. The lines go to `<output>.partial`, moved onto `output_path`
    once every record is predicted (`toolkit.atomic.partial_file`), so an
    existing output file is never emptied by a run that fails. A bad input
    line stops it with a `DataError` naming `file:line`; the predictions of
    every record before that line are kept in the partial file, which the
    error names.

    Returns:
        The number of lines written.
    """
    layout = layout or PredictionInput()
    if text_field is not None:
        layout = replace(layout, text_field=text_field)
    output_path = Path(output_path)
    partial = output_path.with_name(output_path.name + ".partial")
    count = 0
    try:
        with partial_file(output_path) as output:

            def flush(chunk):
                records = predicted_records([text for text, _ in chunk], predict_records, layout.blank)
                for record, (_, other) in zip(records, chunk):
                    output.write(json.dumps(_merged(record, other), ensure_ascii=False) + "\n")
                output.flush()
                return len(chunk)

            chunk = []
            try:
                for _, text, other in iter_records(input_path, layout):
                    chunk.append((text, other))
                    if len(chunk) >= chunk_size:
                        count += flush(chunk)
                        chunk = []
            except DataError:
                count += flush(chunk) if chunk else 0  # every good line before the bad one
                raise
            if chunk:
                count += flush(chunk)
    except DataError as error:
        if count == 0:
            partial.unlink(missing_ok=True)
            raise
        kept = f"the {count} prediction(s) before it are in {partial}; {output_path} was not changed"
        raise DataError(error.path, error.line, f"{error.message} ({kept})", reason=error.reason) from None
    return count
