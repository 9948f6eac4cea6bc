"""Long texts read in windows, and what is found in them mapped back to the text.

A model reads `maxlen` tokens, `[CLS]` and `[SEP]` included. A text that fits
is one window: the whole text, read exactly as without windows. A longer text
is read (`plan_windows`, by `model.long_texts`):

- `sentences`: sentence by sentence (`sentence_spans`: after `.!?;` followed
  by a space and a capital, a digit or an opening quote, not after an
  abbreviation; after `。！？` and line breaks), each sentence a window of its
  own, a sentence longer than `maxlen` in overlapping windows as below. A
  model trained on sentences reads them best: put several in one window and it
  finds less (measured in `docs/results.md`).
- `windows`: overlapping windows of whole words over the whole text, at most
  `maxlen - 2` tokens each, each starting `stride` tokens after the one before
  (moved back to the start of a word), the last ending at the text's end.

Each window is a slice of the text's characters, `text[start:end]`, so a
decoder reads it as any short text; `Window.shift` puts a span it finds back
on the text's characters. A span touching an edge where a window cuts the
text (inside a sentence) may be the cut-off part of a longer one:
`Window.keeps` leaves it to the window before or after, which holds it whole
with context on both sides (the windows overlap by `maxlen - 2 - stride`
tokens). Spans found in two windows are the same characters of the text:
merged, they are one.

```python
plan = plan_windows(tokenizer, texts, maxlen=128)
for window in plan.windows:                      # every window of every text, text by text
    piece = texts[window.index][window.start : window.end]
```

Training reads the same windows (`window_examples`): each is an example
with the gold spans inside it; an annotation that lies in no window whole is
counted and named (`WindowReport`), never dropped in silence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

__all__ = [
    "ReadCounts",
    "Window",
    "WindowPlan",
    "WindowReport",
    "WindowedSplit",
    "decode_windows",
    "default_stride",
    "describe_windows",
    "join_texts",
    "merge_windows",
    "plan_windows",
    "sentence_spans",
    "window_examples",
    "windowed_split",
]

#: Windows decoded at a time: what a long document costs in memory is this many windows' outputs,
#: however long it is.
WINDOWS_PER_CALL = 512


def default_stride(maxlen: int) -> int:
    """Half a window's tokens (`(maxlen - 2) // 2`, at least 1): every token is read twice, once away from an edge.

    Measured on documents of joined dev sentences (`benchmarks/long_documents.py`, `docs/results.md`).
    """
    return max(1, (int(maxlen) - 2) // 2)


class Window(NamedTuple):
    """Characters `[start, end)` of text `index`; `cut_start` / `cut_end`: the text goes on before / after."""

    index: int
    start: int
    end: int
    cut_start: bool = False
    cut_end: bool = False

    def shift(self, span: Sequence[int]) -> tuple:
        """A `(start, end)` span of the window's characters as characters of the text."""
        return (int(span[0]) + self.start, int(span[1]) + self.start)

    def holds(self, start: int, end: int) -> bool:
        """Whether the text's characters `[start, end)` lie inside the window."""
        return self.start <= start and end <= self.end

    def keeps(self, start: int, end: int) -> bool:
        """Whether a span of the text's characters found in this window is kept: not touching an edge
        where the window cuts the text (there the span may be part of a longer one)."""
        return not ((self.cut_start and start <= self.start) or (self.cut_end and end >= self.end))


@dataclass
class WindowPlan:
    """The windows of some texts, text by text (`windows`), and how many texts needed more than one."""

    windows: list
    num_texts: int
    maxlen: int
    stride: int
    long_texts: int = 0
    longest_tokens: int = 0
    #: per long text (by index), the character where its first `maxlen` tokens end: what truncation reads
    cut_at: dict = field(default_factory=dict)

    def pieces(self, texts: Sequence[str]) -> list:
        """The windows' characters, one string a window."""
        return [texts[window.index][window.start : window.end] for window in self.windows]

    def groups(self, size: int = WINDOWS_PER_CALL):
        """The windows `size` at a time (the unit a decoder is called on: bounded memory)."""
        for first in range(0, len(self.windows), size):
            yield self.windows[first : first + size]


