"""DuIE 2.0 objects with named slots: split into one relation a slot for training, put back together after.

In DuIE 2.0 (LIC2020) an object is `{"@value": "...", "inWork": "...",
...}`: `("周星驰", "饰演", {"@value": "至尊宝", "inWork": "大话西游"})` says
who played which role in which film. The model learns each slot as a
relation of its own between the subject and that slot's value, named
`"<predicate>_<slot>"` (`@value` keeps the predicate's own name), as
bert4keras's DuIE 2.0 handling does. `assemble` puts the predicted slots of
one subject and predicate back into objects: each `@value` found gets, for
every other slot, the one value found for it, or the nearest of several (by
position in the text); slots found without a `@value` are dropped.

`official_key` is how the official DuIE 2.0 evaluation compares them: lower
case, book-title marks 《》 around a name removed, the subject, the predicate
and every slot of the object equal.

>>> slot_predicate("饰演", "inWork"), slot_predicate("饰演", "@value")
('饰演_inWork', '饰演')
>>> official_key({"subject": "《大话西游》", "predicate": "主演", "object": {"@value": "Stephen Chow"}})
('大话西游', '主演', (('@value', 'stephen chow'),))
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["VALUE_SLOT", "assemble", "official_key", "slot_predicate"]

VALUE_SLOT = "@value"


def slot_predicate(predicate: str, slot: str) -> str:
    """The training predicate of one slot of `predicate`'s objects."""
    return predicate if slot == VALUE_SLOT else f"{predicate}_{slot}"


def _normalise(name: str) -> str:
    name = name.lower()
    if name.startswith("《") and name.endswith("》"):
        name = name[1:-1]
    return name


def official_key(record: dict) -> tuple:
    """`(subject, predicate, ((slot, value), ...))`, normalised as the official DuIE 2.0 evaluation does."""
    obj = record["object"]
    if not isinstance(obj, dict):
        obj = {VALUE_SLOT: obj}
    slots = tuple(sorted((slot, _normalise(value)) for slot, value in obj.items()))
    return _normalise(record["subject"]), record["predicate"], slots


def assemble(found: Sequence[dict], slots: dict, signatures: dict) -> list:
    """DuIE 2.0 records from the slot relations of one text.

    Args:
        found: records `{"subject", "predicate", "object", "subject_span",
            "object_span"}` with training predicates (`"饰演_inWork"`).
        slots: training predicate -> `(predicate, slot)`; a predicate not in
            it is a plain one (its object is the `@value`).
        signatures: training predicate -> `(subject_type, object_type)`.

    Returns:
        `{"subject", "predicate", "object": {slot: value}, "subject_type",
        "object_type": {slot: type}}` records, in the order their `@value`
        was found.
    """
    groups: dict = {}
    for record in found:
        predicate, slot = slots.get(record["predicate"], (record["predicate"], VALUE_SLOT))
        key = (record["subject"], tuple(record.get("subject_span") or ()), predicate)
        groups.setdefault(key, {}).setdefault(slot, []).append(record)
    assembled = []
    for (subject, _, predicate), by_slot in groups.items():
        for value in by_slot.get(VALUE_SLOT, ()):
            obj = {VALUE_SLOT: value["object"]}
            for slot, candidates in by_slot.items():
                if slot != VALUE_SLOT:
                    obj[slot] = _nearest(value, candidates)["object"]
            record = {"subject": subject, "predicate": predicate, "object": obj}
            types = [signatures.get(slot_predicate(predicate, slot)) for slot in obj]
            if types[0] is not None:
                record["subject_type"] = types[0][0]
                record["object_type"] = {slot: pair[1] for slot, pair in zip(obj, types) if pair is not None}
            assembled.append(record)
    return assembled


def _nearest(value: dict, candidates: list) -> dict:
    if len(candidates) == 1 or not value.get("object_span"):
        return candidates[0]
    start = value["object_span"][0]
    return min(candidates, key=lambda record: abs((record.get("object_span") or (start,))[0] - start))
