"""Read relation (subject, predicate, object) extraction data.

Layouts:

- `"lic2019"`: JSON lines ``{"text": ..., "spo_list": [{"subject": ...,
  "predicate": ..., "object": ...}, ...]}`` (LIC2019 / DuIE); schema
  `all_50_schemas` (JSON lines with `"predicate"`).
- `"casrel"`: one JSON array `[{"text": ..., "triple_list": [[s, p, o], ...]}]`
  (CasRel's NYT / WebNLG files); schema `rel2id.json`.
- `"custom"`: your own field names: `text_field` and `triples_field`
  (dotted names walk nested objects), triples as objects with
  `subject_key`/`predicate_key`/`object_key` or as `[s, p, o]` lists.

Whatever the layout, a file that starts with `[` is read as one JSON array
and any other as JSON lines. Errors name the file and the line where the bad
record starts.

Example:

```python
from toolkit.data.relations import read_relations

data = read_relations("re/webnlg_star/train_triples.json", layout="casrel",
                      schema="re/webnlg_star/rel2id.json")
data.texts[0], data.triples[0]   # ('Alan Bean , who ...', [('Bean', 'was a crew member of', '12'), ...])
```
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, ClassVar, Optional, Union

from toolkit.data._io import first_character, iter_json_array, iter_json_lines, parse_json, read_text
from toolkit.data._records import DIGITS, RecordError, kind, split_path, suggest, text_and_field
from toolkit.data.errors import BadLineReport, DataError, check_on_bad_line
from toolkit.data.multilabel import read_label_names

PathType = Union[str, PathLike]

LAYOUTS = ("lic2019", "casrel", "custom")
ON_MISSING_ENTITY_CHOICES = ("count", "error")
_LAYOUT_FIELDS = {
    "lic2019": ("text", "spo_list"),
    "casrel": ("text", "triple_list"),
    "custom": ("text", None),
}


def layout_fields(layout: str) -> tuple:
    """`(text_field, triples_field)` of a layout; `custom` has no triples field of its own.

    The one place these defaults live: the config's `data` section and
    `read_relations` both read them here.

    >>> layout_fields("casrel")
    ('text', 'triple_list')
    """
    return _LAYOUT_FIELDS[layout]


@dataclass
class RelationDataset:
    """Texts with their triples, as read from one file.

    `triples[i]` is a list of `(subject, predicate, object)` string tuples
    (duplicates removed, order kept); `predicates` is the schema's list (or
    the predicates seen, sorted, without a schema); `lines[i]` is where
    record `i` starts; `report` counts skipped records and triples whose
    subject or object is not found in the text.
    """

    path: str
    texts: list = field(default_factory=list)
    triples: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    predicates: list = field(default_factory=list)
    report: BadLineReport = None

    def __post_init__(self):
        if self.report is None:
            self.report = BadLineReport(self.path)

    #: The fields with one entry per example (`split_off` divides these).
    PER_EXAMPLE: ClassVar[tuple] = ("texts", "triples", "lines")

    def __len__(self) -> int:
        return len(self.texts)


def read_schema(path: PathType) -> list:
    """The predicate list of a schema file, in the file's order.

    Understands LIC2019's `all_50_schemas` (JSON lines with `"predicate"`;
    a predicate listed for several type pairs counts once), CasRel's
    `rel2id.json` (`[id2rel, rel2id]`, `[rel2id]` or a bare mapping;
    ordered by id), a JSON list of names, or plain text with one predicate a
    line.

    ```python
    read_schema("re/lic2019_sample/all_50_schemas")[:2]   # ['祖籍', '父亲']
    read_schema("re/webnlg_star/rel2id.json")[0]           # '1st_runway_LengthFeet'
    ```
    """
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        predicates = _schema_from_document(path, parse_json(path, 1, text))
    elif stripped.startswith("{"):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            predicates = _schema_from_json_lines(path)
        else:
            predicates = _schema_from_document(path, document)
    else:
        predicates = read_label_names(path)
    if not predicates:
        raise DataError(path, None, "the schema lists no predicates", reason="empty schema")
    return predicates


def _schema_from_json_lines(path: PathType) -> list:
    predicates: list = []
    for number, record in iter_json_lines(path):
        if isinstance(record, DataError):
            raise record
        predicate = record.get("predicate") if isinstance(record, dict) else None
        if not isinstance(predicate, str) or not predicate.strip():
            raise DataError(
                path,
                number,
                'expected a JSON object with a "predicate" string',
                reason="bad schema",
            )
        if predicate not in predicates:
            predicates.append(predicate)
    return predicates


def _schema_from_document(path: PathType, document: Any) -> list:
    if isinstance(document, list) and all(isinstance(item, str) for item in document):
        if len(set(document)) != len(document):
            raise DataError(path, None, "the schema repeats a predicate", reason="bad schema")
        return list(document)
    mappings = document if isinstance(document, list) else [document]
    for mapping in mappings:
        if not isinstance(mapping, dict) or not mapping:
            continue
        values = list(mapping.values())
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            by_id = {}
            for name, identifier in mapping.items():
                if identifier in by_id:
                    raise DataError(
                        path,
                        None,
                        f"predicates {by_id[identifier]!r} and {name!r} share id {identifier}",
                        reason="bad schema",
                    )
                by_id[identifier] = name
            return [by_id[i] for i in sorted(by_id)]
        if all(isinstance(v, str) for v in values) and all(DIGITS.fullmatch(k) for k in mapping):
            return [mapping[k] for k in sorted(mapping, key=int)]
    raise DataError(
        path,
        None,
        "not a schema: expected rel2id.json ({name: id} or [{id: name}, {name: id}]), "
        'JSON lines with "predicate", or one predicate a line',
        reason="bad schema",
    )


def _iter_records(path: str) -> Iterator[tuple[int, Any]]:
    """Yield `(line, record)` or `(line, DataError)` from JSON lines or a JSON array."""
    if first_character(path) == "[":
        text = read_text(path)
        for _, line, record in iter_json_array(path, text):
            yield line, record
        return
    yield from iter_json_lines(path)


def _triple(item: Any, position: int, triples_field: str, keys: tuple) -> tuple:
    where = f"triple {position} in {triples_field!r}"
    if isinstance(item, dict):
        values = []
        for key in keys:
            if key not in item:
                raise RecordError(
                    f"{where} has no {key!r} key" + suggest(key, [k for k in item if isinstance(k, str)]),
                    "bad triple",
                )
            values.append(item[key])
    elif isinstance(item, list):
        if len(item) != 3:
            raise RecordError(f"{where} must be [subject, predicate, object], got {len(item)} items", "bad triple")
        values = item
    else:
        raise RecordError(
            f"{where} must be an object or a [subject, predicate, object] list, got {kind(item)}",
            "bad triple",
        )
    for role, value in zip(("subject", "predicate", "object"), values):
        if not isinstance(value, str) or not value.strip():
            shown = "an empty string" if isinstance(value, str) else kind(value)
            raise RecordError(f"{where}: the {role} must be a non-empty string, got {shown}", "bad triple")
    return tuple(values)


def read_relations(
    path: PathType,
    *,
    layout: str = "lic2019",
    schema: Union[PathType, list, None] = None,
    text_field: Optional[str] = None,
    triples_field: Optional[str] = None,
    subject_key: Optional[str] = None,
    predicate_key: Optional[str] = None,
    object_key: Optional[str] = None,
    max_examples: Optional[int] = None,
    on_bad_line: str = "error",
    on_missing_entity: str = "count",
) -> RelationDataset:
    """Read one split of a relation extraction data set.

    Args:
        path: a JSON lines file or a file holding one JSON array.
        layout: `"lic2019"`, `"casrel"` or `"custom"`; picks the default
            field names (`text`/`spo_list` and `text`/`triple_list`).
        schema: a schema file (see `read_schema`) or a list of
            predicates. A predicate outside it is an error. None accepts any
            predicate and lists the ones seen, sorted.
        text_field, triples_field: field names (`"custom"` needs
            `triples_field`); they override the layout's.
        subject_key, predicate_key, object_key: keys of triples written as
            objects (default `subject`/`predicate`/`object`); triples
            written as lists use positions 0, 1, 2.
        max_examples: stop after this many good records.
        on_bad_line: `"error"` raises DataError at the first bad record;
            `"skip"` leaves it out and counts it in `report`. A syntax
            error inside a JSON array ends the file, so it is always raised.
        on_missing_entity: a subject or object that is not a substring of its
            text is counted in `report.warnings` and kept (`"count"`) or is
            a bad record (`"error"`, then handled by `on_bad_line`).

    Example:

    ```python
    data = read_relations("train_data.json", layout="lic2019", schema="all_50_schemas")
    print(len(data), data.report.summary())
    ```
    """
    check_on_bad_line(on_bad_line)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(map(repr, LAYOUTS))}; got {layout!r}")
    if on_missing_entity not in ON_MISSING_ENTITY_CHOICES:
        raise ValueError(
            f"on_missing_entity must be one of {', '.join(map(repr, ON_MISSING_ENTITY_CHOICES))}; "
            f"got {on_missing_entity!r}"
        )
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer or None; got {max_examples!r}")
    default_text, default_triples = layout_fields(layout)
    text_field = text_field or default_text
    triples_field = triples_field or default_triples
    if triples_field is None:
        raise ValueError("layout 'custom' needs triples_field (the field holding the triples)")
    keys = (subject_key or "subject", predicate_key or "predicate", object_key or "object")
    path = str(path)

    predicates = None
    schema_name = None
    if schema is not None:
        if isinstance(schema, (str, PathLike)):
            schema_name = str(schema)
            predicates = read_schema(schema)
        else:
            schema_name = "<schema>"
            predicates = [str(p) for p in schema]
    predicate_set = set(predicates) if predicates is not None else None

    dataset = RelationDataset(path=path, predicates=list(predicates or []))
    seen_predicates: set = set()
    for number, record in _iter_records(path):
        if isinstance(record, DataError):
            dataset.report.handle(record, on_bad_line)
            continue
        try:
            text, raw_triples = text_and_field(record, text_field, triples_field)
            if raw_triples is None:
                raw_triples = []
            if not isinstance(raw_triples, list):
                raise RecordError(
                    f"field {triples_field!r} must be a list of triples, got {kind(raw_triples)}",
                    "bad triple",
                )
            triples: list = []
            warnings: list = []
            for position, item in enumerate(raw_triples, start=1):
                triple = _triple(item, position, triples_field, keys)
                if predicate_set is not None and triple[1] not in predicate_set:
                    raise RecordError(
                        f"predicate {triple[1]!r} is not in the schema {schema_name}" + suggest(triple[1], predicates),
                        "unknown predicate",
                    )
                for role, entity in (("subject", triple[0]), ("object", triple[2])):
                    if entity not in text:
                        message = f"the {role} {entity!r} of triple {position} is not in the text"
                        if on_missing_entity == "error":
                            raise RecordError(message, "entity not in text")
                        warnings.append(DataError(path, number, message, reason="entity not in text"))
                if triple not in triples:
                    triples.append(triple)
        except RecordError as problem:
            dataset.report.handle(DataError(path, number, problem.message, reason=problem.reason), on_bad_line)
            continue
        for warning in warnings:
            dataset.report.warn(warning)
        dataset.texts.append(text)
        dataset.triples.append(triples)
        dataset.lines.append(number)
        seen_predicates.update(triple[1] for triple in triples)
        if max_examples is not None and len(dataset.texts) >= max_examples:
            break
    if not dataset.texts:
        detail = f" ({dataset.report.summary()})" if dataset.report.num_skipped else ""
        raise DataError(path, None, f"no examples found{detail}", reason="no examples")
    if predicates is None:
        dataset.predicates = sorted(seen_predicates)
    return dataset


def read_relations_split(data_config: Any, split: str = "train") -> RelationDataset:
    """Read `split` (`"train"`, `"dev"` or `"test"`) as a relation config's data section describes.

    ```python
    dev = read_relations_split(config.data, "dev")
    ```
    """
    path = split_path(data_config, split)
    return read_relations(
        path,
        layout=data_config.layout,
        schema=data_config.schema_path,
        text_field=data_config.text_field,
        triples_field=data_config.triples_field,
        subject_key=data_config.subject_key,
        predicate_key=data_config.predicate_key,
        object_key=data_config.object_key,
        max_examples=data_config.max_examples,
        on_bad_line=data_config.on_bad_line,
        on_missing_entity=data_config.on_missing_entity,
    )
