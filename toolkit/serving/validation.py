"""Reading a `POST /predict` body: every way it can be wrong is a `RequestError` with its status and one line.

No web library here: the checks take the body's bytes and its Content-Type,
so they are tested without a server.

```python
request = parse_predict_body(b'{"texts": ["a text"], "min_labels": 1}', "application/json", ServeLimits())
request.texts, request.rule        # (['a text'], {'min_labels': 1})
```
"""

import json
from dataclasses import dataclass, field
from typing import Optional

from toolkit._suggest import closest
from toolkit.serving.limits import ServeLimits

__all__ = ["RequestError", "PredictRequest", "parse_predict_body", "check_content_type", "RULE_KEYS"]

#: The request keys that change the run's decision rule for that request (`predict`'s flags).
RULE_KEYS = ("min_labels", "max_labels")
_KEYS = ("texts", *RULE_KEYS)
_EXPECTED = 'expected a JSON object {"texts": ["a text", ...]}'


class RequestError(Exception):
    """A request the server answers with `status` and `{"error": message}` (one line)."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())  # one line, whatever a library said
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class PredictRequest:
    """A checked request: its texts and the decision-rule settings it changes (`RULE_KEYS`)."""

    texts: list
    rule: dict = field(default_factory=dict)


def _kind(value) -> str:
    """How JSON calls a Python value read from it: `a string`, `a number`, `null`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def check_content_type(content_type: Optional[str]) -> None:
    """415 unless the body says it is JSON (or says nothing), in UTF-8."""
    if not content_type:
        return
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise RequestError(
            415, f"expected Content-Type: application/json; got {media!r} (curl: -H 'Content-Type: application/json')"
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise RequestError(415, f"expected a UTF-8 body; Content-Type says charset={charset}")


def _decoded(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as problem:
        bad = body[problem.start : problem.start + 1].hex()
        raise RequestError(400, f"the body is not valid UTF-8 (byte 0x{bad} at offset {problem.start})") from None
    if not text.strip():
        raise RequestError(400, f"empty body; {_EXPECTED}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise RequestError(
            400, f"malformed JSON: {problem.msg} (line {problem.lineno}, column {problem.colno})"
        ) from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None


def _texts(value, limits: ServeLimits) -> list:
    if not isinstance(value, list):
        raise RequestError(422, f"'texts' must be a list of strings; got {_kind(value)}")
    if not value:
        raise RequestError(422, "'texts' is empty: give at least one text")
    if len(value) > limits.max_texts:
        raise RequestError(
            413, f"{len(value)} texts in one request; at most {limits.max_texts} (send them in several requests)"
        )
    for index, text in enumerate(value):
        if not isinstance(text, str):
            raise RequestError(422, f"texts[{index}] must be a string; got {_kind(text)}")
        if len(text) > limits.max_text_chars:
            raise RequestError(
                413, f"texts[{index}] has {len(text)} characters; at most {limits.max_text_chars} a text"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as problem:
            code = ord(text[problem.start])
            raise RequestError(
                422, f"texts[{index}] holds a lone surrogate (\\u{code:04x} at character {problem.start}), not text"
            ) from None
    return value


def _rule(body: dict) -> dict:
    rule = {}
    for name in RULE_KEYS:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(422, f"{name!r} must be an integer or null; got {_kind(value)}")
        rule[name] = value
    return rule


def parse_predict_body(body: bytes, content_type: Optional[str], limits: ServeLimits) -> PredictRequest:
    """The texts and decision-rule settings of a `/predict` body, or a `RequestError`:

    - 415: a Content-Type other than JSON, or a charset other than UTF-8;
    - 413: a body over `max_body_bytes`, more than `max_texts` texts, a text over `max_text_chars`;
    - 400: a body that is not UTF-8 or not JSON;
    - 422: JSON of the wrong shape: not an object, an unknown key, `texts` missing, not a list,
      empty, or holding something other than strings (or a lone surrogate), a rule setting that
      is not an integer.
    """
    check_content_type(content_type)
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"the body has {len(body)} bytes; at most {limits.max_body_bytes}")
    parsed = _decoded(body)
    if not isinstance(parsed, dict):
        raise RequestError(422, f"{_EXPECTED}; got {_kind(parsed)}")
    for key in parsed:
        if key not in _KEYS:
            near = closest(key, _KEYS)
            hint = f"; did you mean {near!r}?" if near else f" (known: {', '.join(_KEYS)})"
            raise RequestError(422, f"unknown key {key!r}{hint}")
    if "texts" not in parsed:
        raise RequestError(422, f"missing 'texts'; {_EXPECTED}")
    return PredictRequest(texts=_texts(parsed["texts"], limits), rule=_rule(parsed))