@dataclass
class ReadCounts:
    """What a predictor has read so far: texts, those longer than `maxlen` tokens, the windows they gave."""

    texts: int = 0
    long_texts: int = 0
    windows: int = 0

    def add(self, plan: WindowPlan) -> None:
        self.texts += plan.num_texts
        self.long_texts += plan.long_texts
        self.windows += len(plan.windows) - (plan.num_texts - plan.long_texts)

    def line(self, maxlen: int, long_texts: str) -> Optional[str]:
        """A log line on the long texts read, or None when there was none."""
        if not self.long_texts:
            return None
        share = f"{self.long_texts} of {self.texts} texts were longer than model.maxlen ({maxlen} tokens)"
        if long_texts == "sentences":
            return f"{share}: read whole, sentence by sentence, in {self.windows} windows"
        if long_texts == "windows":
            return f"{share}: read whole, in {self.windows} overlapping windows"
        return f"warning: {share}: only their first {maxlen} tokens were read (model.long_texts: truncate)"


#: `model.long_texts`'s values: read a long text sentence by sentence, in windows over all of it, or its start.
LONG_TEXTS = ("sentences", "windows", "truncate")


def window_unit(long_texts: str) -> str:
    """`plan_windows`' unit for a `model.long_texts` value (`ValueError` for an unknown one)."""
    if long_texts not in LONG_TEXTS:
        raise ValueError(f"long_texts must be one of {', '.join(map(repr, LONG_TEXTS))}; got {long_texts!r}.")
    return "tokens" if long_texts == "windows" else "sentences"


def _word_start_at_or_before(word_starts: np.ndarray, position: int, floor: int) -> int:
    """The last word start in `(floor, position]`, or `position` when the word runs past `floor`."""
    for candidate in range(position, floor, -1):
        if word_starts[candidate]:
            return candidate
    return position


def _word_start_at_or_after(word_starts: np.ndarray, position: int) -> int:
    for candidate in range(position, len(word_starts)):
        if word_starts[candidate]:
            return candidate
    return len(word_starts)


def token_windows(word_starts: np.ndarray, capacity: int, stride: int) -> list:
    """`[first, stop)` token ranges covering `len(word_starts)` tokens: at most `capacity` each, starting
    `stride` apart (moved back to a word start, never inside a word when a word fits), the last ending at the end.

    >>> token_windows(np.ones(10, bool), capacity=4, stride=2)
    [(0, 4), (2, 6), (4, 8), (6, 10)]
    >>> token_windows(np.array([1, 0, 1, 1, 0, 0, 1, 1], bool), capacity=4, stride=2)
    [(0, 3), (2, 6), (3, 7), (6, 8)]
    """
    count = len(word_starts)
    if count <= capacity:
        return [(0, count)]
    ranges = []
    first = 0
    while True:
        stop = first + capacity
        if stop >= count:
            ranges.append((first, count))
            return ranges
        stop = _word_start_at_or_before(word_starts, stop, first)  # end before a word that does not fit
        ranges.append((first, stop))
        following = min(first + stride, stop)
        if not word_starts[following]:  # back to its word's start, or on to the next word's
            back = _word_start_at_or_before(word_starts, following, first)
            following = back if word_starts[back] else min(_word_start_at_or_after(word_starts, following), stop)
        if following + capacity >= count:  # the last window: as much context as fits, up to the end
            aligned = _word_start_at_or_after(word_starts, count - capacity)
            if aligned <= stop:  # (else a word longer than the overlap: keep `following`, skip nothing)
                following = max(following, aligned)
        first = following


#: Sentence-final punctuation: Latin, the semicolon included (a boundary when whitespace and a capital, a digit
#: or an opening quote follow) and CJK or a line break (a boundary right after it), and what may close a sentence
#: after it.
_LATIN_ENDS = ".!?;"
_CJK_ENDS = "。！？\n"
_CLOSERS = "\"'”’)]」』）》"
_OPENERS = "\"'“‘([「『（《`"
#: Words whose period does not end a sentence ("Mr. Smith", "Acme Corp. said").
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "jr",
        "sr",
        "prof",
        "inc",
        "co",
        "corp",
        "ltd",
        "gen",
        "gov",
        "sen",
        "rep",
        "mt",
        "ft",
        "no",
        "vs",
        "etc",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "u.s",
    ]
)


def _abbreviation(text: str, period: int) -> bool:
    """Whether the period at `period` ends an abbreviation or an initial, not a sentence."""
    start = period
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:period]
    return (len(word) == 1 and word.isupper()) or word.lower() in _ABBREVIATIONS


def _past_closers(text: str, position: int) -> int:
    """Past the quotes and brackets that close a sentence at `position`, spaced out or not (`" ' '"`, as
    tokenized text writes them)."""
    boundary = position
    while True:
        following = boundary
        while following < len(text) and text[following] == " ":
            following += 1
        if following < len(text) and text[following] in _CLOSERS:
            after = text[following + 1 : following + 2]
            if text[following] in "\"'" and after.isalnum():
                return boundary  # a straight quote that opens the next sentence
            boundary = following + 1
            continue
        return boundary


