"""Read entity recognition data: typed character spans of each text, nested and overlapping kept.

Layouts (`data.layout`), with one record each:

- `"spans"`: JSON lines `{"text": "...", "entities": [{"start": 0, "end": 3,
  "type": "PER"}]}`, character offsets, end exclusive (`text_field` and
  `entities_field` name other fields; dotted paths allowed).
- `"spert"`: token level, `{"tokens": [...], "entities": [{"type", "start",
  "end"}]}` (token offsets) or `"tags"` (BIO, BIOES or BILOU, detected;
  `toolkit.data.tokens`); the text is the tokens joined with spaces.
- `"lic2019"`, `"duie2"`: the entities of relation data, each subject with its
  `subject_type` and each object (every slot of a DuIE 2.0 object) with its
  `object_type`, at every place its string occurs in the text. Entities
  without a type are left out and counted.

A file that starts with `[` is one JSON array, any other JSON lines. Errors
name the file and the line where the bad record starts.

```python
from toolkit.data.entities import read_entities

data = read_entities("re/conll04/conll04_train.json", layout="spert")
data.texts[0][:30], data.entities[0][:2]   # ('Newspaper ` Explains \\' U.S. I', [(23, 27, 'Loc'), ...])
```
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, ClassVar, Optional, Union

from toolkit.data._io import read_text
from toolkit.data._records import RecordError, check_text, get_field, kind, split_path, suggest
from toolkit.data.errors import BadLineReport, DataError, check_on_bad_line
from toolkit.data.relations import _iter_records
from toolkit.data.tokens import checked_tokens, token_entities

__all__ = ["ENTITY_LAYOUTS", "EntityDataset", "read_entities", "read_entities_split", "read_entity_types"]

PathType = Union[str, PathLike]

ENTITY_LAYOUTS = ("spans", "spert", "lic2019", "duie2")
_DEFAULT_FIELDS = {
    "spans": ("text", "entities"),
    "spert": ("tokens", None),
    "lic2019": ("text", "spo_list"),
    "duie2": ("text", "spo_list"),
}


@dataclass
class EntityDataset:
    """Texts with their entities, as read from one file.

    `entities[i]` is a sorted list of distinct `(start, end, type)` character
    spans of `texts[i]` (end exclusive; nested and overlapping spans kept);
    `types` is the type list (the types file's, or those seen, sorted);
    `lines[i]` is where record `i` starts; `report` counts skipped records
    and entities left out.
    """

    path: str
    texts: list = field(default_factory=list)
    entities: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    types: list = field(default_factory=list)
    report: BadLineReport = None

    PER_EXAMPLE: ClassVar[tuple] = ("texts", "entities", "lines")

    def __post_init__(self):
        if self.report is None:
            self.report = BadLineReport(self.path)

    def __len__(self) -> int:
        return len(self.texts)

    def type_counts(self) -> Counter:
        """How many entities of each type."""
        return Counter(entity_type for entities in self.entities for _, _, entity_type in entities)


def read_entity_types(path: PathType) -> list:
    """The entity types of a file, in its order.

    Reads a SpERT types file (`{"entities": {...}, "relations": {...}}`), a
    JSON list of names, the schema lines of LIC2019 / DuIE 2.0 (the subject
    and object types they name), or plain text with one type a line.
    """
    from toolkit.data.schema import load_schema

    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("{") and '"entities"' in text:
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("entities"), dict):
            return list(document["entities"])
    if stripped.startswith("[") or stripped.startswith("{"):
        schema = load_schema(path)
        types = schema.entity_types or schema.predicates
    else:
        from toolkit.data.multilabel import read_label_names

        types = read_label_names(path)
    if not types:
        raise DataError(path, None, "the types file lists no entity type", reason="empty types")
    return types


def _spans_record(record, text_field, entities_field) -> tuple:
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {kind(record)}", "not an object")
    try:
        text = get_field(record, text_field)
        raw = get_field(record, entities_field)
    except KeyError as missing:
        raise RecordError(missing.args[0], "missing field") from None
    text = check_text(text, text_field)
    if not isinstance(raw, list):
        raise RecordError(f"field {entities_field!r} must be a list of entities, got {kind(raw)}", "bad entity")
    entities = []
    for position, item in enumerate(raw):
        where = f"entity {position} in {entities_field!r}"
        if isinstance(item, list) and len(item) == 3:
            start, end, entity_type = item
        elif isinstance(item, dict):
            values = []
            for key in ("start", "end", "type"):
                if key not in item:
                    others = [k for k in item if isinstance(k, str) and k not in ("start", "end", "type")]
                    raise RecordError(f"{where} has no {key!r} key" + suggest(key, others), "bad entity")
                values.append(item[key])
            start, end, entity_type = values
        else:
            raise RecordError(
                f"{where} must be {{start, end, type}} or [start, end, type], got {kind(item)}", "bad entity"
            )
        if not isinstance(entity_type, str) or not entity_type.strip():
            raise RecordError(f"{where}: the type must be a non-empty string, got {kind(entity_type)}", "bad entity")
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (start, end)) or not 0 <= start < end <= len(
            text
        ):
            raise RecordError(
                f"{where}: start and end must be character offsets with 0 <= start < end <= {len(text)} "
                f"(the text's length; end exclusive), got {start!r} and {end!r}",
                "bad entity",
            )
        entities.append((start, end, entity_type))
    return text, entities, 0


def _spert_record(record, tokens_field) -> tuple:
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {kind(record)}", "not an object")
    try:
        tokens = get_field(record, tokens_field)
    except KeyError as missing:
        raise RecordError(missing.args[0], "missing field") from None
    text, offsets = checked_tokens(tokens, tokens_field)
    spans = token_entities(record, len(tokens))
    return text, [(offsets[start][0], offsets[end - 1][1], entity_type) for start, end, entity_type in spans], 0


def _occurrences(text: str, entity: str) -> list:
    found, position = [], text.find(entity)
    while position != -1:
        found.append((position, position + len(entity)))
        position = text.find(entity, position + 1)
    return found


def _relation_record(record, text_field, triples_field) -> tuple:
    """Entities of a LIC2019 / DuIE record: every occurrence of each typed subject and object."""
    from toolkit.data._records import text_and_field

    text, raw = text_and_field(record, text_field, triples_field)
    if not isinstance(raw, list):
        raise RecordError(f"field {triples_field!r} must be a list of triples, got {kind(raw)}", "bad triple")
    named, untyped = [], 0
    for position, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise RecordError(
                f"triple {position} in {triples_field!r} must be an object, got {kind(item)}", "bad triple"
            )
        subject, subject_type = item.get("subject"), item.get("subject_type")
        objects, object_types = item.get("object"), item.get("object_type")
        if not isinstance(objects, dict):
            objects, object_types = {"@value": objects}, {"@value": object_types}
        elif not isinstance(object_types, dict):
            object_types = {"@value": object_types}
        pairs = [(subject, subject_type)] + [(value, object_types.get(slot)) for slot, value in objects.items()]
        for entity, entity_type in pairs:
            if not isinstance(entity, str) or not entity.strip():
                continue
            if not isinstance(entity_type, str) or not entity_type.strip():
                untyped += 1
                continue
            named.append((entity, entity_type))
    entities = [(start, end, entity_type) for entity, entity_type in named for start, end in _occurrences(text, entity)]
    return text, entities, untyped


def read_entities(
    path: PathType,
    *,
    layout: str = "spans",
    types: Union[PathType, list, None] = None,
    text_field: Optional[str] = None,
    entities_field: Optional[str] = None,
    on_bad_line: str = "error",
) -> EntityDataset:
    """Read one split of an entity recognition data set.

    Args:
        path: a JSON lines file or a file holding one JSON array.
        layout: one of `ENTITY_LAYOUTS` (see the module docstring).
        types: a types file (`read_entity_types`) or a list; an entity of
            another type is a bad record. None accepts any type and lists
            those seen, sorted.
        text_field, entities_field: field names for layout `"spans"`
            (default `text` and `entities`).
        on_bad_line: `"error"` raises DataError at the first bad record;
            `"skip"` leaves it out and counts it in `report`.
    """
    check_on_bad_line(on_bad_line)
    if layout not in ENTITY_LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(map(repr, ENTITY_LAYOUTS))}; got {layout!r}")
    default_text, default_entities = _DEFAULT_FIELDS[layout]
    text_field = text_field or default_text
    entities_field = entities_field or default_entities
    path = str(path)
    if isinstance(types, (str, PathLike)):
        type_list, types_name = read_entity_types(types), str(types)
    else:
        type_list, types_name = (list(types) if types is not None else None), "<types>"
    allowed = set(type_list) if type_list is not None else None

    dataset = EntityDataset(path=path, types=list(type_list or []))
    untyped = 0
    for number, record in _iter_records(path):
        if isinstance(record, DataError):
            dataset.report.handle(record, on_bad_line)
            continue
        try:
            if layout == "spans":
                text, entities, left_out = _spans_record(record, text_field, entities_field)
            elif layout == "spert":
                text, entities, left_out = _spert_record(record, text_field)
            else:
                text, entities, left_out = _relation_record(record, text_field, entities_field)
            if allowed is not None:
                for _, _, entity_type in entities:
                    if entity_type not in allowed:
                        raise RecordError(
                            f"entity type {entity_type!r} is not in the types {types_name}"
                            + suggest(entity_type, type_list),
                            "unknown type",
                        )
        except RecordError as problem:
            dataset.report.handle(DataError(path, number, problem.message, reason=problem.reason), on_bad_line)
            continue
        untyped += left_out
        dataset.texts.append(text)
        dataset.entities.append(sorted(set(entities)))
        dataset.lines.append(number)
    if untyped:
        dataset.report.warn(
            DataError(
                path, None, f"{untyped} subject(s) or object(s) without a type left out", reason="entity without a type"
            )
        )
    if not dataset.texts:
        detail = f" ({dataset.report.summary()})" if dataset.report.num_skipped else ""
        raise DataError(path, None, f"no examples found{detail}", reason="no examples")
    if type_list is None:
        dataset.types = sorted(dataset.type_counts())
    return dataset


def read_entities_split(data_config: Any, split: str = "train") -> EntityDataset:
    """Read `split` as an entity config's data section describes (`data.max_examples` is sampled by `read_splits`)."""
    return read_entities(
        split_path(data_config, split),
        layout=data_config.layout,
        types=data_config.types,
        text_field=data_config.text_field,
        entities_field=data_config.entities_field,
        on_bad_line=data_config.on_bad_line,
    )
