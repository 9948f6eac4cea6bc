"""The relation layouts users hold: DuIE 2.0 with slotted objects, SpERT token data (entities or
BIO / BIOES / BILOU tags), dotted keys, schema forms, and the scoring each implies."""

import json
import random
import re

import pytest

from tests.conftest import TINY_ENCODER
from toolkit.data import DataError, read_relations
from toolkit.data.duie import assemble, official_key
from toolkit.data.schema import SCHEMA_FORMS, load_schema, schema_from_data
from toolkit.data.tokens import TagError, entities_from_tags, tag_scheme
from toolkit.relations.evaluation import evaluate_relations, relation_key


def write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*records):
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


# --- DuIE 2.0 ----------------------------------------------------------------------------

DUIE_SCHEMA = jsonl(
    {"object_type": {"@value": "角色", "inWork": "影视作品"}, "predicate": "饰演", "subject_type": "娱乐人物"},
    {"object_type": {"@value": "人物"}, "predicate": "丈夫", "subject_type": "人物"},
    {
        "object_type": {"@value": "奖项", "inWork": "作品", "onDate": "Date"},
        "predicate": "获奖",
        "subject_type": "娱乐人物",
    },
)
DUIE_RECORD = {
    "text": "周星驰在《大话西游》中饰演至尊宝，1995年凭此获得金像奖",
    "spo_list": [
        {
            "predicate": "饰演",
            "object_type": {"@value": "角色", "inWork": "影视作品"},
            "subject_type": "娱乐人物",
            "object": {"@value": "至尊宝", "inWork": "大话西游"},
            "subject": "周星驰",
        },
        {
            "predicate": "获奖",
            "object_type": {"@value": "奖项", "onDate": "Date"},
            "subject_type": "娱乐人物",
            "object": {"@value": "金像奖", "onDate": "1995年"},
            "subject": "周星驰",
        },
    ],
}


def test_duie2_schema_gives_one_predicate_a_slot(tmp_path):
    schema = load_schema(write(tmp_path, "duie_schema.json", DUIE_SCHEMA))
    assert schema.predicates == ["饰演", "饰演_inWork", "丈夫", "获奖", "获奖_inWork", "获奖_onDate"]
    assert schema.slots["饰演_inWork"] == ("饰演", "inWork") and schema.slots["丈夫"] == ("丈夫", "@value")
    assert schema.signatures["饰演_inWork"] == ("娱乐人物", "影视作品")
    assert schema.entity_types[:3] == ["娱乐人物", "角色", "影视作品"]


def test_duie2_files_read_unchanged_each_slot_a_triple(tmp_path):
    schema = write(tmp_path, "duie_schema.json", DUIE_SCHEMA)
    path = write(tmp_path, "duie_train.json", jsonl(DUIE_RECORD))
    data = read_relations(path, layout="duie2", schema=schema)
    assert data.scoring == "duie2"
    assert data.triples[0] == [
        ("周星驰", "饰演", "至尊宝"),
        ("周星驰", "饰演_inWork", "大话西游"),
        ("周星驰", "获奖", "金像奖"),
        ("周星驰", "获奖_onDate", "1995年"),
    ]
    assert data.types[0][1] == ("娱乐人物", "影视作品")
    assert data.gold[0][0]["object"] == {"@value": "至尊宝", "inWork": "大话西游"}
    # The LIC2019 reader names the layout that fits.
    with pytest.raises(DataError, match=r"the object must be a non-empty string, got an object \(DuIE 2\.0 "):
        read_relations(path, layout="lic2019")


def test_duie2_slot_outside_the_schema_is_named(tmp_path):
    schema = write(tmp_path, "duie_schema.json", DUIE_SCHEMA)
    record = json.loads(json.dumps(DUIE_RECORD))
    record["spo_list"][0]["object"]["inArea"] = "香港"
    path = write(tmp_path, "train.json", jsonl(record))
    with pytest.raises(DataError, match=re.escape(f"{path}:1: predicate '饰演 (slot inArea)' is not in the schema")):
        read_relations(path, layout="duie2", schema=schema)


