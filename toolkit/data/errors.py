"""Errors that point at a file and line, and a report of the lines a reader skipped.

A reader raises `DataError` for the first bad record when
`on_bad_line="error"` (the default). With `on_bad_line="skip"` it records the
error in a `BadLineReport` instead and carries on; the pipeline logs
`report.summary()`.

Example:

```python
from toolkit.data.errors import BadLineReport, DataError

report = BadLineReport("train.jsonl")
report.handle(DataError("train.jsonl", 4, "empty text", reason="empty text"), "skip")
report.summary()
# 'train.jsonl: skipped 1 bad line (1 empty text); first: train.jsonl:4: empty text'
```
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from os import PathLike
from typing import Literal, Optional, Union

OnBadLine = Literal["error", "skip"]
ON_BAD_LINE_CHOICES = ("error", "skip")


class DataError(ValueError):
    """A problem in a data file, located by path and 1-based line number.

    `str(error)` is `"path:line: message"` (`"path: message"` when the
    problem concerns the whole file, `line=None`). `reason` is a short
    category used to count skipped lines ("malformed JSON", "empty text", ...);
    it defaults to the message.
    """

    def __init__(
        self,
        path: Union[str, PathLike],
        line: Optional[int],
        message: str,
        *,
        reason: Optional[str] = None,
    ):
        self.path = str(path)
        self.line = line
        self.message = message
        self.reason = reason or message
        location = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{location}: {message}")


def check_on_bad_line(value: str) -> str:
    """Return `value` if it is a valid `on_bad_line` choice, else raise ValueError."""
    if value not in ON_BAD_LINE_CHOICES:
        raise ValueError(f"on_bad_line must be one of {', '.join(map(repr, ON_BAD_LINE_CHOICES))}; got {value!r}")
    return value


@dataclass
class BadLineReport:
    """Counts of skipped lines by reason, and of kept records with a warning.

    `skipped` counts records left out (`on_bad_line="skip"`); `warnings`
    counts records kept with a note, such as a relation whose entity is not
    found in the text (`on_missing_entity="count"`). The first
    `max_examples` errors of each kind are kept for the log.
    """

    path: str
    skipped: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    warning_examples: list = field(default_factory=list)
    max_examples: int = 5

    def __post_init__(self):
        self.path = str(self.path)

    @property
    def num_skipped(self) -> int:
        """How many records were skipped."""
        return sum(self.skipped.values())

    @property
    def num_warnings(self) -> int:
        """How many kept records carry a warning."""
        return sum(self.warnings.values())

    def skip(self, error: DataError) -> None:
        """Count `error` as a skipped record."""
        self.skipped[error.reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(error)

    def warn(self, error: DataError) -> None:
        """Count `error` as a warning on a record that is kept."""
        self.warnings[error.reason] += 1
        if len(self.warning_examples) < self.max_examples:
            self.warning_examples.append(error)

    def handle(self, error: DataError, on_bad_line: str) -> None:
        """Raise `error` when `on_bad_line == "error"`, else count it as skipped."""
        if on_bad_line == "error":
            raise error
        self.skip(error)

    def summary(self) -> str:
        """One line for the log; `"<path>: no bad lines"` when nothing happened."""
        parts = []
        if self.skipped:
            n = self.num_skipped
            reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped.most_common())
            parts.append(f"skipped {n} bad line{'s' if n != 1 else ''} ({reasons}); first: {self.examples[0]}")
        if self.warnings:
            reasons = ", ".join(f"{count} {reason}" for reason, count in self.warnings.most_common())
            parts.append(f"kept with warnings: {reasons}; first: {self.warning_examples[0]}")
        if not parts:
            return f"{self.path}: no bad lines"
        return f"{self.path}: " + "; ".join(parts)

    def __bool__(self) -> bool:
        return bool(self.skipped or self.warnings)


BadLineCounter = BadLineReport
"""Alias of `BadLineReport`."""
