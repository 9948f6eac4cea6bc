"""Token-level data: tokens joined into a text with their offsets, and entity tags decoded into spans.

SpERT's layout (CoNLL04, ADE, SciERC as SpERT ships them) gives each sentence
as `tokens`, with `entities: [{"type", "start", "end"}]` in token positions
(end exclusive). Many data sets give entity `tags` instead, one a token, in
one of three schemes, told apart by the prefixes they use:

- BIO (IOB2): `B-X` begins an `X`, `I-X` continues it, `O` is outside. An
  `I-X` that continues nothing begins an entity, as conlleval reads it.
- BIOES: also `E-X` (ends) and `S-X` (a single token).
- BILOU: also `L-X` (last) and `U-X` (unit); CoNLL04 as SpERT's
  authors prepared it.

In BIOES and BILOU an entity must be closed by its `E`/`L` tag and an
`I`/`E`/`L` must continue one of the same type; anything else is an error
naming the token.

>>> text, offsets = join_tokens(["Alan", "Bean", "flew", "."])
>>> text, offsets[1]
('Alan Bean flew .', (5, 9))
>>> tag_scheme(["B-Peop", "L-Peop", "O", "U-Loc"])
'BILOU'
>>> entities_from_tags(["B-Peop", "L-Peop", "O", "U-Loc"])
[(0, 2, 'Peop'), (3, 4, 'Loc')]
"""

from __future__ import annotations

from collections.abc import Sequence

from toolkit.data._records import RecordError, get_field, kind, suggest

__all__ = [
    "TAG_SCHEMES",
    "TagError",
    "checked_tokens",
    "entities_from_tags",
    "join_tokens",
    "tag_scheme",
    "token_entities",
]

TAG_SCHEMES = ("BIO", "BIOES", "BILOU")


class TagError(ValueError):
    """A tag sequence that is not valid in its scheme; `position` is the token (from 0)."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


def join_tokens(tokens: Sequence[str]) -> tuple:
    """`(text, offsets)`: the tokens joined with single spaces, and each token's `(start, end)` in it."""
    offsets = []
    position = 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), offsets


def _split(tag: str, position: int) -> tuple:
    if tag == "O":
        return "O", None
    prefix, dash, entity_type = tag.partition("-")
    if not dash or len(prefix) != 1 or prefix not in "BIOESLU" or not entity_type:
        raise TagError(
            f"tag {position} ({tag!r}) is not 'O' or a prefix B, I, E, S, L or U, a '-' and a type", position
        )
    return prefix, entity_type


def tag_scheme(tags: Sequence[str]) -> str:
    """Which scheme a tag sequence is in: `"BILOU"` (uses L or U), `"BIOES"` (E or S), else `"BIO"`.

    Mixing the two (an `L` and an `E`) is a `TagError`.
    """
    prefixes = {tag[:1] for tag in tags if tag != "O"}
    bilou, bioes = prefixes & {"L", "U"}, prefixes & {"E", "S"}
    if bilou and bioes:
        position = next(i for i, tag in enumerate(tags) if tag[:1] in bioes)
        raise TagError(
            f"the tags mix BILOU ({', '.join(sorted(bilou))}) and BIOES ({', '.join(sorted(bioes))}) prefixes; "
            f"tag {position} is {tags[position]!r}",
            position,
        )
    return "BILOU" if bilou else "BIOES" if bioes else "BIO"