def test_duie2_slots_are_put_back_together_and_scored_officially(tmp_path):
    schema = load_schema(write(tmp_path, "duie_schema.json", DUIE_SCHEMA))
    data = read_relations(write(tmp_path, "dev.json", jsonl(DUIE_RECORD)), layout="duie2", schema=schema)
    text = data.texts[0]

    def found(predicate, obj):
        start = text.index(obj)
        return {
            "subject": "周星驰",
            "predicate": predicate,
            "object": obj,
            "subject_span": [0, 3],
            "object_span": [start, start + len(obj)],
        }

    predicted = assemble(
        [
            found("饰演", "至尊宝"),
            found("饰演_inWork", "大话西游"),
            found("获奖", "金像奖"),
            found("获奖_onDate", "1995年"),
            found("获奖_inWork", "大话西游"),  # a slot too many: the 获奖 relation is then wrong
        ],
        schema.slots,
        schema.signatures,
    )
    assert predicted[0] == {
        "subject": "周星驰",
        "predicate": "饰演",
        "object": {"@value": "至尊宝", "inWork": "大话西游"},
        "subject_type": "娱乐人物",
        "object_type": {"@value": "角色", "inWork": "影视作品"},
    }
    scores = evaluate_relations([predicted], data.gold, scoring="duie2", predicates=["饰演", "丈夫", "获奖"])
    assert (scores["micro"]["num_correct"], scores["micro"]["num_predicted"], scores["micro"]["num_gold"]) == (1, 2, 2)
    assert scores["per_predicate"]["饰演"]["f1"] == 1.0 and scores["per_predicate"]["获奖"]["f1"] == 0.0
    # The official normalisation: case and book-title marks do not count.
    assert official_key({"subject": "《大话西游》", "predicate": "主演", "object": {"@value": "ABC"}}) == official_key(
        {"subject": "大话西游", "predicate": "主演", "object": "abc"}
    )


def test_assemble_pairs_each_value_with_the_nearest_slot():
    text = "A plays X in F1 and Y in F2"

    def found(predicate, obj):
        start = text.index(obj)
        return {
            "subject": "A",
            "predicate": predicate,
            "object": obj,
            "subject_span": [0, 1],
            "object_span": [start, start + len(obj)],
        }

    slots = {"plays": ("plays", "@value"), "plays_inWork": ("plays", "inWork")}
    records = assemble(
        [found("plays", "X"), found("plays", "Y"), found("plays_inWork", "F1"), found("plays_inWork", "F2")], slots, {}
    )
    assert [record["object"] for record in records] == [
        {"@value": "X", "inWork": "F1"},
        {"@value": "Y", "inWork": "F2"},
    ]
    # A slot found without its @value makes no relation.
    assert assemble([found("plays_inWork", "F1")], slots, {}) == []


# --- Token data (SpERT) ---------------------------------------------------------------------

CONLL_LIKE = {
    "tokens": ["John", "Smith", "works", "for", "Acme", "Corp", "in", "Boston", "."],
    "tags": ["B-Peop", "L-Peop", "O", "O", "B-Org", "L-Org", "O", "U-Loc", "O"],
    "relations": [{"head": 0, "tail": 1, "type": "Work_For"}, {"head": 1, "tail": 2, "type": "OrgBased_In"}],
}


