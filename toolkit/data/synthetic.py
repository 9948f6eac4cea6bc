"""The built-in demo data sets, generated from a seed (nothing is downloaded).

- `make_multilabel_demo`: English product reviews tagged with the aspects
  they discuss (10 labels, 1-3 a review, co-occurring and rare labels). The
  evidence for each aspect is a clause somewhere in the review; other clauses
  are filler, overall sentiment, or "hard negatives" that name an aspect
  without discussing it ("I can't say anything about the battery yet").
- `make_relation_demo`: English sentences about invented people,
  companies, cities, countries and universities, with (subject, predicate,
  object) triples of 7 predicates: several triples a sentence, shared
  subjects, an entity that is the object of one triple and the subject of
  another, nested entities ("Belmaport Motors" / "Belmaport"), and sentences
  that mention entities without relating them. Names are built from
  syllables, so test sentences hold names never seen in training.

`write_multilabel_demo` / `write_relation_demo` write JSON lines files,
the label list or schema, and a WordPiece `vocab.txt`, in the formats the
readers read, so the demo runs through the real readers:

```python
from toolkit.data.synthetic import write_multilabel_demo
from toolkit.config import default_config

paths = write_multilabel_demo("demo_data", seed=0)
config = default_config("multilabel_classification", "demo_data")
```
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional, Union

from toolkit.atomic import replace_file, write_text_atomic

PathType = Union[str, os.PathLike]

MULTILABEL_DEMO_FILES = {
    "train": "train.jsonl",
    "dev": "dev.jsonl",
    "test": "test.jsonl",
    "labels": "labels.txt",
    "vocab": "vocab.txt",
}
RELATION_DEMO_FILES = {
    "train": "train.jsonl",
    "dev": "dev.jsonl",
    "test": "test.jsonl",
    "schema": "schema.jsonl",
    "vocab": "vocab.txt",
}
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# ============================================================================ multi-label reviews

MULTILABEL_DEMO_LABELS = (
    "quality",
    "price",
    "shipping",
    "packaging",
    "support",
    "durability",
    "appearance",
    "size_fit",
    "battery",
    "refund",
)

# How often each aspect is the main topic of a review (size_fit and battery
# only for the product kinds they fit; refund is rare).
_LABEL_WEIGHTS = {
    "quality": 20,
    "price": 16,
    "shipping": 14,
    "appearance": 11,
    "durability": 9,
    "support": 8,
    "packaging": 7,
    "size_fit": 7,
    "battery": 5,
    "refund": 3,
}
# Which aspects tend to come up together.
_CO_OCCURRENCE = {
    "quality": {"durability": 35, "price": 30, "appearance": 20, "support": 5},
    "price": {"quality": 50, "shipping": 20, "appearance": 10},
    "shipping": {"packaging": 50, "support": 20, "price": 15},
    "packaging": {"shipping": 60, "appearance": 15, "quality": 10},
    "support": {"refund": 30, "shipping": 30, "quality": 10},
    "durability": {"quality": 50, "battery": 20, "price": 10},
    "appearance": {"quality": 30, "size_fit": 30, "price": 20},
    "size_fit": {"appearance": 40, "refund": 30, "quality": 10},
    "battery": {"durability": 40, "quality": 30, "price": 10},
    "refund": {"support": 60, "size_fit": 20, "quality": 20},
}
_PRODUCTS = {
    "electronics": (
        "headphones",
        "bluetooth speaker",
        "phone charger",
        "smartwatch",
        "keyboard",
        "webcam",
        "e-reader",
        "electric toothbrush",
    ),
    "clothing": (
        "jacket",
        "pair of sneakers",
        "hoodie",
        "pair of jeans",
        "raincoat",
        "wool sweater",
        "pair of hiking boots",
    ),
    "home": ("blender", "desk lamp", "coffee maker", "backpack", "frying pan", "office chair", "kettle"),
}
_NOT_FOR = {"electronics": {"size_fit"}, "clothing": {"battery"}, "home": {"size_fit", "battery"}}
_PARTS = {
    "electronics": ("cable", "hinge", "power button", "charging port", "strap"),
    "clothing": ("zipper", "seam", "button", "sole", "stitching"),
    "home": ("handle", "lid", "switch", "base", "strap"),
}
_NUMBERS = ("two", "three", "four", "five", "six", "ten", "2", "3", "4", "5", "6", "8", "12")

# What a review says about each aspect: (complaints, praise). [a|b] picks one;
# {product}, {part}, {n}, {money} are filled in. A review's labels are the
# aspects it complains about; praise for other aspects is a distractor.
_ASPECT_CLAUSES = {
    "quality": (
        (
            "the build quality is [flimsy|mediocre|disappointing|poor]",
            "it feels [plasticky|cheap|flimsy|poorly made] in the hand",
            "the materials are [low grade|thin|cheap]",
            "you can tell it was made from cheap components",
            "overall the {product} is [badly|shoddily|poorly] made",
        ),
        (
            "the build quality is [excellent|solid|superb]",
            "it feels [sturdy|well made|premium|solid] in the hand",
            "the materials are [top notch|first rate|thick]",
            "overall the {product} is [well|nicely|beautifully] made",
        ),
    ),
    "price": (
        (
            "for {money} it is [overpriced|a rip-off|too much]",
            "the price was [way too high|a bit steep|hard to justify]",
            "I paid {money} and I feel cheated",
            "it costs more than similar models",
            "it is [expensive|pricey|overpriced] for what you get",
        ),
        (
            "for {money} it is [a steal|a fair deal|good value]",
            "the price was [reasonable|hard to beat|fair]",
            "I paid {money} and it was worth it",
            "it costs less than similar models",
            "I got it on sale for {money}",
            "it is [affordable|cheap] for what you get",
        ),
    ),
    "shipping": (
        (
            "it arrived {n} days late",
            "delivery took {n} weeks",
            "the courier [left it at the wrong door|lost it for a week]",
            "shipping was [slow|painfully slow]",
            "the tracking number never updated",
            "it was delivered a week late",
        ),
        (
            "it arrived {n} days early",
            "delivery took [one day|two days]",
            "the courier was right on time",
            "shipping was [fast|free|quick]",
            "it was delivered the next day",
        ),
    ),
    "packaging": (
        (
            "the box was [crushed|torn|dented|soaked]",
            "it came wrapped in [too much plastic|a flimsy bag]",
            "the packaging was [excessive|damaged|wasteful]",
            "the seal on the box was broken",
        ),
        (
            "the box was [neat|sturdy]",
            "it came wrapped in [bubble wrap|recycled paper]",
            "the packaging was [minimal|sturdy|beautiful]",
            "the inner foam kept everything safe",
        ),
    ),
    "support": (
        (
            "the customer service team [never answered my emails|kept me on hold|was rude]",
            "I [called|emailed] support and got a canned reply",
            "the seller answered my question [rudely|after two weeks]",
            "the help line agent hung up on me",
        ),
        (
            "the customer service team [replied within an hour|was very helpful]",
            "I [called|emailed] support and they sorted it out",
            "the seller answered my question [quickly|politely]",
            "the help line agent walked me through the setup",
        ),
    ),
    "durability": (
        (
            "the {part} [broke|cracked|snapped|wore out] after {n} [weeks|months]",
            "after {n} months of daily use it is falling apart",
            "it stopped working after {n} weeks",
        ),
        (
            "after {n} months of daily use it [still looks new|works like day one]",
            "the {part} held up after {n} months of heavy use",
            "it survived [a fall down the stairs|a year of travel]",
        ),
    ),
    "appearance": (
        (
            "the color is [duller than in the photos|a bit garish|nothing like the picture]",
            "it looks [bulky|cheap|dated]",
            "the [finish|design] is [ugly|old fashioned]",
        ),
        (
            "the color is [lovely|exactly as pictured]",
            "it looks [sleek|stylish|elegant]",
            "the [finish|design] is [elegant|modern|gorgeous]",
            "everyone compliments the way it looks",
        ),
    ),
    "size_fit": (
        (
            "the [medium|large|small] runs [small|large]",
            "the [sleeves|legs] are [too long|too short]",
            "it fits [loosely|too tightly] around the [waist|shoulders|chest]",
            "I had to order [one|two] sizes [up|down]",
        ),
        (
            "the [medium|large|small] runs true to size",
            "the [sleeves|legs] are just right",
            "it fits perfectly around the [waist|shoulders|chest]",
            "the fit is spot on",
        ),
    ),
    "battery": (
        (
            "the battery lasts barely {n} hours",
            "it needs charging twice a day",
            "the battery [drains quickly|died after a few charges]",
        ),
        (
            "the battery lasts [about|almost] {n} days",
            "it needs charging once a week",
            "the battery holds a charge for days",
        ),
    ),
    "refund": (
        (
            "I am still waiting for a refund",
            "I sent it back and never got my money back",
            "the return label never arrived",
            "they gave me my money back after a long fight",
        ),
        (
            "I got a refund [within a day|without questions]",
            "I sent it back and the money came back in {n} days",
            "the return label was easy to print",
        ),
    ),
}
# Words that name an aspect: used by the clauses that work for any aspect,
# and by clauses that mention an aspect without judging it.
_ASPECT_WORDS = {
    "quality": ("build quality", "quality", "materials"),
    "price": ("price", "value for money"),
    "shipping": ("delivery", "shipping"),
    "packaging": ("packaging", "box"),
    "support": ("customer service", "support"),
    "durability": ("durability",),
    "appearance": ("color", "design", "look"),
    "size_fit": ("fit", "sizing"),
    "battery": ("battery", "battery life"),
    "refund": ("refund process", "return process"),
}
# Clauses for any aspect; telling them apart needs the word order, not just the words.
_GENERIC_CLAUSES = (
    (
        "the {word} was [terrible|disappointing|a letdown|awful|poor|not great|below average]",
        "I am [unhappy|not happy|disappointed] with the {word}",
        "the {word} could have been [much |]better",
        "my only complaint is the {word}",
        "the {word} is the weak point",
    ),
    (
        "the {word} was [great|excellent|fantastic|better than expected|perfect|impressive]",
        "I am [happy|very happy|impressed] with the {word}",
        "the {word} could not have been better",
        "no complaints about the {word}",
        "the {word} is the best part",
    ),
)
_HARD_NEGATIVES = (
    "I can't say anything about the {word} yet",
    "the {word} did not matter to me",
    "I won't comment on the {word}",
    "my friend asked about the {word} but I have no idea",
)
_FILLERS = (
    "I bought this {product} [for my brother|for my mother|as a gift|for work|for myself]",
    "we use it every [morning|weekend|day|evening]",
    "I ordered it on a [monday|friday|sunday|rainy tuesday]",
    "my [neighbour|sister|colleague] recommended it",
    "this is my [second|third|first] {product}",
    "I was looking for something like this for a while",
    "I am writing this review after {n} weeks",
    "I compared it with two other brands",
)
_SENTIMENTS = (
    "I am [happy|disappointed|satisfied|annoyed] overall",
    "would [definitely|not] buy again",
    "[five|two|three|four] stars from me",
    "honestly it is [great|awful|fine|okay]",
    "[highly|not] recommended",
)
_CONNECTORS = (". ", ", and ", "; ", ", but ", ". Also, ", ", ", ". ")
_ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")
_GENERIC_SHARE = 0.4  # how often an aspect is judged with a clause that fits any aspect


def _fill(template: str, rng: random.Random, **slots: str) -> str:
    text = _ALTERNATIVES.sub(lambda match: rng.choice(match.group(1).split("|")), template)
    amount = rng.randint(9, 300)
    values = {
        "n": rng.choice(_NUMBERS),
        "money": f"${amount}" if rng.random() < 0.5 else f"{amount} dollars",
    }
    values.update(slots)
    return re.sub(r"\{(\w+)\}", lambda match: values.get(match.group(1), match.group(0)), text)


def _weighted(rng: random.Random, weights: dict, allowed: Iterable[str]) -> Optional[str]:
    allowed = [label for label in weights if label in set(allowed)]
    if not allowed:
        return None
    return rng.choices(allowed, weights=[weights[label] for label in allowed])[0]


def _judgement(rng: random.Random, label: str, complaint: bool, **slots: str) -> str:
    polarity = 0 if complaint else 1
    if rng.random() < _GENERIC_SHARE:
        word = rng.choice(_ASPECT_WORDS[label])
        return _fill(rng.choice(_GENERIC_CLAUSES[polarity]), rng, word=word, **slots)
    return _fill(rng.choice(_ASPECT_CLAUSES[label][polarity]), rng, **slots)


def _review(rng: random.Random) -> tuple:
    """One review and the aspects it complains about."""
    kind = rng.choice(tuple(_PRODUCTS))
    slots = {"product": rng.choice(_PRODUCTS[kind]), "part": rng.choice(_PARTS[kind])}
    eligible = [label for label in MULTILABEL_DEMO_LABELS if label not in _NOT_FOR[kind]]
    count = rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
    labels = [_weighted(rng, _LABEL_WEIGHTS, eligible)]
    while len(labels) < count:
        remaining = [label for label in eligible if label not in labels]
        label = None
        if rng.random() < 0.7:
            label = _weighted(rng, _CO_OCCURRENCE[rng.choice(labels)], remaining)
        labels.append(label or _weighted(rng, _LABEL_WEIGHTS, remaining))
    others = [label for label in eligible if label not in labels]

    clauses = [_judgement(rng, label, True, **slots) for label in labels]
    if rng.random() < 0.15:
        clauses.append(_judgement(rng, rng.choice(labels), True, **slots))
    for label in rng.sample(others, rng.choices((0, 1, 2), weights=(35, 45, 20))[0]):
        clauses.append(_judgement(rng, label, False, **slots))
    for _ in range(rng.choices((0, 1, 2), weights=(40, 45, 15))[0]):
        clauses.append(_fill(rng.choice(_FILLERS), rng, **slots))
    if rng.random() < 0.4:
        clauses.append(_fill(rng.choice(_SENTIMENTS), rng))
    if rng.random() < 0.25:
        word = rng.choice(_ASPECT_WORDS[rng.choice(others)])
        clauses.append(_fill(rng.choice(_HARD_NEGATIVES), rng, word=word))
    clauses = list(dict.fromkeys(clauses))
    rng.shuffle(clauses)
    if rng.random() < 0.3:
        clauses.insert(0, _fill("got this {product} [last month|recently|a while ago]", rng, **slots))
    text = clauses[0]
    for clause in clauses[1:]:
        connector = rng.choice(_CONNECTORS)
        if connector.endswith(". "):
            clause = clause[0].upper() + clause[1:]
        text += connector + clause
    text = text[0].upper() + text[1:] + rng.choice((".", ".", "!"))
    order = {label: i for i, label in enumerate(MULTILABEL_DEMO_LABELS)}
    return text, sorted(labels, key=order.get)


def _split_sizes(n_train: int, n_dev: int, n_test: int) -> dict:
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    for name, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"n_{name} must be an integer >= 0; got {size!r}")
    return sizes


def make_multilabel_demo(n_train: int = 4000, n_dev: int = 500, n_test: int = 500, seed: int = 0) -> dict:
    """Generate the multi-label review demo.

    Returns `{"train": [...], "dev": [...], "test": [...]}`, each a list of
    records `{"id": "train-0", "text": "...", "labels": ["price", "quality"]}`
    (labels in `MULTILABEL_DEMO_LABELS` order). No text appears in two
    splits. The same seed gives the same data.

    >>> demo = make_multilabel_demo(20, 5, 5, seed=1)
    >>> len(demo["train"]), sorted(demo["train"][0])
    (20, ['id', 'labels', 'text'])
    """
    sizes = _split_sizes(n_train, n_dev, n_test)
    rng = random.Random(seed)
    seen: set = set()
    splits: dict = {}
    for name, size in sizes.items():
        records = []
        attempts = 0
        while len(records) < size:
            attempts += 1
            if attempts > 50 * size + 1000:
                raise RuntimeError("could not generate enough distinct reviews")
            text, labels = _review(rng)
            if text in seen:
                continue
            seen.add(text)
            records.append({"id": f"{name}-{len(records)}", "text": text, "labels": labels})
        splits[name] = records
    return splits


# ============================================================================ relation sentences

RELATION_DEMO_SCHEMA = (
    {"subject_type": "person", "predicate": "born_in", "object_type": "city"},
    {"subject_type": "person", "predicate": "works_for", "object_type": "company"},
    {"subject_type": "company", "predicate": "founded_by", "object_type": "person"},
    {"subject_type": "company", "predicate": "headquartered_in", "object_type": "city"},
    {"subject_type": "city", "predicate": "located_in", "object_type": "country"},
    {"subject_type": "person", "predicate": "spouse_of", "object_type": "person"},
    {"subject_type": "person", "predicate": "studied_at", "object_type": "university"},
)
_TYPES = {row["predicate"]: (row["subject_type"], row["object_type"]) for row in RELATION_DEMO_SCHEMA}

SYLLABLES = (
    "ka",
    "ro",
    "lin",
    "ma",
    "te",
    "vo",
    "ri",
    "sa",
    "den",
    "bel",
    "tor",
    "mi",
    "na",
    "les",
    "do",
    "ven",
    "ar",
    "is",
    "lo",
    "mar",
    "ne",
    "quin",
    "ta",
    "zel",
    "fa",
    "gor",
    "hu",
    "ul",
    "bri",
    "cas",
    "el",
    "dra",
    "ny",
    "os",
    "pe",
    "rak",
    "sil",
    "tu",
    "wen",
    "yo",
)
_CITY_SUFFIXES = ("", "", "burg", "ford", "ville", "port", "holm", "dale")
_COUNTRY_SUFFIXES = ("ia", "land", "stan", "ar", "ova")
_COMPANY_SUFFIXES = ("Systems", "Labs", "Motors", "Bank", "Foods", "Energy", "Media", "Airlines")
NAME_PIECES = SYLLABLES + tuple(s for s in _CITY_SUFFIXES + _COUNTRY_SUFFIXES if s)

# A template: text with [a|b] choices and {ROLE} slots, and its triples.
_RELATION_TEMPLATES = (
    (
        "{P1} was [born|raised from birth] in {C1} and now works for {O1}.",
        (("P1", "born_in", "C1"), ("P1", "works_for", "O1")),
    ),
    (
        "{O1}, which was founded by {P1}, is headquartered in {C1}.",
        (("O1", "founded_by", "P1"), ("O1", "headquartered_in", "C1")),
    ),
    (
        "{P1} works for {O1}, a company based in {C1}, a city in {K1}.",
        (("P1", "works_for", "O1"), ("O1", "headquartered_in", "C1"), ("C1", "located_in", "K1")),
    ),
    (
        "Born in {C1}, [a city in|in the north of|in the south of] {K1}, {P1} studied at {U1}.",
        (("P1", "born_in", "C1"), ("C1", "located_in", "K1"), ("P1", "studied_at", "U1")),
    ),
    (
        "{P1} and [his|her] [wife|husband] {P2} founded {O1} in {YEAR}.",
        (("O1", "founded_by", "P1"), ("O1", "founded_by", "P2"), ("P1", "spouse_of", "P2")),
    ),
    (
        "{P1}, a graduate of {U1}, [married|is married to] {P2}, who [works for|is an engineer at] {O1}.",
        (("P1", "studied_at", "U1"), ("P1", "spouse_of", "P2"), ("P2", "works_for", "O1")),
    ),
    ("{OC} has its head office in {C1}.", (("OC", "headquartered_in", "C1"),)),
    ("{P1} studied at the University of {C1} before moving to {C2}.", (("P1", "studied_at", "UC"),)),
    (
        "{O1} was set up in {C2} by {P1}, who later became its chief executive.",
        (("O1", "founded_by", "P1"), ("P1", "works_for", "O1")),
    ),
    (
        "The {O1} founder {P1} was born in {C1}, {K1}.",
        (("O1", "founded_by", "P1"), ("P1", "born_in", "C1"), ("C1", "located_in", "K1")),
    ),
    (
        "{C1} is the largest city of {K1}, and {OC} [moved its headquarters|has its headquarters] there.",
        (("C1", "located_in", "K1"), ("OC", "headquartered_in", "C1")),
    ),
    ("{P2}, [the spouse|the partner] of {P1}, was born in {C2}.", (("P2", "spouse_of", "P1"), ("P2", "born_in", "C2"))),
    # Sentences that relate nobody: the model has to learn what does not count.
    ("{P1} visited {C1} last year.", ()),
    ("{P1} met {P2} at a conference in {C2}.", ()),
    ("{P3} [wrote a book about|gave a talk on] {O1}.", ()),
)


def _syllable_word(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(low, high))).capitalize()


def _entities(rng: random.Random) -> dict:
    """Fresh distinct names for every role of a sentence."""
    while True:
        surnames = [_syllable_word(rng, 2, 3) for _ in range(3)]
        people = [f"{_syllable_word(rng, 2, 2)} {surname}" for surname in surnames]
        city1 = _syllable_word(rng, 2, 3) + rng.choice(_CITY_SUFFIXES)
        city2 = _syllable_word(rng, 2, 3) + rng.choice(_CITY_SUFFIXES)
        roles = {
            "P1": people[0],
            "P2": people[1],
            "P3": people[2],
            "C1": city1,
            "C2": city2,
            "K1": _syllable_word(rng, 1, 2) + rng.choice(_COUNTRY_SUFFIXES),
            "O1": f"{_syllable_word(rng, 2, 3)} {rng.choice(_COMPANY_SUFFIXES)}",
            "OC": f"{city1} {rng.choice(_COMPANY_SUFFIXES)}",
            "U1": rng.choice((f"{_syllable_word(rng, 2, 3)} Institute", f"University of {_syllable_word(rng, 2, 3)}")),
            "UC": f"University of {city1}",
            "YEAR": str(rng.randint(1950, 2020)),
        }
        # Names other than the intended nestings must not contain one another.
        plain = [v for k, v in roles.items() if k not in ("OC", "UC", "YEAR")]
        lowered = [name.lower() for name in plain]
        if len(set(lowered)) == len(lowered) and not any(a != b and a in b for a in lowered for b in lowered):
            return roles


def _compose(rng: random.Random) -> tuple:
    """`(roles, text, triples)`: one or two filled templates with fresh names."""
    roles = _entities(rng)
    count = rng.choices((1, 2), weights=(60, 40))[0]
    chosen = rng.sample(range(len(_RELATION_TEMPLATES)), count)
    sentences, triples = [], []
    for index in chosen:
        template, template_triples = _RELATION_TEMPLATES[index]
        text = _ALTERNATIVES.sub(lambda match: rng.choice(match.group(1).split("|")), template)
        sentences.append(re.sub(r"\{(\w+)\}", lambda match: roles[match.group(1)], text))
        for subject_role, predicate, object_role in template_triples:
            triple = (roles[subject_role], predicate, roles[object_role])
            if triple not in triples:
                triples.append(triple)
    return roles, " ".join(sentences), triples


def _relation_sentence(rng: random.Random) -> dict:
    _, text, triples = _compose(rng)
    spo_list = []
    for subject, predicate, obj in triples:
        subject_type, object_type = _TYPES[predicate]
        spo_list.append(
            {
                "subject": subject,
                "predicate": predicate,
                "object": obj,
                "subject_type": subject_type,
                "object_type": object_type,
            }
        )
    return {"text": text, "spo_list": spo_list}


def _distinct_splits(sizes: dict, rng: random.Random, make) -> dict:
    """`{split: records}` of `make(rng)` records, no text twice across the splits."""
    seen: set = set()
    splits: dict = {}
    for name, size in sizes.items():
        records = []
        while len(records) < size:
            record = make(rng)
            if record["text"] not in seen:
                seen.add(record["text"])
                records.append(record)
        splits[name] = records
    return splits


def make_relation_demo(n_train: int = 3000, n_dev: int = 400, n_test: int = 400, seed: int = 0) -> dict:
    """Generate the relation extraction demo, records in the LIC2019 layout.

    Returns `{"train": [...], "dev": [...], "test": [...]}`, each a list of
    ``{"text": "...", "spo_list": [{"subject", "predicate", "object",
    "subject_type", "object_type"}]}``. Predicates: those of
    `RELATION_DEMO_SCHEMA`. Every subject and object occurs in its text;
    some sentences have no triple.

    >>> demo = make_relation_demo(10, 2, 2, seed=3)
    >>> all(t["subject"] in r["text"] for r in demo["train"] for t in r["spo_list"])
    True
    """
    return _distinct_splits(_split_sizes(n_train, n_dev, n_test), random.Random(seed), _relation_sentence)


ENTITY_DEMO_TYPES = ("DATE", "LOC", "ORG", "PER")
ENTITY_DEMO_FILES = {
    "train": "train.jsonl",
    "dev": "dev.jsonl",
    "test": "test.jsonl",
    "types": "types.txt",
    "vocab": "vocab.txt",
}
_ROLE_TYPES = {"P": "PER", "C": "LOC", "K": "LOC", "O": "ORG", "U": "ORG", "Y": "DATE"}


def _entity_sentence(rng: random.Random) -> dict:
    roles, text, _ = _compose(rng)
    entities = []
    for role, name in roles.items():
        position = text.find(name)
        while position != -1:
            entities.append({"start": position, "end": position + len(name), "type": _ROLE_TYPES[role[0]]})
            position = text.find(name, position + 1)
    entities.sort(key=lambda entity: (entity["start"], -entity["end"]))
    return {"text": text, "entities": entities}


def make_entity_demo(n_train: int = 3000, n_dev: int = 400, n_test: int = 400, seed: int = 0) -> dict:
    """Generate the entity recognition demo: the relation demo's sentences with every name typed.

    Returns `{"train": [...], "dev": [...], "test": [...]}`, each a list of
    ``{"text": "...", "entities": [{"start", "end", "type"}]}`` (character
    offsets, end exclusive; types `ENTITY_DEMO_TYPES`). Some entities are
    nested: the city in "Kelburg Bank" or "University of Kelburg" is a
    `LOC` inside an `ORG`.

    >>> demo = make_entity_demo(20, 2, 2, seed=1)
    >>> record = demo["train"][0]
    >>> all(0 <= e["start"] < e["end"] <= len(record["text"]) for e in record["entities"])
    True
    """
    return _distinct_splits(_split_sizes(n_train, n_dev, n_test), random.Random(seed), _entity_sentence)


# ============================================================================ files

_WORDS = re.compile(r"\w+|[^\w\s]")


def basic_tokens(text: str, lowercase: bool = True) -> list:
    """Split like BERT's basic tokenizer does on ASCII text: words and single
    punctuation marks (`"it's $5!"` -> `["it", "'", "s", "$", "5", "!"]`)."""
    return _WORDS.findall(text.lower() if lowercase else text)


def write_demo_vocab(
    path: PathType,
    texts: Iterable[str],
    *,
    pieces: Sequence[str] = (),
    min_count: int = 1,
    lowercase: bool = True,
) -> list:
    """Write a WordPiece `vocab.txt` for `texts` and return its tokens.

    Order: `[PAD]` (id 0), `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`; every
    character seen, alone and as a `##` continuation (so any word of these
    characters can be tokenised); `pieces` alone and as `##` continuations
    (e.g. the syllables that names are made of); then every word seen at
    least `min_count` times, most frequent first.

    ```python
    tokens = write_demo_vocab("vocab.txt", ["The box was crushed."])
    tokens[:6]   # ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.']
    ```
    """
    counts: Counter = Counter()
    characters: Counter = Counter()
    for text in texts:
        for token in basic_tokens(text, lowercase):
            counts[token] += 1
            characters.update(token)
    tokens: list = list(SPECIAL_TOKENS)
    seen = set(tokens)

    def add(token: str) -> None:
        if token and token not in seen:
            seen.add(token)
            tokens.append(token)

    ordered_characters = sorted(characters, key=lambda c: (-characters[c], c))
    for character in ordered_characters:
        add(character)
    for character in ordered_characters:
        if character.isalnum():
            add("##" + character)
    for piece in pieces:
        piece = piece.lower() if lowercase else piece
        add(piece)
        add("##" + piece)
    for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count >= min_count:
            add(word)
    write_text_atomic(path, "\n".join(tokens) + "\n")
    return tokens


def _write_jsonl(path: Path, records: Iterable[dict]) -> None:
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    replace_file(path, write)


def write_multilabel_demo(
    folder: PathType, n_train: int = 4000, n_dev: int = 500, n_test: int = 500, seed: int = 0
) -> dict:
    """Generate the review demo and write it into `folder`.

    Files (`MULTILABEL_DEMO_FILES`): `train.jsonl`, `dev.jsonl`,
    `test.jsonl` (`{"id", "text", "labels"}` lines), `labels.txt` (one
    label a line) and `vocab.txt` (built from the training texts). Returns
    `{"train": path, "dev": ..., "test": ..., "labels": ..., "vocab": ...}`.

    ```python
    paths = write_multilabel_demo("demo_data", n_train=4000, seed=0)
    train = read_multilabel(paths["train"], label_names=paths["labels"])
    ```
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = make_multilabel_demo(n_train, n_dev, n_test, seed)
    paths = {name: folder / file_name for name, file_name in MULTILABEL_DEMO_FILES.items()}
    for name, records in splits.items():
        _write_jsonl(paths[name], records)
    write_text_atomic(paths["labels"], "\n".join(MULTILABEL_DEMO_LABELS) + "\n")
    write_demo_vocab(paths["vocab"], (record["text"] for record in splits["train"]))
    return paths