def sentence_spans(text: str) -> list:
    """`(start, end)` character spans of a text's sentences, covering it in order (the space between two
    sentences begins the second).

    >>> text = "Mr. Lee met Ann in Rome. She left on May 2. 他来了。她走了！ok"
    >>> [text[start:end] for start, end in sentence_spans(text)]
    ['Mr. Lee met Ann in Rome.', ' She left on May 2.', ' 他来了。', '她走了！', 'ok']
    """
    spans, start, position, length = [], 0, 0, len(text)
    while position < length:
        character = text[position]
        if character not in _LATIN_ENDS and character not in _CJK_ENDS:
            position += 1
            continue
        boundary = _past_closers(text, position + 1)
        if character in _LATIN_ENDS:
            following = boundary
            while following < length and text[following].isspace():
                following += 1
            after = text[following] if following < length else ""
            if following == boundary or not after:  # "3.5", "U.S.": no space after, or the text's end
                position = boundary
                continue
            if not (after.isupper() or after.isdigit() or after in _OPENERS or "\u4e00" <= after <= "\u9fff"):
                position = following
                continue
            if character == "." and _abbreviation(text, position):
                position = following
                continue
        spans.append((start, boundary))
        start = position = boundary
    if start < length or not spans:
        spans.append((start, length))
    return spans


def plan_windows(
    tokenizer, texts: Sequence[str], maxlen: int, stride: Optional[int] = None, *, unit: str = "sentences"
) -> WindowPlan:
    """The windows a model of `maxlen` tokens reads `texts` in (see the module docstring).

    Args:
        tokenizer: a `toolkit.encoders.WordPieceTokenizer` (`word_tokens`).
        texts: the texts.
        maxlen: the model's tokens, `[CLS]` and `[SEP]` included.
        stride: tokens from a window's start to the next one's, at most
            `maxlen - 2`; `default_stride(maxlen)` when None.
        unit: `"sentences"`: a long text is read sentence by sentence
            (`sentence_spans`), each sentence a window of its own and a
            sentence longer than `maxlen` in overlapping windows: what a
            model trained on sentences reads best. `"tokens"`: overlapping
            windows over the whole text, sentences or not (a model trained on
            long texts in windows).
    """
    capacity = int(maxlen) - 2
    if capacity < 1:
        raise ValueError(f"maxlen must be at least 3 for windows; got {maxlen!r}.")
    stride = default_stride(maxlen) if stride is None else int(stride)
    if not 1 <= stride <= capacity:
        raise ValueError(f"stride must be between 1 and maxlen - 2 ({capacity}); got {stride!r}.")
    if unit not in ("sentences", "tokens"):
        raise ValueError(f"unit must be 'sentences' or 'tokens'; got {unit!r}.")
    texts = list(texts)
    windows, long_texts, longest, cut_at = [], 0, 0, {}
    for index, (text, tokens) in enumerate(zip(texts, tokenizer.word_tokens(texts, longer_than=capacity))):
        if tokens is None:
            windows.append(Window(index, 0, len(text)))
            continue
        offsets, word_starts = tokens
        long_texts += 1
        longest = max(longest, len(offsets))
        cut_at[index] = int(offsets[capacity - 1, 1])
        parts = sentence_spans(text) if unit == "sentences" else [(0, len(text))]
        for part_start, part_end in parts:
            first = int(np.searchsorted(offsets[:, 0], part_start, side="left"))
            stop = int(np.searchsorted(offsets[:, 0], part_end, side="left"))
            if first == stop:
                continue  # nothing but spaces
            for begin, end in token_windows(word_starts[first:stop], capacity, stride):
                cut_start, cut_end = begin > 0, first + end < stop
                start = int(offsets[first + begin, 0]) if cut_start or part_start else 0
                stop_char = int(offsets[first + end - 1, 1]) if cut_end else part_end
                windows.append(Window(index, start, stop_char, cut_start, cut_end))
    return WindowPlan(windows, len(texts), int(maxlen), stride, long_texts, longest, cut_at)


def merge_windows(plan: WindowPlan, found: Sequence[list], place: Callable) -> list:
    """Per text, what `place(window, item)` makes of each window's items, in order, each once.

    `found` holds each window's items (`plan.windows` order); `place` returns
    the item on the text's characters, or None to leave it out (a span cut by
    the window's edge: `Window.keeps`).
    """
    merged: list = [{} for _ in range(plan.num_texts)]
    for window, items in zip(plan.windows, found):
        for item in items:
            placed = place(window, item)
            if placed is not None:
                merged[window.index].setdefault(placed, None)
    return [list(items) for items in merged]