@pytest.mark.parametrize(
    "tags, scheme, entities",
    [
        (["B-Peop", "L-Peop", "O", "U-Loc"], "BILOU", [(0, 2, "Peop"), (3, 4, "Loc")]),
        (["B-PER", "E-PER", "O", "S-LOC"], "BIOES", [(0, 2, "PER"), (3, 4, "LOC")]),
        (["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], "BIO", [(0, 2, "PER"), (3, 4, "LOC"), (4, 5, "LOC")]),
        (["I-PER", "I-PER", "I-LOC"], "BIO", [(0, 2, "PER"), (2, 3, "LOC")]),  # conlleval reads a lone I- as a start
        (["O", "O"], "BIO", []),
    ],
)
def test_tags_are_detected_and_decoded(tags, scheme, entities):
    assert tag_scheme(tags) == scheme
    assert entities_from_tags(tags) == entities


@pytest.mark.parametrize(
    "tags, message",
    [
        (["U-Loc", "B-Peop"], "the 'Peop' entity begun at tag 1 is never closed (with L-Peop)"),
        (["B-Peop", "O", "U-Loc"], "tag 1 ('O') comes before the 'Peop' entity begun at tag 0 is closed"),
        (["I-Peop", "U-Loc"], "tag 0 ('I-Peop') does not continue an entity"),
        (["B-Peop", "L-Org", "U-Loc"], "tag 1 ('L-Org') does not continue an entity of type 'Org'"),
        (["U-Loc", "E-Loc"], "the tags mix BILOU"),
        (["B-Peop", "X-Peop"], "tag 1 ('X-Peop') is not 'O' or a prefix"),
    ],
)
def test_bad_tags_name_the_token(tags, message):
    with pytest.raises(TagError, match=re.escape(message)):
        entities_from_tags(tags)


def test_spert_tags_and_entities_read_the_same(tmp_path):
    with_tags = write(tmp_path, "tags.json", json.dumps([CONLL_LIKE]))
    entities = dict(
        CONLL_LIKE,
        entities=[
            {"type": "Peop", "start": 0, "end": 2},
            {"type": "Org", "start": 4, "end": 6},
            {"type": "Loc", "start": 7, "end": 8},
        ],
    )
    del entities["tags"]
    with_entities = write(tmp_path, "entities.json", jsonl(entities))
    for path in (with_tags, with_entities):
        data = read_relations(path, layout="spert")
        assert data.texts == ["John Smith works for Acme Corp in Boston ."] and data.scoring == "span"
        assert data.triples[0] == [("John Smith", "Work_For", "Acme Corp"), ("Acme Corp", "OrgBased_In", "Boston")]
        assert data.spans[0] == [((0, 10), (21, 30)), ((21, 30), (34, 40))]
        assert data.types[0] == [("Peop", "Org"), ("Org", "Loc")]
        assert data.entities[0] == [(0, 10, "Peop"), (21, 30, "Org"), (34, 40, "Loc")]
        assert data.predicates == ["OrgBased_In", "Work_For"]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"tags": ["B-Peop", "L-Peop", "O", "O", "B-Org", "O", "O", "U-Loc", "O"]},
            "tag 5 ('O') comes before the 'Org' entity begun at tag 4 is closed",
        ),
        ({"tags": ["O"]}, "1 tags for 9 tokens"),
        (
            {"relations": [{"head": 0, "tail": 3, "type": "Kill"}]},
            "relation 1 in 'relations': tail must number one of the 3 entities",
        ),
        ({"relations": [{"head": 0, "type": "Kill"}]}, "relation 1 in 'relations' has no 'tail' key"),
        ({"tokens": ["John Smith"] + CONLL_LIKE["tokens"][2:]}, "token 0 must be a non-empty string without spaces"),
    ],
)
def test_spert_mistakes_name_file_and_line(tmp_path, change, message):
    path = write(
        tmp_path, "bad.json", jsonl({"tokens": ["ok"], "tags": ["O"], "relations": []}, dict(CONLL_LIKE, **change))
    )
    with pytest.raises(DataError, match=re.escape(f"{path}:2: {message}")):
        read_relations(path, layout="spert")


def test_spert_without_entities_or_tags_says_what_it_needs(tmp_path):
    path = write(tmp_path, "bad.json", jsonl({"tokens": ["a"], "entitys": [], "relations": []}))
    with pytest.raises(
        DataError, match=re.escape("expected 'entities' ([{type, start, end}]) or 'tags'") + ".*did you mean 'entitys'"
    ):
        read_relations(path, layout="spert")


def test_two_mentions_of_the_same_words_stay_two(tmp_path):
    from toolkit.encoders.tokenizer import WordPieceTokenizer
    from toolkit.relations.targets import build_targets

    record = {
        "tokens": ["Paris", "met", "Paris", "in", "Rome"],
        "entities": [
            {"type": "Peop", "start": 0, "end": 1},
            {"type": "Peop", "start": 2, "end": 3},
            {"type": "Loc", "start": 4, "end": 5},
        ],
        "relations": [{"head": 0, "tail": 2, "type": "Live_In"}, {"head": 1, "tail": 2, "type": "Live_In"}],
    }
    data = read_relations(write(tmp_path, "two.json", jsonl(record)), layout="spert")
    assert data.triples[0] == [("Paris", "Live_In", "Rome")] * 2 and len(set(data.spans[0])) == 2
    vocab = write(
        tmp_path, "vocab.txt", "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "paris", "met", "in", "rome"]) + "\n"
    )
    targets, report = build_targets(
        data.texts, data.triples, WordPieceTokenizer(vocab), data.predicates, 16, spans=data.spans
    )
    assert report.num_kept == 2 and targets[0].subject_spans == [(1, 1), (3, 3)]
    # Scored at span level: finding one of them is half right.
    one = [dict(data.gold[0][0])]
    scores = evaluate_relations([one], data.gold, scoring="span")
    assert scores["micro"]["recall"] == 0.5 and scores["micro"]["precision"] == 1.0
    assert scores["entities"]["recall"] == pytest.approx(2 / 3)
    # The same strings found at other characters, or with another type, are wrong.
    moved = dict(one[0], subject_span=[1, 6])
    retyped = dict(one[0], object_type="Org")
    assert evaluate_relations([[moved, retyped]], data.gold, scoring="span")["micro"]["num_correct"] == 0
    # Scored as text (what a string layout does), the two are one.
    assert evaluate_relations([one], data.gold, scoring="text")["micro"]["recall"] == 1.0


