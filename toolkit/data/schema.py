"""Relation schemas: the predicates a model is trained on, their entity types and object slots.

`load_schema(path)` reads every form the field's data sets ship (see
`SCHEMA_FORMS`); `schema_from_data(dataset)` builds the same from a training
set when a config names no schema file. A `RelationSchema` lists:

- `predicates`: what the model's object head has a row for, in order. For
  DuIE 2.0, whose objects have named slots (`{"@value": ..., "inWork": ...}`),
  each slot other than `@value` is a predicate of its own,
  `"<predicate>_<slot>"` (`toolkit.data.duie`);
- `signatures`: predicate -> `(subject_type, object_type)`, the entity types
  a predicted triple is given (strict span scoring compares them);
- `slots`: training predicate -> `(predicate, slot)` for slotted objects;
- `entity_types`: the entity types, when known.

```python
schema = load_schema("re/lic2019_sample/all_50_schemas")
schema.predicates[:2], schema.signatures["父亲"]     # (['祖籍', '父亲'], ('人物', '人物'))
load_schema("re/conll04/conll04_types.json").entity_types   # ['Loc', 'Org', 'Peop', 'Other']
```
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Union

from toolkit.data._io import iter_json_lines, parse_json, read_text
from toolkit.data._records import DIGITS
from toolkit.data.duie import VALUE_SLOT, slot_predicate
from toolkit.data.errors import DataError

__all__ = ["SCHEMA_FORMS", "RelationSchema", "load_schema", "read_schema", "schema_from_data"]

PathType = Union[str, PathLike]

#: What `load_schema` accepts, as its error lists them.
SCHEMA_FORMS = (
    "CasRel's rel2id.json ({name: id}, or [{id: name}, {name: id}])",
    'LIC2019 schema lines ({"subject_type", "predicate", "object_type"} a line)',
    'the DuIE 2.0 schema (the same lines, "object_type" an object of slots: {"@value": ..., "inWork": ...})',
    'a SpERT types file ({"entities": {...}, "relations": {...}})',
    'a JSON list of predicate names (["founded_by", ...])',
    "plain text, one predicate a line",
)


@dataclass
class RelationSchema:
    """The predicates, their entity types and object slots (see the module docstring).

    `source` says where it came from (a file, or "the training data"), for
    messages; `counts` is the training triples per predicate when built
    from data.
    """

    predicates: list
    signatures: dict = field(default_factory=dict)
    slots: dict = field(default_factory=dict)
    entity_types: list = field(default_factory=list)
    source: str = "<schema>"
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self):
        if len(set(self.predicates)) != len(self.predicates):
            repeated = [name for name, count in Counter(self.predicates).items() if count > 1]
            raise ValueError(f"a schema lists each predicate once; {repeated[0]!r} is repeated")

    def to_json(self) -> dict:
        """A JSON-ready dict (`from_json` reads it back); saved with a trained model."""
        return {
            "predicates": list(self.predicates),
            "signatures": {name: list(types) for name, types in self.signatures.items()},
            "slots": {name: list(slot) for name, slot in self.slots.items()},
            "entity_types": list(self.entity_types),
        }

    @classmethod
    def from_json(cls, document: dict, source: str = "<saved schema>") -> RelationSchema:
        return cls(
            predicates=list(document["predicates"]),
            signatures={name: tuple(types) for name, types in document.get("signatures", {}).items()},
            slots={name: tuple(slot) for name, slot in document.get("slots", {}).items()},
            entity_types=list(document.get("entity_types", [])),
            source=source,
        )


def _not_a_schema(path: PathType, detail: str = "") -> DataError:
    forms = "; ".join(SCHEMA_FORMS)
    return DataError(path, None, f"not a schema{detail}. The accepted forms are: {forms}", reason="bad schema")


def read_schema(path: PathType) -> list:
    """The predicate list of a schema file, in the file's order (`load_schema(path).predicates`).

    ```python
    read_schema("re/lic2019_sample/all_50_schemas")[:2]   # ['祖籍', '父亲']
    read_schema("re/webnlg_star/rel2id.json")[0]           # '1st_runway_LengthFeet'
    ```
    """
    return load_schema(path).predicates


def load_schema(path: PathType) -> RelationSchema:
    """Read a schema file in any of the `SCHEMA_FORMS`.

    A predicate listed for several type pairs (LIC2019 does this) counts
    once, with its first pair. A file in none of the forms is a `DataError`
    that lists them.
    """
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        schema = _from_document(path, parse_json(path, 1, text))
    elif stripped.startswith("{"):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            schema = _from_lines(path)
        else:
            schema = _from_lines(path) if _is_schema_line(document) else _from_document(path, document)
    else:
        schema = RelationSchema(predicates=_plain_lines(path))
    if not schema.predicates:
        raise DataError(path, None, "the schema lists no predicates", reason="empty schema")
    schema.source = str(path)
    return schema


def _plain_lines(path: PathType) -> list:
    from toolkit.data.multilabel import read_label_names

    return read_label_names(path)


def _is_schema_line(document: Any) -> bool:
    return isinstance(document, dict) and "predicate" in document


def _from_lines(path: PathType) -> RelationSchema:
    """LIC2019 and DuIE 2.0 schema lines: one `{"subject_type", "predicate", "object_type"}` a line."""
    schema = RelationSchema(predicates=[])
    types: dict = {}
    for number, record in iter_json_lines(path):
        if isinstance(record, DataError):
            raise record
        predicate = record.get("predicate") if isinstance(record, dict) else None
        if not isinstance(predicate, str) or not predicate.strip():
            raise DataError(
                path,
                number,
                'expected a JSON object with a "predicate" string, as every line of a LIC2019 or DuIE 2.0 schema',
                reason="bad schema",
            )
        subject_type = record.get("subject_type")
        object_type = record.get("object_type")
        if isinstance(object_type, dict):
            if VALUE_SLOT not in object_type:
                raise DataError(
                    path,
                    number,
                    f'the object_type of {predicate!r} has no "{VALUE_SLOT}" slot (a DuIE 2.0 object always has one)',
                    reason="bad schema",
                )
            slot_types = object_type
        else:
            slot_types = {VALUE_SLOT: object_type}
        for slot, slot_type in slot_types.items():
            name = slot_predicate(predicate, slot)
            if name in schema.slots:
                continue
            schema.predicates.append(name)
            schema.slots[name] = (predicate, slot)
            if isinstance(subject_type, str) and isinstance(slot_type, str):
                schema.signatures[name] = (subject_type, slot_type)
            for entity_type in (subject_type, slot_type):
                if isinstance(entity_type, str):
                    types.setdefault(entity_type)
    if not any(slot != VALUE_SLOT for _, slot in schema.slots.values()):
        schema.slots = {}  # No slotted object: plain predicates.
    schema.entity_types = list(types)
    return schema


def _from_document(path: PathType, document: Any) -> RelationSchema:
    if isinstance(document, list) and all(isinstance(item, str) for item in document):
        if len(set(document)) != len(document):
            raise DataError(path, None, "the schema repeats a predicate", reason="bad schema")
        return RelationSchema(predicates=list(document))
    if isinstance(document, dict) and isinstance(document.get("relations"), dict):
        entities = document.get("entities", {})
        return RelationSchema(
            predicates=list(document["relations"]),
            entity_types=list(entities) if isinstance(entities, dict) else [],
        )
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
            return RelationSchema(predicates=[by_id[i] for i in sorted(by_id)])
        if all(isinstance(v, str) for v in values) and all(DIGITS.fullmatch(k) for k in mapping):
            return RelationSchema(predicates=[mapping[k] for k in sorted(mapping, key=int)])
    raise _not_a_schema(path)


def schema_from_data(dataset, *, schema: RelationSchema = None) -> RelationSchema:
    """The schema of a training set: its predicates (sorted), their most frequent entity types, its slots.

    With `schema` (read from a file), its predicates and order are kept and
    only what it lacks (entity types per predicate) is filled in from the
    data. `counts` holds the training triples per predicate either way.

    >>> from toolkit.data.relations import RelationDataset
    >>> data = RelationDataset("t", texts=["a b"], triples=[[("a", "r", "b")]],
    ...                        types=[[("X", "Y")]])
    >>> found = schema_from_data(data)
    >>> found.predicates, found.signatures, found.counts["r"]
    (['r'], {'r': ('X', 'Y')}, 1)
    """
    counts: Counter = Counter()
    signature_counts: dict = {}
    for index, triples in enumerate(dataset.triples):
        types = dataset.types[index] if dataset.types else None
        for position, (_, predicate, _) in enumerate(triples):
            counts[predicate] += 1
            if types is not None and types[position] is not None and None not in types[position]:
                signature_counts.setdefault(predicate, Counter())[tuple(types[position])] += 1
    signatures = {name: found.most_common(1)[0][0] for name, found in signature_counts.items()}
    entity_types = list(dict.fromkeys(t for pair in signatures.values() for t in pair))
    for entities in dataset.entities or ():
        entity_types.extend(t for _, _, t in entities or () if t not in entity_types)
    if schema is None:
        return RelationSchema(
            predicates=sorted(counts),
            signatures=signatures,
            slots=dict(dataset.slots),
            entity_types=entity_types,
            source="the training data",
            counts=counts,
        )
    return RelationSchema(
        predicates=list(schema.predicates),
        signatures={**signatures, **schema.signatures},
        slots=dict(schema.slots) or dict(dataset.slots),
        entity_types=list(schema.entity_types) or entity_types,
        source=schema.source,
        counts=counts,
    )
