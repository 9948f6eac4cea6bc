"""Streaming prediction over a file of texts, shared by the pipelines."""

import json
from pathlib import Path

from toolkit.atomic import partial_file
from toolkit.data import DataError
from toolkit.data._io import iter_lines

__all__ = ["iter_texts", "stream_predictions"]


def iter_texts(path, text_field="text"):
    """Yield `(line_number, text)` for each non-blank line of a file.

    A line starting with `{` is a JSON object whose `text_field` holds the
    text; any other line is the text itself. Problems raise `DataError` naming
    the file and line.
    """
    for number, line, error in iter_lines(path):
        if error is not None:
            raise error
        if not line.strip():
            continue
        text = line
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as problem:
                raise DataError(path, number, f"invalid JSON: {problem.msg}") from None
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise DataError(path, number, f"expected an object with a string field {text_field!r}")
            text = record[text_field]
        if not text.strip():
            raise DataError(path, number, "empty text")
        yield number, text


def stream_predictions(input_path, output_path, predict_records, *, text_field="text", chunk_size=1024):
    """Predict chunk by chunk and write one JSON line per input text.

    `predict_records(texts)` returns one JSON-ready dict per text. Memory stays
    bounded by `chunk_size`. The lines go to `<output>.partial`, moved onto
    `output_path` once every text is predicted (`toolkit.atomic.partial_file`),
    so an existing output file is never emptied by a run that fails. A bad
    input line stops it with a `DataError` naming `file:line`; the
    predictions of every text before that line are kept in the partial file,
    which the error names.

    Returns:
        The number of lines written.
    """
    output_path = Path(output_path)
    partial = output_path.with_name(output_path.name + ".partial")
    count = 0
    try:
        with partial_file(output_path) as output:

            def flush(texts):
                for record in predict_records(texts):
                    output.write(json.dumps(record, ensure_ascii=False) + "\n")
                output.flush()
                return len(texts)

            chunk = []
            try:
                for _, text in iter_texts(input_path, text_field):
                    chunk.append(text)
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