def test_relation_key_rejects_an_unknown_scoring():
    with pytest.raises(ValueError, match="scoring must be one of 'text', 'span', 'duie2'; got 'loose'"):
        relation_key({"subject": "a", "predicate": "p", "object": "b"}, "loose")


# --- Keys, schemas ------------------------------------------------------------------------------


def test_custom_layout_takes_dotted_keys_and_types(tmp_path):
    record = {
        "doc": {"body": "Ada was born in London"},
        "facts": [
            {"head": {"name": "Ada", "kind": "PER"}, "rel": "born_in", "tail": {"name": "London", "kind": "LOC"}}
        ],
    }
    data = read_relations(
        write(tmp_path, "custom.jsonl", jsonl(record)),
        layout="custom",
        text_field="doc.body",
        triples_field="facts",
        subject_key="head.name",
        predicate_key="rel",
        object_key="tail.name",
        subject_type_key="head.kind",
        object_type_key="tail.kind",
    )
    assert data.triples[0] == [("Ada", "born_in", "London")] and data.types[0] == [("PER", "LOC")]
    assert schema_from_data(data).signatures == {"born_in": ("PER", "LOC")}


def test_a_missing_object_is_not_offered_the_subject(tmp_path):
    path = write(
        tmp_path,
        "t.jsonl",
        jsonl({"text": "a b", "spo_list": [{"subject": "a", "predicate": "p", "subject_type": "x"}]}),
    )
    with pytest.raises(DataError) as excinfo:
        read_relations(path)
    assert str(excinfo.value) == f"{path}:1: triple 1 in 'spo_list' has no 'object' key"
    path = write(
        tmp_path, "u.jsonl", jsonl({"text": "a b", "spo_list": [{"subject": "a", "predicate": "p", "Object": "b"}]})
    )
    with pytest.raises(DataError, match=re.escape("has no 'object' key; did you mean 'Object'?")):
        read_relations(path)