def entities_from_tags(tags: Sequence[str], scheme: str = None) -> list:
    """The tagged entities as `(start, end, type)` token spans (end exclusive), in order.

    Args:
        tags: one tag a token.
        scheme: `"BIO"`, `"BIOES"` or `"BILOU"`; detected when None
            (`tag_scheme`).
    """
    scheme = scheme or tag_scheme(tags)
    if scheme not in TAG_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(TAG_SCHEMES)}; got {scheme!r}")
    last, single = ("L", "U") if scheme == "BILOU" else ("E", "S")
    entities = []
    open_start, open_type = None, None
    for position, tag in enumerate(tags):
        prefix, entity_type = _split(tag, position)
        if scheme == "BIO" and prefix not in ("B", "I", "O"):
            raise TagError(f"tag {position} ({tag!r}) has a prefix the BIO scheme does not use", position)
        if scheme != "BIO" and prefix in ({"E", "S", "L", "U"} - {last, single}):
            raise TagError(f"tag {position} ({tag!r}) is not a {scheme} tag", position)
        continues = open_type is not None and entity_type == open_type
        if scheme == "BIO":
            if prefix == "I" and continues:
                continue
            if open_type is not None:
                entities.append((open_start, position, open_type))
                open_start, open_type = None, None
            if prefix in ("B", "I"):
                open_start, open_type = position, entity_type
            continue
        if prefix in ("I", last):
            if not continues:
                raise TagError(
                    f"tag {position} ({tag!r}) does not continue an entity of type {entity_type!r} "
                    f"(a {scheme} entity begins with B-{entity_type} or is {single}-{entity_type})",
                    position,
                )
            if prefix == last:
                entities.append((open_start, position + 1, open_type))
                open_start, open_type = None, None
            continue
        if open_type is not None:
            raise TagError(
                f"tag {position} ({tag!r}) comes before the {open_type!r} entity begun at tag {open_start} "
                f"is closed (with {last}-{open_type})",
                position,
            )
        if prefix == "B":
            open_start, open_type = position, entity_type
        elif prefix == single:
            entities.append((position, position + 1, entity_type))
    if open_type is not None:
        if scheme == "BIO":
            entities.append((open_start, len(tags), open_type))
        else:
            raise TagError(
                f"the {open_type!r} entity begun at tag {open_start} is never closed (with {last}-{open_type})",
                open_start,
            )
    return entities


# --- One record of token data (SpERT's layout) --------------------------------------------------


def checked_tokens(tokens, field: str = "tokens") -> tuple:
    """`join_tokens(tokens)` of a record's token list; `RecordError` unless it is non-empty strings without spaces."""
    if not isinstance(tokens, list) or not tokens:
        raise RecordError(f"field {field!r} must be a non-empty list of tokens, got {kind(tokens)}", "bad text")
    for position, token in enumerate(tokens):
        if not isinstance(token, str) or not token.strip() or any(c.isspace() for c in token):
            shown = repr(token) if isinstance(token, str) else kind(token)
            raise RecordError(f"token {position} must be a non-empty string without spaces, got {shown}", "bad text")
    return join_tokens(tokens)


def token_entities(record: dict, num_tokens: int) -> list:
    """A token record's entities as `(start, end, type)` token spans (end exclusive), in the record's order.

    From `"entities": [{"type", "start", "end"}]` (SpERT), or from `"tags"`
    (one a token, any of `TAG_SCHEMES`), the entities then in order of
    appearance. Problems are `RecordError`s (the reader adds the line).
    """
    if "entities" in record:
        raw = record["entities"]
        if not isinstance(raw, list):
            raise RecordError(f"field 'entities' must be a list, got {kind(raw)}", "bad entity")
        spans = []
        for position, item in enumerate(raw):
            where = f"entity {position} in 'entities'"
            if not isinstance(item, dict):
                raise RecordError(f"{where} must be an object {{type, start, end}}, got {kind(item)}", "bad entity")
            values = []
            for key in ("type", "start", "end"):
                try:
                    values.append(get_field(item, key, exclude={"type", "start", "end"} - {key}))
                except KeyError:
                    candidates = [k for k in item if isinstance(k, str) and k not in {"type", "start", "end"}]
                    raise RecordError(f"{where} has no {key!r} key" + suggest(key, candidates), "bad entity") from None
            entity_type, start, end = values
            if not isinstance(entity_type, str) or not entity_type.strip():
                raise RecordError(
                    f"{where}: the type must be a non-empty string, got {kind(entity_type)}", "bad entity"
                )
            if (
                any(isinstance(v, bool) or not isinstance(v, int) for v in (start, end))
                or not 0 <= start < end <= num_tokens
            ):
                raise RecordError(
                    f"{where}: start and end must be token positions with 0 <= start < end <= {num_tokens} "
                    f"(end exclusive), got {start!r} and {end!r}",
                    "bad entity",
                )
            spans.append((start, end, entity_type))
        return spans
    if "tags" in record:
        tags = record["tags"]
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise RecordError(f"field 'tags' must be a list of strings, got {kind(tags)}", "bad entity")
        if len(tags) != num_tokens:
            raise RecordError(f"{len(tags)} tags for {num_tokens} tokens", "bad entity")
        try:
            return entities_from_tags(tags)
        except TagError as problem:
            raise RecordError(str(problem), "bad tags") from None
    raise RecordError(
        "expected 'entities' ([{type, start, end}]) or 'tags' (BIO, BIOES or BILOU) beside the tokens"
        + suggest("entities", [k for k in record if isinstance(k, str)]),
        "missing field",
    )