def decode_windows(
    tokenizer,
    texts: Sequence[str],
    decode: Callable,
    place: Callable,
    *,
    maxlen: int,
    stride=None,
    long_texts: str = "sentences",
    counts: Optional[ReadCounts] = None,
):
    """Per text, what `decode` finds in its windows, put back on its characters and merged (`merge_windows`).

    `decode(pieces)` returns each piece's items; it is called on at most
    `WINDOWS_PER_CALL` windows at a time, so a document of any length costs
    the memory of that many windows. `place(window, item)` is `merge_windows`'s.
    With `long_texts="truncate"`, `decode(texts)` reads each text's first
    `maxlen` tokens. `counts` adds up what was read.
    """
    texts = list(texts)
    plan = plan_windows(tokenizer, texts, maxlen, stride, unit=window_unit(long_texts))
    if counts is not None:
        counts.add(plan)
    if long_texts == "truncate":
        return decode(texts)
    found: list = []
    for group in plan.groups():
        found.extend(decode([texts[window.index][window.start : window.end] for window in group]))
    return merge_windows(plan, found, place)


@dataclass
class WindowReport:
    """Training annotations and windows: how many texts were longer than one window, how many windows
    they gave, and the annotations that lie in no window whole (counted, the first few named)."""

    texts: int = 0
    long_texts: int = 0
    windows: int = 0
    annotations: int = 0
    beyond_maxlen: int = 0
    unplaced: int = 0
    examples: list = field(default_factory=list)
    max_examples: int = 5

    def note_unplaced(self, text_index: int, annotation) -> None:
        self.unplaced += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((text_index, annotation))

    def summary(self, noun: str = "annotations") -> str:
        """One line for the log."""
        line = f"{self.long_texts} of {self.texts} texts longer than maxlen, read as {self.windows} windows"
        if self.beyond_maxlen:
            line += f"; {self.beyond_maxlen} {noun} lie past the first maxlen tokens (kept by the windows)"
        if self.unplaced:
            named = "; ".join(f"text {index}: {annotation!r}" for index, annotation in self.examples)
            line += f"; {self.unplaced} of {self.annotations} {noun} lie in no window whole and are left out ({named})"
        return line

    def as_dict(self) -> dict:
        return {
            "texts": self.texts,
            "long_texts": self.long_texts,
            "windows": self.windows,
            "annotations": self.annotations,
            "beyond_maxlen_without_windows": self.beyond_maxlen,
            "in_no_window": self.unplaced,
            "in_no_window_examples": [[index, list(annotation)] for index, annotation in self.examples],
        }


def window_examples(
    plan: WindowPlan,
    texts: Sequence[str],
    annotations: Sequence[list],
    spans_of: Callable,
    found_in: Optional[Callable] = None,
):
    """Each window as a training example with the annotations that lie inside it whole.

    Args:
        plan: `plan_windows` of `texts`.
        texts: the texts.
        annotations: per text, its annotations (triples, entities...).
        spans_of: `annotation -> list of (start, end)`, the character spans
            the annotation needs inside one window, or None when the data give
            none (entity strings to search for).
        found_in: for annotations without spans, `(piece, annotation) ->
            bool`, whether a window's characters hold it (each entity string
            occurs there); every window when None.

    Returns:
        `(pieces, per_window, moved, report)`: the windows' texts, their
        annotations, each annotation's spans on its window's own characters
        (None without spans), and a `WindowReport`.
    """
    report = WindowReport(texts=plan.num_texts, long_texts=plan.long_texts, windows=len(plan.windows))
    pieces, per_window, moved = [], [], []
    placed = [np.zeros(len(items), dtype=bool) for items in annotations]
    for window in plan.windows:
        piece = texts[window.index][window.start : window.end]
        kept, kept_spans = [], []
        for position, annotation in enumerate(annotations[window.index]):
            spans = spans_of(annotation)
            if spans is None:
                inside = found_in is None or found_in(piece, annotation)
            else:
                inside = all(window.holds(start, end) for start, end in spans)
            if inside:
                kept.append(annotation)
                kept_spans.append(
                    None if spans is None else tuple((s - window.start, e - window.start) for s, e in spans)
                )
                placed[window.index][position] = True
        pieces.append(piece)
        per_window.append(kept)
        moved.append(kept_spans)
    for index, items in enumerate(annotations):
        report.annotations += len(items)
        cut_at = plan.cut_at.get(index)
        for position, annotation in enumerate(items):
            if cut_at is not None:  # what truncation to `maxlen` tokens would lose
                spans = spans_of(annotation)
                if spans is None:
                    text = texts[index]
                    beyond = (
                        found_in is not None and found_in(text, annotation) and not found_in(text[:cut_at], annotation)
                    )
                else:
                    beyond = any(end > cut_at for _, end in spans)
                report.beyond_maxlen += bool(beyond)
            if not placed[index][position]:
                report.note_unplaced(index, annotation)
    return pieces, per_window, moved, report


