"""Reuters-21578 from its original release into the layout `configs/reuters.yaml` reads.

    python -m toolkit convert reuters-sgml reuters21578.tar.gz data/mlc/reuters_r90

`convert_reuters_sgml` reads Reuters-21578 as the UCI KDD archive distributes
it (`reuters21578.tar.gz`: `reut2-000.sgm` ... `reut2-021.sgm`, SGML in
Latin-1) and writes:

- the ModApte split: `LEWISSPLIT="TRAIN"` (or `"TEST"`) with `TOPICS="YES"`,
  and at least one topic;
- R90: only the topics with at least one training and one test document;
  a document left with none of them is dropped;
- `train.jsonl` and `test.jsonl`, one document a line in file order:
  `{"id": NEWID, "text": title + "\\n" + body, "labels": [its R90 topics, in
  the file's order]}`; a story without a title and body (`TEXT
  TYPE="UNPROC"`) has its whole text; entities (`&lt;`) decoded, control
  characters (`&#3;`) removed;
- `labels.txt`: the R90 topics, one a line, sorted.

A document the converter cannot read (an unclosed `<REUTERS>`, no `NEWID`, an
unknown `LEWISSPLIT`) is a `DataError` naming the file and line. Everything is
read before anything is written; each output file is written atomically.
No Keras here.
"""

from __future__ import annotations

import bisect
import html
import json
import re
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from toolkit.atomic import write_text_atomic
from toolkit.data.errors import DataError

__all__ = ["ReutersConversion", "ReutersDocument", "convert_reuters_sgml", "read_reuters_sgml"]

PathType = Union[str, Path]


@dataclass(frozen=True)
class ReutersDocument:
    """One `<REUTERS>` element: where it is, its split attributes, topics and text."""

    path: str
    line: int
    newid: str
    topics_attribute: str
    lewis_split: str
    topics: tuple
    text: str


@dataclass
class ReutersConversion:
    """What `convert_reuters_sgml` read and wrote: counts for the log, the files written."""

    files_read: int = 0
    documents: int = 0
    written: dict = field(default_factory=dict)  # split -> documents
    labels: list = field(default_factory=list)
    dropped_topics: list = field(default_factory=list)  # ModApte topics outside R90
    without_r90_topic: Counter = field(default_factory=Counter)  # split -> documents dropped
    empty_texts: int = 0
    outputs: list = field(default_factory=list)

    def summary(self) -> str:
        """One line: documents written per split, topics kept and dropped."""
        splits = ", ".join(f"{count:,} {split}" for split, count in self.written.items())
        dropped = sum(self.without_r90_topic.values())
        return (
            f"{self.documents:,} documents in {self.files_read} files; wrote {splits} (ModApte) with "
            f"{len(self.labels)} topics (R90); left out {len(self.dropped_topics)} topics without both training "
            f"and test documents and {dropped} documents with none of the R90 topics; "
            f"{self.empty_texts} written documents have an empty text"
        )


# --- Reading the SGML ------------------------------------------------------------------

_TAG = re.compile(r"<REUTERS\b([^>]*)>|</REUTERS>")
_ATTRIBUTE = re.compile(r'([A-Za-z_-]+)\s*=\s*"([^"]*)"')
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ANY_TAG = re.compile(r"<[^>]*>")
TOPICS_VALUES = ("YES", "NO", "BYPASS")
LEWIS_SPLITS = ("TRAIN", "TEST", "NOT-USED")


def _clean(text: str) -> str:
    """Entities decoded, control characters (Reuters marks text with `&#2;`, `&#3;`, ...) removed, trimmed."""
    return _CONTROL.sub("", html.unescape(text)).strip()


def _element(content: str, offset: int, name: str, path: str, line_of: Callable[[int], int]):
    """`(inner text, its offset in the file)` of the first `<name>...</name>` in `content` (which starts at
    `offset` in the file), or None when there is none."""
    opening = re.search(rf"<{name}\b[^>]*>", content)
    if opening is None:
        return None
    closing = content.find(f"</{name}>", opening.end())
    if closing < 0:
        raise DataError(path, line_of(offset + opening.start()), f"<{name}> is never closed", reason="unclosed element")
    return content[opening.end() : closing], offset + opening.end()


def _sgml_files(source: Path) -> Iterator[tuple]:
    """(name, text) of each `reut2-*.sgm` in a folder or a `.tar.gz`, in name order, decoded as Latin-1."""
    if source.is_dir():
        paths = sorted(source.glob("reut2-*.sgm"))
        if not paths:
            raise DataError(source, None, "no reut2-*.sgm files here; unpack reuters21578.tar.gz into this folder")
        for path in paths:
            yield str(path), path.read_bytes().decode("latin-1")
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            members = sorted(
                (
                    item
                    for item in archive.getmembers()
                    if item.isfile() and re.fullmatch(r"reut2-\d+\.sgm", Path(item.name).name)
                ),
                key=lambda item: item.name,
            )
            if not members:
                raise DataError(source, None, "this archive holds no reut2-*.sgm files")
            for item in members:
                yield f"{source}/{item.name}", archive.extractfile(item).read().decode("latin-1")
    elif source.exists():
        raise DataError(source, None, "neither a folder of reut2-*.sgm files nor reuters21578.tar.gz")
    else:
        raise FileNotFoundError(f"{source} does not exist")