def test_schema_forms(tmp_path):
    spert_types = {"entities": {"Loc": {}, "Peop": {}}, "relations": {"Live_In": {}, "Kill": {}}}
    schema = load_schema(write(tmp_path, "types.json", json.dumps(spert_types)))
    assert schema.predicates == ["Live_In", "Kill"] and schema.entity_types == ["Loc", "Peop"]
    lic = load_schema(
        write(tmp_path, "all_50_schemas", jsonl({"object_type": "人物", "predicate": "父亲", "subject_type": "人物"}))
    )
    assert lic.predicates == ["父亲"] and lic.signatures == {"父亲": ("人物", "人物")} and lic.slots == {}
    assert load_schema(write(tmp_path, "rel2id.json", '[{"0": "a", "1": "b"}, {"a": 0, "b": 1}]')).predicates == [
        "a",
        "b",
    ]
    assert load_schema(write(tmp_path, "list.json", '["x", "y"]')).predicates == ["x", "y"]
    assert load_schema(write(tmp_path, "lines.txt", "x\ny\n")).predicates == ["x", "y"]
    path = write(tmp_path, "odd.json", '{"labels": ["a"]}')
    with pytest.raises(DataError) as excinfo:
        load_schema(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: not a schema. The accepted forms are: ")
    assert all(form in message for form in SCHEMA_FORMS)


# --- End to end ---------------------------------------------------------------------------------

PEOPLE = ["john", "mary", "ahmed", "li", "sara", "tom", "ines", "raj", "olga", "ken"]
ORGS = ["acme", "globex", "initech", "umbrella", "hooli", "vandelay"]
PLACES = ["boston", "paris", "lima", "oslo", "cairo", "kyoto"]


def _spert_records(count, seed):
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        person, org, place = rng.choice(PEOPLE), rng.choice(ORGS), rng.choice(PLACES)
        if rng.random() < 0.5:
            tokens = [person, "works", "for", org, "in", place, "."]
            tags = ["U-Peop", "O", "O", "U-Org", "O", "U-Loc", "O"]
            relations = [{"head": 0, "tail": 1, "type": "Work_For"}, {"head": 1, "tail": 2, "type": "OrgBased_In"}]
        else:
            tokens = [person, "lives", "in", place, "near", org, "."]
            tags = ["U-Peop", "O", "O", "U-Loc", "O", "U-Org", "O"]
            relations = [{"head": 0, "tail": 1, "type": "Live_In"}]
        records.append({"tokens": tokens, "tags": tags, "relations": relations})
    return records


def _duie_records(count, seed):
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        person, role, film = rng.choice(PEOPLE), rng.choice(ORGS), rng.choice(PLACES)
        records.append(
            {
                "text": f"{person} plays {role} in {film} .",
                "spo_list": [
                    {
                        "subject": person,
                        "predicate": "plays",
                        "object": {"@value": role, "inWork": film},
                        "subject_type": "actor",
                        "object_type": {"@value": "role", "inWork": "film"},
                    }
                ],
            }
        )
    return records


def _tiny_config(tmp_path, layout, train, dev, texts, schema=None):
    from toolkit.config import load_config
    from toolkit.data.synthetic import write_demo_vocab

    folder = tmp_path / "data"
    folder.mkdir()
    train_path = write(folder, "train.json", jsonl(*train))
    dev_path = write(folder, "dev.json", jsonl(*dev))
    write_demo_vocab(folder / "vocab.txt", texts)
    lines = [
        "task: relation_extraction",
        "data:",
        f"  train: {train_path}",
        f"  dev: {dev_path}",
        f"  layout: {layout}",
        *([f"  schema: {schema}"] if schema else []),
        "model:",
        "  encoder:",
        "    source: random",
        f"    vocab: {folder / 'vocab.txt'}",
        "    max_sequence_length: 32",
        "  maxlen: 16",
        "training:",
        "  epochs: 12",
        "  batch_size: 8",
        "  learning_rate: 0.005",
        f"output:\n  dir: {tmp_path / 'run'}",
    ]
    config_path = write(tmp_path, "config.yaml", "\n".join(lines) + "\n")
    return load_config(config_path, overrides=list(TINY_ENCODER))


def test_spert_layout_trains_and_scores_at_span_level(tmp_path):
    from toolkit.relations.pipeline import RelationPipeline

    train, dev = _spert_records(96, 0), _spert_records(24, 1)
    config = _tiny_config(tmp_path, "spert", train, dev, (" ".join(r["tokens"]) for r in train))
    logged = []
    results = RelationPipeline(config, log=logged.append).train()
    assert any(line.startswith("predicates: 3 from the training data; training triples each: ") for line in logged)
    assert "entity types: Peop, Org, Loc" in logged
    assert results["dev"]["scoring"] == "span" and "entities" in results["dev"]
    assert results["dev"]["f1"] > 0.5, results["dev"]  # a data set this regular is learnt in a few epochs
    lines = (tmp_path / "run" / "predictions_dev.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    for spo in record["spo_list"]:
        start, end = spo["subject_span"]
        assert record["text"][start:end] == spo["subject"]
        assert spo["subject_type"] in ("Peop", "Org")
    assert record["spo_list_gold"][0]["subject_span"] == [0, len(dev[0]["tokens"][0])]


def test_duie2_layout_trains_and_writes_duie2_records(tmp_path):
    from toolkit.relations.pipeline import RelationPipeline, RelationPredictor

    train, dev = _duie_records(96, 0), _duie_records(24, 1)
    config = _tiny_config(tmp_path, "duie2", train, dev, (r["text"] for r in train))
    logged = []
    results = RelationPipeline(config, log=logged.append).train()
    assert "objects with slots (each slot learnt as a predicate of its own): plays" in logged
    assert results["dev"]["scoring"] == "duie2"
    assert results["dev"]["num_gold"] == len(dev)  # one relation a sentence, its two slots together
    assert results["dev"]["f1"] > 0.5, results["dev"]
    predictor = RelationPredictor.load(tmp_path / "run" / "best")
    found = predictor.extract([dev[0]["text"]])[0]
    assert all(isinstance(record["object"], dict) and "@value" in record["object"] for record in found)
    per_predicate = json.loads((tmp_path / "run" / "per_predicate_dev.json").read_text())
    assert list(per_predicate) == ["plays"]


def test_a_trained_duie2_model_predicts_raw_text_line_by_line(tmp_path):
    from toolkit.relations.pipeline import RelationPipeline

    train, dev = _duie_records(96, 0), _duie_records(24, 1)
    config = _tiny_config(tmp_path, "duie2", train, dev, (r["text"] for r in train))
    RelationPipeline(config, log=lambda message: None).train()
    texts = write(tmp_path, "texts.jsonl", jsonl({"id": 7, "text": dev[0]["text"]}) + "\n" + dev[1]["text"] + "\n")
    pipeline = RelationPipeline.from_run(tmp_path / "run", log=lambda message: None)
    assert pipeline.predict_file(texts, tmp_path / "out.jsonl") == 3
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["text"] for line in lines] == [dev[0]["text"], "", dev[1]["text"]]
    assert lines[0]["id"] == 7 and lines[1]["spo_list"] == []
    assert lines[0]["spo_list"] and all(isinstance(spo["object"], dict) for spo in lines[0]["spo_list"])