def join_texts(texts: Sequence[str], annotations: Sequence[list], size: int, move: Callable, *, seed: int = 0):
    """Documents of `size` consecutive texts (in an order drawn with `seed`), for training a model to read
    several sentences at once: `(documents, their annotations)`.

    Texts are joined with a space, or with nothing when the first ends in a CJK character;
    `move(annotation, offset)` puts an annotation of a text at `offset` in its document.
    """
    order = np.random.default_rng(seed).permutation(len(texts))
    documents, moved = [], []
    for first in range(0, len(order) - size + 1, size):
        parts, found, position = [], [], 0
        for index in order[first : first + size]:
            text = texts[index]
            if parts:
                separator = "" if parts[-1] and "\u4e00" <= parts[-1][-1] <= "\u9fff" else " "
                parts.append(separator)
                position += len(separator)
            found.extend(move(annotation, position) for annotation in annotations[index])
            parts.append(text)
            position += len(text)
        documents.append("".join(parts))
        moved.append(found)
    return documents, moved


@dataclass
class WindowedSplit:
    """A split's texts as windows (`plan`), its annotations in them (`examples`) and the `report`."""

    plan: WindowPlan
    report: WindowReport
    pieces: list
    per_window: list
    moved: list

    def examples(self) -> tuple:
        """`(pieces, per_window, moved)`: each window's text, its annotations, and their spans on its characters."""
        return self.pieces, self.per_window, self.moved


def windowed_split(
    tokenizer, texts, annotations, maxlen, stride, spans_of, found_in=None, *, long_texts="sentences"
) -> WindowedSplit:
    """`plan_windows` and `window_examples` of one split (read as `long_texts` says; `truncate` plans sentences,
    for the counts)."""
    plan = plan_windows(tokenizer, texts, maxlen, stride, unit=window_unit(long_texts))
    pieces, per_window, moved, report = window_examples(plan, texts, annotations, spans_of, found_in)
    return WindowedSplit(plan, report, pieces, per_window, moved)


def describe_windows(splits: dict, model, noun: str, *, run=None, log=print) -> dict:
    """Log what `model.maxlen` cuts per split and what the windows keep (or, with `model.long_texts:
    truncate`, what is lost), and write it to `run/data_summary.json`; returns `splits`.

    `splits` maps a split's name to its `WindowedSplit`; `model` is the config's
    `model` section; `noun` names the annotations (`"triples"`, `"entities"`).
    """
    windows = model.long_texts != "truncate"
    summary = {"maxlen": model.maxlen, "long_texts": model.long_texts, "splits": {}}
    if windows:
        summary["window_stride"] = next(iter(splits.values())).plan.stride if splits else None
    for name, split in splits.items():
        report = split.report
        summary["splits"][name] = report.as_dict()
        if not report.long_texts:
            continue
        cut = (
            f"{name}: model.maxlen {model.maxlen} cuts {report.long_texts} of {report.texts} texts "
            f"(the longest {split.plan.longest_tokens} tokens)"
        )
        if windows:
            line = f"{cut}; read as {report.windows} windows of {report.texts} texts"
            if report.beyond_maxlen:
                line += f", which keep the {report.beyond_maxlen} {noun} past the first {model.maxlen} tokens"
            log(line)
            if report.unplaced:
                named = "; ".join(f"text {index + 1}: {item!r}" for index, item in report.examples)
                log(
                    f"warning: {name}: {report.unplaced} of {report.annotations} {noun} lie in no window whole "
                    "(their entities lie in different sentences, or further apart than a window) and are not "
                    f"learnt: {named} "
                    f"(check model.maxlen)"
                )
        elif report.beyond_maxlen:
            log(
                f"warning: {cut}; {report.beyond_maxlen} of {report.annotations} {noun} lie past it and are not "
                f"read: set model.long_texts: windows (check model.long_texts)"
            )
        else:
            log(cut)
    if run is not None:
        run.write_json("data_summary.json", summary)
    return splits