def write_entity_demo(
    folder: PathType, n_train: int = 3000, n_dev: int = 400, n_test: int = 400, seed: int = 0
) -> dict:
    """Generate the entity demo and write it into `folder` (layout `spans`).

    Files (`ENTITY_DEMO_FILES`): `train.jsonl`, `dev.jsonl`, `test.jsonl`
    (`{"text", "entities"}` lines), `types.txt` and `vocab.txt` (as the
    relation demo's). Returns `{"train": path, ..., "types": ..., "vocab": ...}`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = make_entity_demo(n_train, n_dev, n_test, seed)
    paths = {name: folder / file_name for name, file_name in ENTITY_DEMO_FILES.items()}
    for name, records in splits.items():
        _write_jsonl(paths[name], records)
    write_text_atomic(paths["types"], "\n".join(ENTITY_DEMO_TYPES) + "\n")
    write_demo_vocab(paths["vocab"], (record["text"] for record in splits["train"]), pieces=NAME_PIECES, min_count=3)
    return paths


def write_relation_demo(
    folder: PathType, n_train: int = 3000, n_dev: int = 400, n_test: int = 400, seed: int = 0
) -> dict:
    """Generate the relation demo and write it into `folder`, LIC2019-style.

    Files (`RELATION_DEMO_FILES`): `train.jsonl`, `dev.jsonl`,
    `test.jsonl` (`{"text", "spo_list"}` lines), `schema.jsonl` (like
    `all_50_schemas`) and `vocab.txt` (words seen three times or more in
    training, plus the name syllables as word pieces, so unseen names split
    into pieces). Returns `{"train": path, ..., "schema": ..., "vocab": ...}`.

    ```python
    paths = write_relation_demo("demo_re")
    train = read_relations(paths["train"], layout="lic2019", schema=paths["schema"])
    ```
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = make_relation_demo(n_train, n_dev, n_test, seed)
    paths = {name: folder / file_name for name, file_name in RELATION_DEMO_FILES.items()}
    for name, records in splits.items():
        _write_jsonl(paths[name], records)
    _write_jsonl(paths["schema"], RELATION_DEMO_SCHEMA)
    write_demo_vocab(paths["vocab"], (record["text"] for record in splits["train"]), pieces=NAME_PIECES, min_count=3)
    return paths