def read_reuters_sgml(path: str, text: str) -> Iterator[ReutersDocument]:
    """The documents of one Reuters-21578 SGML file's `text`; `path` names it in errors."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    line_starts = [0] + [newline.end() for newline in re.finditer("\n", text)]

    def line_of(offset: int) -> int:
        return bisect.bisect_right(line_starts, offset)

    opened = None
    found = 0
    for tag in _TAG.finditer(text):
        if tag.group(0).startswith("</"):
            if opened is None:
                raise DataError(path, line_of(tag.start()), "</REUTERS> without a <REUTERS> before it")
            yield _document(path, text, opened, tag.start(), line_of)
            found += 1
            opened = None
        elif opened is not None:
            raise DataError(
                path,
                line_of(opened.start()),
                f"<REUTERS> is not closed before the next one (line {line_of(tag.start())})",
                reason="unclosed element",
            )
        else:
            opened = tag
    if opened is not None:
        raise DataError(path, line_of(opened.start()), "<REUTERS> is never closed", reason="unclosed element")
    if not found:
        raise DataError(path, None, "no <REUTERS> documents: not a Reuters-21578 SGML file")


def _document(path: str, text: str, opening: re.Match, end: int, line_of) -> ReutersDocument:
    line = line_of(opening.start())
    attributes = {name.upper(): value for name, value in _ATTRIBUTE.findall(opening.group(1))}
    newid = attributes.get("NEWID", "")
    if not newid.isdigit():
        raise DataError(path, line, f"<REUTERS> needs a numeric NEWID; got {newid or 'none'}", reason="bad attribute")
    for name, allowed in (("TOPICS", TOPICS_VALUES), ("LEWISSPLIT", LEWIS_SPLITS)):
        if attributes.get(name) not in allowed:
            raise DataError(
                path,
                line,
                f"document {newid}: {name} must be one of {', '.join(allowed)}; got {attributes.get(name)!r}",
                reason="bad attribute",
            )
    start = opening.end()
    content = text[start:end]
    topics_element = _element(content, start, "TOPICS", path, line_of)
    topics = []
    for topic in re.findall(r"<D>(.*?)</D>", topics_element[0] if topics_element else "", flags=re.DOTALL):
        topic = _clean(topic)
        if topic and topic not in topics:
            topics.append(topic)
    story = ""
    text_element = _element(content, start, "TEXT", path, line_of)
    if text_element is not None:
        title = _element(*text_element, "TITLE", path, line_of)
        body = _element(*text_element, "BODY", path, line_of)
        if title is None and body is None:  # TYPE="UNPROC": the story is the TEXT itself
            story = _clean(_ANY_TAG.sub(" ", text_element[0]))
        else:
            story = "\n".join(
                part for part in (_clean(title[0]) if title else "", _clean(body[0]) if body else "") if part
            )
    return ReutersDocument(
        path=path,
        line=line,
        newid=newid,
        topics_attribute=attributes["TOPICS"],
        lewis_split=attributes["LEWISSPLIT"],
        topics=tuple(topics),
        text=story,
    )


# --- The conversion ----------------------------------------------------------------------


def convert_reuters_sgml(source: PathType, output: PathType) -> ReutersConversion:
    """Reuters-21578's SGML files (a folder or `reuters21578.tar.gz`) to ModApte R90 JSON lines in `output`.

    Writes `train.jsonl`, `test.jsonl` and `labels.txt` (see the module's
    docstring for what is in them) and returns the counts.

    ```python
    result = convert_reuters_sgml("reuters21578.tar.gz", "data/mlc/reuters_r90")
    print(result.summary())   # documents read and written, topics kept and left out
    ```
    """
    source, output = Path(source).expanduser(), Path(output).expanduser()
    result = ReutersConversion()
    splits = {"train": [], "test": []}
    seen = {}
    for name, text in _sgml_files(source):
        result.files_read += 1
        for document in read_reuters_sgml(name, text):
            result.documents += 1
            if document.newid in seen:
                raise DataError(
                    name,
                    document.line,
                    f"NEWID {document.newid} again (first at {seen[document.newid]})",
                    reason="duplicate id",
                )
            seen[document.newid] = f"{name}:{document.line}"
            if document.topics_attribute == "YES" and document.lewis_split in ("TRAIN", "TEST") and document.topics:
                splits[document.lewis_split.lower()].append(document)
    documents_with = {split: Counter(topic for doc in docs for topic in doc.topics) for split, docs in splits.items()}
    modapte_topics = set(documents_with["train"]) | set(documents_with["test"])
    r90 = sorted(topic for topic in modapte_topics if documents_with["train"][topic] and documents_with["test"][topic])
    result.labels = r90
    result.dropped_topics = sorted(modapte_topics - set(r90))
    kept = set(r90)
    lines = {}
    for split, documents in splits.items():
        rows = []
        for document in documents:
            labels = [topic for topic in document.topics if topic in kept]
            if not labels:
                result.without_r90_topic[split] += 1
                continue
            result.empty_texts += not document.text
            rows.append(json.dumps({"id": document.newid, "text": document.text, "labels": labels}, ensure_ascii=False))
        lines[split] = rows
        result.written[split] = len(rows)
    for split, rows in lines.items():
        result.outputs.append(write_text_atomic(output / f"{split}.jsonl", "".join(row + "\n" for row in rows)))
    result.outputs.append(write_text_atomic(output / "labels.txt", "".join(label + "\n" for label in r90)))
    return result
