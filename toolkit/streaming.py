"""Streaming prediction over a file of texts, shared by the pipelines."""

import json
from pathlib import Path

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
    bounded by `chunk_size`; lines are written (and flushed) as each chunk is
    done, so an error in the input keeps everything written before it.

    Returns:
        The number of lines written.
    """
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(output_path, "w", encoding="utf-8") as output:

        def flush(texts):
            for record in predict_records(texts):
                output.write(json.dumps(record, ensure_ascii=False) + "\n")
            output.flush()
            return len(texts)

        chunk = []
        for _, text in iter_texts(input_path, text_field):
            chunk.append(text)
            if len(chunk) >= chunk_size:
                count += flush(chunk)
                chunk = []
        if chunk:
            count += flush(chunk)
    return count
