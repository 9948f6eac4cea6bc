"""Training targets of the semi-pointer semi-tagging relation extractor.

Each gold triple `(subject, predicate, object)` is located in its text and
turned into token spans:

1. The entity string is searched in the text; the FIRST occurrence whose ends
   fall on token boundaries is used (bert4keras searches the entity's token ids
   in the sentence's token ids and also takes the first match). An entity found
   only inside a longer token ("Bean" in "Beans") falls back to its first
   occurrence, widened to the tokens covering it, and is counted as
   `"not on token boundaries"` (kept).
2. The character span becomes an inclusive token span through the tokenizer's
   offsets.

A triple is dropped, and counted in a `TargetReport` by reason, when its
subject or object is not in the text (`"subject not in text"`,
`"object not in text"`), lies in the part cut off by `maxlen`
(`"subject beyond maxlen"`, `"object beyond maxlen"`), or its predicate is not
in the predicate list (`"unknown predicate"`); with `on_missing="error"` the
first such triple raises `TargetError` instead.

Array layouts (`seq` = number of tokens, `[CLS]` and `[SEP]` included):

- `subject_labels(seq)`: float32 `[2, seq]`; row 0 marks subject starts, row 1
  subject ends.
- `object_labels(subject_span, seq)`: float32 `[num_predicates, 2, seq]`; for
  predicate `p`, row `[p, 0]` marks the starts and `[p, 1]` the ends of the
  objects of that subject.

Example:

```python
from toolkit.encoders.tokenizer import WordPieceTokenizer
from toolkit.relations.targets import build_targets

tokenizer = WordPieceTokenizer("vocab.txt")
targets, report = build_targets(["周杰伦的父亲是周耀中"], [[("周杰伦", "父亲", "周耀中")]],
                                tokenizer, predicates=["父亲"], maxlen=64)
targets[0].subject_spans          # [(1, 3)]
targets[0].objects[(1, 3)]        # [(0, 8, 10)]: predicate 0, tokens 8..10
targets[0].object_labels((1, 3)).shape   # (1, 2, 12)
```
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = [
    "DROP_REASONS",
    "RelationTargets",
    "TargetError",
    "TargetReport",
    "build_targets",
    "locate_entity",
    "place_entity",
]

DROP_REASONS = (
    "subject not in text",
    "object not in text",
    "subject beyond maxlen",
    "object beyond maxlen",
    "unknown predicate",
)
WARNING_REASONS = ("not on token boundaries",)
ON_MISSING_CHOICES = ("count", "error")


class TargetError(ValueError):
    """A gold triple that cannot become a training target (`on_missing="error"`)."""

    def __init__(self, message: str, reason: str, index: int):
        super().__init__(message)
        self.reason = reason
        self.index = index


@dataclass
class TargetReport:
    """What happened to the gold triples while building targets.

    Attributes:
        num_triples: gold triples seen (after removing duplicates per text).
        num_kept: triples that became targets.
        dropped: count of dropped triples by reason (see `DROP_REASONS`).
        warnings: count of kept triples with a note ("not on token boundaries").
        examples: the first `max_examples` problems as
            `(text_index, triple, reason)`.
    """

    num_triples: int = 0
    num_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    max_examples: int = 5

    @property
    def num_dropped(self) -> int:
        return sum(self.dropped.values())

    def note(self, counter: Counter, index: int, triple: tuple, reason: str) -> None:
        counter[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((index, triple, reason))

    def summary(self) -> str:
        """One line for a log, e.g. `'kept 98 of 100 triples; dropped 2 (2 object not in text)'`."""
        line = f"kept {self.num_kept} of {self.num_triples} triples"
        if self.dropped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in self.dropped.most_common())
            line += f"; dropped {self.num_dropped} ({reasons})"
        if self.warnings:
            notes = ", ".join(f"{count} {reason}" for reason, count in self.warnings.most_common())
            line += f"; kept with a note: {notes}"
        return line

    def as_dict(self) -> dict:
        """A JSON-ready dict of the counts."""
        return {
            "num_triples": self.num_triples,
            "num_kept": self.num_kept,
            "num_dropped": self.num_dropped,
            "dropped": dict(self.dropped),
            "warnings": dict(self.warnings),
        }


@dataclass
class RelationTargets:
    """The training targets of one text.

    Attributes:
        text: the text, as given.
        encoding: its tokenizer `Encoding` (truncated to `maxlen`).
        token_ids, segment_ids: int32 `[seq]`.
        subject_spans: the distinct gold subjects as inclusive token spans
            `(start, end)`, sorted.
        objects: for each subject span, its objects as
            `(predicate_index, start, end)` token spans, sorted.
        num_predicates: the length of the predicate list.
    """

    text: str
    encoding: object
    token_ids: np.ndarray
    segment_ids: np.ndarray
    subject_spans: list
    objects: dict
    num_predicates: int

    def __len__(self) -> int:
        return len(self.token_ids)

    def subject_labels(self, seq_len: Optional[int] = None) -> np.ndarray:
        """float32 `[2, seq_len]`: subject starts (row 0) and ends (row 1)."""
        labels = np.zeros((2, seq_len or len(self)), dtype="float32")
        for start, end in self.subject_spans:
            labels[0, start] = 1.0
            labels[1, end] = 1.0
        return labels

    def object_labels(self, subject_span, seq_len: Optional[int] = None) -> np.ndarray:
        """float32 `[num_predicates, 2, seq_len]`: object starts/ends of one subject."""
        labels = np.zeros((self.num_predicates, 2, seq_len or len(self)), dtype="float32")
        for predicate, start, end in self.objects.get(tuple(subject_span), ()):
            labels[predicate, 0, start] = 1.0
            labels[predicate, 1, end] = 1.0
        return labels

    def triples(self, predicates: Sequence[str]) -> list:
        """The kept triples as strings, read back from the text through the offsets."""

        def surface(start, end):
            return self.text[self.encoding.offsets[start][0] : self.encoding.offsets[end][1]]

        return [
            (surface(*subject), predicates[predicate], surface(start, end))
            for subject, found in self.objects.items()
            for predicate, start, end in found
        ]


def locate_entity(encoding, entity: str):
    """Token span of the first token-aligned occurrence of `entity` in `encoding.text`.

    Returns `(token_start, token_end, status)` with status `"ok"` or
    `"not on token boundaries"` (the first occurrence, widened to its tokens),
    or `(None, None, reason)` with reason `"not in text"` or `"beyond maxlen"`
    (the first occurrence lies in the truncated part).
    """
    text = encoding.text
    if not entity or entity not in text:
        return None, None, "not in text"
    starts, ends = {}, {}
    for index, (char_start, char_end) in enumerate(encoding.offsets):
        if char_start == char_end or encoding.segment_ids[index] != 0:
            continue  # [CLS], [SEP] or a second segment.
        starts.setdefault(char_start, index)
        ends[char_end] = index
    covered_end = max(ends) if ends else 0
    first = text.find(entity)
    position = first
    while position != -1:
        char_end = position + len(entity)
        if char_end > covered_end and _has_visible_characters(text[max(position, covered_end) : char_end]):
            break  # This and every later occurrence run past the truncation.
        if position in starts and char_end in ends:
            return starts[position], ends[char_end], "ok"
        position = text.find(entity, position + 1)
    first_end = first + len(entity)
    if first_end > covered_end and _has_visible_characters(text[max(first, covered_end) : first_end]):
        return None, None, "beyond maxlen"
    span = _covering_tokens(encoding, first, first_end)
    if span is None:
        return None, None, "not in text"  # Only characters the tokenizer drops.
    return span[0], span[1], "not on token boundaries"


def place_entity(tokenizer, encoding, char_start: int, char_end: int):
    """Token span of the entity at characters `[char_start, char_end)`, as `locate_entity` returns it.

    `"ok"` when the span starts and ends on token boundaries, `"not on
    token boundaries"` (the covering tokens) when not, and `(None, None,
    "beyond maxlen")` when `maxlen` cut it off.
    """
    span = tokenizer.char_span_to_token_span(encoding, char_start, char_end)
    if span is None:
        covered = [
            end for (start, end), segment in zip(encoding.offsets, encoding.segment_ids) if segment == 0 and end > start
        ]
        if covered and char_start < max(covered):
            return None, None, "not in text"  # Only characters the tokenizer drops.
        return None, None, "beyond maxlen"
    aligned = encoding.offsets[span[0]][0] == char_start and encoding.offsets[span[1]][1] == char_end
    return span[0], span[1], "ok" if aligned else "not on token boundaries"


def _covering_tokens(encoding, char_start, char_end):
    covering = [
        index
        for index, (start, end) in enumerate(encoding.offsets)
        if start != end and encoding.segment_ids[index] == 0 and start < char_end and end > char_start
    ]
    return (covering[0], covering[-1]) if covering else None


def _has_visible_characters(text: str) -> bool:
    return any(not character.isspace() for character in text)


def build_targets(
    texts: Sequence[str],
    triples: Sequence[Sequence[tuple]],
    tokenizer,
    predicates: Sequence[str],
    maxlen: int,
    *,
    spans: Optional[Sequence] = None,
    on_missing: str = "count",
    report: Optional[TargetReport] = None,
):
    """Turn texts and their gold triples into `RelationTargets`.

    Args:
        texts: the texts.
        triples: per text, `(subject, predicate, object)` string triples.
        tokenizer: a `toolkit.encoders.WordPieceTokenizer` (anything with
            `encode_batch(texts, maxlen=...)` returning encodings with
            `token_ids`, `segment_ids`, `offsets`, `text`).
        predicates: the predicate list; index `p` is row `p` of the object
            labels.
        maxlen: maximum tokens per text, `[CLS]` and `[SEP]` included.
        spans: per text, None or for each triple its `((start, end), (start,
            end))` characters of subject and object (token layouts): the
            entities are placed there instead of searched for, so two
            mentions with the same words stay two.
        on_missing: `"count"` drops a triple that cannot be placed and counts
            it in the report; `"error"` raises `TargetError` for the first one.
        report: a `TargetReport` to add to (a new one by default).

    Returns:
        `(targets, report)`: one `RelationTargets` per text (texts with no
        usable triple included, with no subjects), and the report.
    """
    if on_missing not in ON_MISSING_CHOICES:
        raise ValueError(f"on_missing must be 'count' or 'error'; got {on_missing!r}.")
    if len(texts) != len(triples):
        raise ValueError(f"texts and triples must have the same length; got {len(texts)} and {len(triples)}.")
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 3:
        raise ValueError(f"maxlen must be an integer of at least 3; got {maxlen!r}.")
    predicate_index = {name: index for index, name in enumerate(predicates)}
    if len(predicate_index) != len(predicates):
        raise ValueError("predicates must not repeat a name.")
    report = report if report is not None else TargetReport()
    encodings = tokenizer.encode_batch(list(texts), maxlen=maxlen)
    all_targets = []
    if spans is not None and len(spans) != len(triples):
        raise ValueError(f"spans must have one entry per text; got {len(spans)} for {len(triples)} texts.")
    for index, (encoding, text_triples) in enumerate(zip(encodings, triples)):
        objects: dict = {}
        text_spans = spans[index] if spans is not None else None
        if text_spans is None:
            placed = dict.fromkeys((tuple(item), None) for item in text_triples)
        else:
            placed = dict.fromkeys((tuple(item), span) for item, span in zip(text_triples, text_spans))
        for triple, char_spans in placed:
            report.num_triples += 1
            subject, predicate, object_ = triple
            reason = None
            if predicate not in predicate_index:
                reason = "unknown predicate"
            else:
                if char_spans is None:
                    subject_start, subject_end, subject_status = locate_entity(encoding, subject)
                    object_start, object_end, object_status = locate_entity(encoding, object_)
                else:
                    subject_start, subject_end, subject_status = place_entity(tokenizer, encoding, *char_spans[0])
                    object_start, object_end, object_status = place_entity(tokenizer, encoding, *char_spans[1])
                if subject_start is None:
                    reason = f"subject {subject_status}"
                elif object_start is None:
                    reason = f"object {object_status}"
            if reason is not None:
                if on_missing == "error":
                    raise TargetError(f"text {index}: triple {triple!r}: {reason}.", reason, index)
                report.note(report.dropped, index, triple, reason)
                continue
            for status in {subject_status, object_status} - {"ok"}:
                report.note(report.warnings, index, triple, status)
            report.num_kept += 1
            found = objects.setdefault((subject_start, subject_end), set())
            found.add((predicate_index[predicate], object_start, object_end))
        all_targets.append(
            RelationTargets(
                text=encoding.text,
                encoding=encoding,
                token_ids=np.asarray(encoding.token_ids, dtype="int32"),
                segment_ids=np.asarray(encoding.segment_ids, dtype="int32"),
                subject_spans=sorted(objects),
                objects={span: sorted(found) for span, found in sorted(objects.items())},
                num_predicates=len(predicates),
            )
        )
    return all_targets, report
