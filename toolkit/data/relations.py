"""Read relation (subject, predicate, object) extraction data.

Layouts (`data.layout`), with one record each:

- `"lic2019"`: JSON lines `{"text": ..., "spo_list": [{"subject": ...,
  "predicate": ..., "object": ..., "subject_type": ..., "object_type": ...}]}`
  (LIC2019 / DuIE 1.0; the types are optional).
- `"duie2"`: the same, with DuIE 2.0's objects of named slots,
  `"object": {"@value": "至尊宝", "inWork": "大话西游"}` (and `object_type`
  likewise). Each slot is trained as a relation of its own
  (`toolkit.data.duie`) and scored as the official evaluation does.
- `"casrel"`: one JSON array `[{"text": ..., "triple_list": [[s, p, o]]}]`
  (CasRel's NYT / WebNLG files).
- `"spert"`: token level, `{"tokens": [...], "entities": [{"type", "start",
  "end"}], "relations": [{"type", "head", "tail"}]}` (token offsets, end
  exclusive; `head`/`tail` number the entities), or entity `"tags"` (BIO,
  BIOES or BILOU, detected; `toolkit.data.tokens`) in place of `"entities"`,
  the entities then numbered in order of appearance. The text is the
  tokens joined with spaces; triples keep their character spans, so two
  mentions with the same words stay two, and are scored at span level.
- `"custom"`: your own field names: `text_field` and `triples_field`, triples
  as objects with `subject_key`/`predicate_key`/`object_key` (and optional
  `subject_type_key`/`object_type_key`) or as `[s, p, o]` lists. Every field
  and key takes a dotted path (`"meta.text"`, `"head.name"`).

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

from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, ClassVar, Optional, Union

from toolkit.data._io import first_character, iter_json_array, iter_json_lines, read_text
from toolkit.data._records import RecordError, get_field, kind, split_path, suggest, text_and_field
from toolkit.data.duie import VALUE_SLOT, slot_predicate
from toolkit.data.errors import BadLineReport, DataError, check_on_bad_line
from toolkit.data.schema import RelationSchema, load_schema, read_schema
from toolkit.data.tokens import checked_tokens, token_entities

PathType = Union[str, PathLike]

__all__ = [
    "LAYOUTS",
    "RelationDataset",
    "layout_fields",
    "layout_scoring",
    "read_relations",
    "read_relations_split",
    "read_schema",
]

LAYOUTS = ("lic2019", "duie2", "casrel", "spert", "custom")
ON_MISSING_ENTITY_CHOICES = ("count", "skip", "error")
_LAYOUT_FIELDS = {
    "lic2019": ("text", "spo_list"),
    "duie2": ("text", "spo_list"),
    "casrel": ("text", "triple_list"),
    "spert": ("tokens", "relations"),
    "custom": ("text", None),
}
_SCORING = {"duie2": "duie2", "spert": "span"}
_ROLE_KEYS = ("subject", "predicate", "object")


def layout_fields(layout: str) -> tuple:
    """`(text_field, triples_field)` of a layout; `custom` has no triples field of its own.

    The one place these defaults live: the config's `data` section and
    `read_relations` both read them here.

    >>> layout_fields("casrel")
    ('text', 'triple_list')
    """
    return _LAYOUT_FIELDS[layout]


def layout_scoring(layout: str) -> str:
    """How a layout's triples are scored: `"span"` (token layouts: character spans and entity types),
    `"duie2"` (slotted objects, the official DuIE 2.0 way) or `"text"` (the strings).

    >>> layout_scoring("spert"), layout_scoring("casrel")
    ('span', 'text')
    """
    return _SCORING.get(layout, "text")


@dataclass
class RelationDataset:
    """Texts with their triples, as read from one file.

    Per example `i`:

    - `triples[i]`: the `(subject, predicate, object)` strings the model is
      trained on (for DuIE 2.0, one a slot; see `toolkit.data.duie`);
    - `spans[i]`: for each triple, `((start, end), (start, end))`, the
      characters of subject and object in the text, or None (the whole
      entry) when the layout gives strings only;
    - `types[i]`: for each triple, `(subject_type, object_type)` (either may
      be None), or None;
    - `entities[i]`: every entity of the text as `(start, end, type)`
      characters (token layouts), or None;
    - `gold[i]`: the relations as scored and written out, records in the
      layout's form (`{"subject", "predicate", "object", ...}`);
    - `lines[i]`: where the record starts in the file.

    `predicates` is the schema's list, or the predicates seen, sorted;
    `scoring` is `layout_scoring(layout)`; `slots` maps a training predicate
    to `(predicate, slot)` for slotted objects; `report` counts skipped
    records and triples whose subject or object is not found in the text.
    """

    path: str
    texts: list = field(default_factory=list)
    triples: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    spans: list = field(default_factory=list)
    types: list = field(default_factory=list)
    entities: list = field(default_factory=list)
    gold: list = field(default_factory=list)
    predicates: list = field(default_factory=list)
    scoring: str = "text"
    slots: dict = field(default_factory=dict)
    report: BadLineReport = None

    #: The fields with one entry per example (`split_off` and sampling divide these).
    PER_EXAMPLE: ClassVar[tuple] = ("texts", "triples", "lines", "spans", "types", "entities", "gold")

    def __post_init__(self):
        if self.report is None:
            self.report = BadLineReport(self.path)
        count = len(self.texts)
        for name in ("spans", "types", "entities"):
            if not getattr(self, name) and count:
                setattr(self, name, [None] * count)
        if not self.gold and count:
            self.gold = [[_record(triple) for triple in triples] for triples in self.triples]

    def __len__(self) -> int:
        return len(self.texts)


def _record(triple: tuple, span=None, types=None) -> dict:
    record = dict(zip(_ROLE_KEYS, triple))
    if types is not None:
        for role, entity_type in zip(("subject_type", "object_type"), types):
            if entity_type is not None:
                record[role] = entity_type
    if span is not None:
        record["subject_span"], record["object_span"] = list(span[0]), list(span[1])
    return record


def _iter_records(path: str) -> Iterator[tuple[int, Any]]:
    """Yield `(line, record)` or `(line, DataError)` from JSON lines or a JSON array."""
    if first_character(path) == "[":
        text = read_text(path)
        for _, line, record in iter_json_array(path, text):
            yield line, record
        return
    yield from iter_json_lines(path)


def _key_value(item: dict, key: str, keys: tuple, where: str) -> Any:
    """`item[key]` (a dotted path allowed); never suggests one of the other `keys` when it is missing."""
    others = [k for k in keys if k != key]
    try:
        return get_field(item, key, exclude=others)
    except KeyError:
        candidates = [k for k in item if isinstance(k, str) and k not in others]
        raise RecordError(f"{where} has no {key!r} key" + suggest(key, candidates), "bad triple") from None


def _optional_field(item: dict, key: str) -> Any:
    try:
        return get_field(item, key)
    except KeyError:
        return None


def _entity_string(value: Any, role: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = "an empty string" if isinstance(value, str) else kind(value)
        hint = " (DuIE 2.0 objects are objects: use data.layout: duie2)" if isinstance(value, dict) else ""
        raise RecordError(f"{where}: the {role} must be a non-empty string, got {shown}{hint}", "bad triple")
    return value


def _triple(item: Any, position: int, triples_field: str, keys: tuple, type_keys: tuple) -> tuple:
    """`((subject, predicate, object), (subject_type, object_type) or None)` of one triple."""
    where = f"triple {position} in {triples_field!r}"
    types = None
    if isinstance(item, dict):
        values = [_key_value(item, key, keys + type_keys, where) for key in keys]
        found = [_optional_field(item, key) for key in type_keys]
        found = [value if isinstance(value, str) and value.strip() else None for value in found]
        types = tuple(found) if any(found) else None
    elif isinstance(item, list):
        if len(item) != 3:
            raise RecordError(f"{where} must be [subject, predicate, object], got {len(item)} items", "bad triple")
        values = item
    else:
        raise RecordError(
            f"{where} must be an object or a [subject, predicate, object] list, got {kind(item)}",
            "bad triple",
        )
    return tuple(_entity_string(value, role, where) for role, value in zip(_ROLE_KEYS, values)), types


class _Reader:
    """The parts of `read_relations` that differ by layout, one record at a time."""

    def __init__(self, layout, path, text_field, triples_field, keys, type_keys, predicates, schema_name, on_missing):
        self.layout = layout
        self.path = path
        self.text_field = text_field
        self.triples_field = triples_field
        self.keys = keys
        self.type_keys = type_keys
        self.predicates = predicates
        self.predicate_set = set(predicates) if predicates is not None else None
        self.schema_name = schema_name
        self.on_missing = on_missing
        self.slots: dict = {}

    def check_predicate(self, predicate: str, shown: Optional[str] = None) -> None:
        if self.predicate_set is not None and predicate not in self.predicate_set:
            raise RecordError(
                f"predicate {shown or predicate!r} is not in the schema {self.schema_name}"
                + suggest(predicate, self.predicates),
                "unknown predicate",
            )

    def parse(self, number: int, record: Any) -> tuple:
        """`(text, triples, spans, types, entities, gold, warnings)` of one record."""
        if self.layout == "spert":
            return self._spert(number, record)
        text, raw = text_and_field(record, self.text_field, self.triples_field)
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise RecordError(f"field {self.triples_field!r} must be a list of triples, got {kind(raw)}", "bad triple")
        if self.layout == "duie2":
            return self._duie2(number, text, raw)
        triples, types, gold, warnings = [], [], [], []
        for position, item in enumerate(raw, start=1):
            triple, pair = _triple(item, position, self.triples_field, self.keys, self.type_keys)
            self.check_predicate(triple[1])
            if not self._entities_in_text(number, text, position, (triple[0], triple[2]), warnings):
                continue
            if triple not in triples:
                triples.append(triple)
                types.append(pair)
                gold.append(_record(triple, types=pair))
        return text, triples, None, types if any(types) else None, None, gold, warnings

    def _entities_in_text(self, number, text, position, entities, warnings) -> bool:
        """Whether to keep a triple whose entities may be missing from the text (`on_missing_entity`)."""
        for role, entity in zip(("subject", "object"), entities):
            if entity not in text:
                message = f"the {role} {entity!r} of triple {position} is not in the text"
                if self.on_missing == "error":
                    raise RecordError(message, "entity not in text")
                warnings.append(DataError(self.path, number, message, reason="entity not in text"))
                if self.on_missing == "skip":
                    return False
        return True

    def _duie2(self, number, text, raw) -> tuple:
        triples, types, gold, warnings = [], [], [], []
        for position, item in enumerate(raw, start=1):
            where = f"triple {position} in {self.triples_field!r}"
            if not isinstance(item, dict):
                raise RecordError(f"{where} must be an object (DuIE 2.0's spo), got {kind(item)}", "bad triple")
            subject = _entity_string(
                _key_value(item, self.keys[0], self.keys + self.type_keys, where), "subject", where
            )
            predicate = _entity_string(
                _key_value(item, self.keys[1], self.keys + self.type_keys, where), "predicate", where
            )
            obj = _key_value(item, self.keys[2], self.keys + self.type_keys, where)
            if isinstance(obj, str):
                obj = {VALUE_SLOT: obj}
            if not isinstance(obj, dict) or VALUE_SLOT not in obj:
                raise RecordError(
                    f"{where}: the object must be a string or an object with an {VALUE_SLOT!r} slot, got "
                    + (f"the slots {sorted(obj)}" if isinstance(obj, dict) else kind(obj)),
                    "bad triple",
                )
            for slot, value in obj.items():
                _entity_string(value, f"object's {slot!r} slot", where)
            subject_type, object_types = (_optional_field(item, key) for key in self.type_keys)
            if not isinstance(object_types, dict):
                object_types = {VALUE_SLOT: object_types}
            subject_type = subject_type if isinstance(subject_type, str) else None
            slot_values = [(slot, value) for slot, value in obj.items()]
            for slot, _ in slot_values:
                self.check_predicate(
                    slot_predicate(predicate, slot), f"{predicate}" + ("" if slot == VALUE_SLOT else f" (slot {slot})")
                )
            if not self._entities_in_text(number, text, position, [subject, *obj.values()], warnings):
                continue
            record = {"subject": subject, "predicate": predicate, "object": dict(obj)}
            if subject_type is not None:
                record["subject_type"] = subject_type
            if any(isinstance(t, str) for t in object_types.values()):
                record["object_type"] = {k: t for k, t in object_types.items() if isinstance(t, str)}
            if record not in gold:
                gold.append(record)
            for slot, value in slot_values:
                name = slot_predicate(predicate, slot)
                self.slots[name] = (predicate, slot)
                triple = (subject, name, value)
                if triple not in triples:
                    triples.append(triple)
                    slot_type = object_types.get(slot)
                    types.append((subject_type, slot_type if isinstance(slot_type, str) else None))
        return text, triples, None, types, None, gold, warnings

    def _spert(self, number, record) -> tuple:
        if not isinstance(record, dict):
            raise RecordError(f"expected a JSON object, got {kind(record)}", "not an object")
        try:
            tokens = get_field(record, self.text_field)
        except KeyError as missing:
            raise RecordError(missing.args[0], "missing field") from None
        text, offsets = checked_tokens(tokens, self.text_field)
        spans = token_entities(record, len(tokens))
        entities = [(offsets[start][0], offsets[end - 1][1], entity_type) for start, end, entity_type in spans]
        try:
            raw = get_field(record, self.triples_field)
        except KeyError as missing:
            raise RecordError(missing.args[0], "missing field") from None
        if not isinstance(raw, list):
            raise RecordError(
                f"field {self.triples_field!r} must be a list of relations, got {kind(raw)}", "bad triple"
            )
        triples, char_spans, types, gold = [], [], [], []
        for position, item in enumerate(raw, start=1):
            where = f"relation {position} in {self.triples_field!r}"
            if not isinstance(item, dict):
                raise RecordError(f"{where} must be an object {{type, head, tail}}, got {kind(item)}", "bad triple")
            values = [_key_value(item, key, ("type", "head", "tail"), where) for key in ("type", "head", "tail")]
            predicate = _entity_string(values[0], "type", where)
            self.check_predicate(predicate)
            ends = []
            for role, index in zip(("head", "tail"), values[1:]):
                if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(entities):
                    raise RecordError(
                        f"{where}: {role} must number one of the {len(entities)} entities (from 0), got {index!r}",
                        "bad triple",
                    )
                ends.append(entities[index])
            (s0, s1, subject_type), (o0, o1, object_type) = ends
            triple = (text[s0:s1], predicate, text[o0:o1])
            span = ((s0, s1), (o0, o1))
            if (triple, span) in zip(triples, char_spans):
                continue
            triples.append(triple)
            char_spans.append(span)
            types.append((subject_type, object_type))
            gold.append(_record(triple, span, (subject_type, object_type)))
        return text, triples, char_spans, types, entities, gold, []


def read_relations(
    path: PathType,
    *,
    layout: str = "lic2019",
    schema: Union[PathType, list, RelationSchema, None] = None,
    text_field: Optional[str] = None,
    triples_field: Optional[str] = None,
    subject_key: Optional[str] = None,
    predicate_key: Optional[str] = None,
    object_key: Optional[str] = None,
    subject_type_key: Optional[str] = None,
    object_type_key: Optional[str] = None,
    max_examples: Optional[int] = None,
    on_bad_line: str = "error",
    on_missing_entity: str = "count",
) -> RelationDataset:
    """Read one split of a relation extraction data set.

    Args:
        path: a JSON lines file or a file holding one JSON array.
        layout: one of `LAYOUTS` (see the module docstring); picks the
            default field names.
        schema: a schema file (`toolkit.data.schema.load_schema`), a
            `RelationSchema` or a list of (training) predicates. A predicate
            outside it is an error. None accepts any predicate and lists the
            ones seen, sorted.
        text_field, triples_field: field names (`"custom"` needs
            `triples_field`); they override the layout's. Dotted names walk
            nested objects.
        subject_key, predicate_key, object_key: keys of triples written as
            objects (default `subject`/`predicate`/`object`), dotted paths
            allowed; triples written as lists use positions 0, 1, 2.
        subject_type_key, object_type_key: keys of the entity types, when
            the triples carry them (default `subject_type`/`object_type`).
        max_examples: stop after this many good records (configs take a
            seeded sample instead: `toolkit.data.splits.read_splits`).
        on_bad_line: `"error"` raises DataError at the first bad record;
            `"skip"` leaves it out and counts it in `report`. A syntax
            error inside a JSON array ends the file, so it is always raised.
        on_missing_entity: a subject or object that is not a substring of its
            text is counted in `report.warnings` and kept (`"count"`; training
            cannot place it and counts it again), counted and left out of the
            data (`"skip"`), or makes its record bad (`"error"`, then handled
            by `on_bad_line`).

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
    type_keys = (subject_type_key or "subject_type", object_type_key or "object_type")
    path = str(path)

    predicates = None
    schema_name = None
    if isinstance(schema, RelationSchema):
        schema_name, predicates = schema.source, list(schema.predicates)
    elif isinstance(schema, (str, PathLike)):
        schema_name = str(schema)
        predicates = load_schema(schema).predicates
    elif schema is not None:
        schema_name = "<schema>"
        predicates = [str(p) for p in schema]

    reader = _Reader(
        layout, path, text_field, triples_field, keys, type_keys, predicates, schema_name, on_missing_entity
    )
    dataset = RelationDataset(path=path, predicates=list(predicates or []), scoring=layout_scoring(layout))
    seen_predicates: set = set()
    for number, record in _iter_records(path):
        if isinstance(record, DataError):
            dataset.report.handle(record, on_bad_line)
            continue
        try:
            text, triples, spans, types, entities, gold, warnings = reader.parse(number, record)
        except RecordError as problem:
            dataset.report.handle(DataError(path, number, problem.message, reason=problem.reason), on_bad_line)
            continue
        for warning in warnings:
            dataset.report.warn(warning)
        dataset.texts.append(text)
        dataset.triples.append(triples)
        dataset.lines.append(number)
        dataset.spans.append(spans)
        dataset.types.append(types)
        dataset.entities.append(entities)
        dataset.gold.append(gold)
        seen_predicates.update(triple[1] for triple in triples)
        if max_examples is not None and len(dataset.texts) >= max_examples:
            break
    if not dataset.texts:
        detail = f" ({dataset.report.summary()})" if dataset.report.num_skipped else ""
        raise DataError(path, None, f"no examples found{detail}", reason="no examples")
    if predicates is None:
        dataset.predicates = sorted(seen_predicates)
    dataset.slots = reader.slots
    return dataset


def read_relations_split(data_config: Any, split: str = "train") -> RelationDataset:
    """Read `split` (`"train"`, `"dev"` or `"test"`) as a relation config's data section describes.

    The whole file is read; `data.max_examples` is a seeded sample that
    `toolkit.data.read_splits` draws.

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
        subject_type_key=data_config.subject_type_key,
        object_type_key=data_config.object_type_key,
        on_bad_line=data_config.on_bad_line,
        on_missing_entity=data_config.on_missing_entity,
    )
