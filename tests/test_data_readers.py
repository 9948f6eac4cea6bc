"""Tests for toolkit.data: the multi-label and relation readers and their file:line errors."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.config import ConfigError, load_config
from toolkit.data import read_split, split_off
from toolkit.data.errors import BadLineCounter, BadLineReport, DataError
from toolkit.data.multilabel import (
    MultilabelDataset,
    build_label_vocabulary,
    infer_format,
    read_label_names,
    read_multilabel,
    to_multi_hot,
)
from toolkit.data.relations import read_relations, read_schema


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repository, or ``$TOOLKIT_SHARED_DIR`` (the shared
    folder or its ``data`` folder); None when absent."""
    candidates = []
    if os.environ.get("TOOLKIT_SHARED_DIR"):
        root = Path(os.environ["TOOLKIT_SHARED_DIR"])
        candidates += [root / "data", root]
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "mlc").is_dir() or (candidate / "re").is_dir():
            return candidate
    return None


def shared(relative: str) -> Path:
    root = shared_data_dir()
    if root is None or not (root / relative).exists():
        pytest.skip(
            f"real data {relative} is absent: ../shared/data (or $TOOLKIT_SHARED_DIR) "
            "is only present in the project's own setup"
        )
    return root / relative


def write(folder: Path, name: str, content) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


# ============================================================================ errors module


def test_data_error_format():
    error = DataError("a/train.jsonl", 7, "empty text in field 'text'", reason="empty text")
    assert str(error) == "a/train.jsonl:7: empty text in field 'text'"
    assert (error.path, error.line, error.reason) == ("a/train.jsonl", 7, "empty text")
    assert isinstance(error, ValueError)
    assert str(DataError("f.tsv", None, "file is empty")) == "f.tsv: file is empty"
    assert DataError("f", 1, "m").reason == "m"


def test_bad_line_report():
    report = BadLineCounter("t.jsonl")
    assert BadLineCounter is BadLineReport
    assert not report and report.summary() == "t.jsonl: no bad lines"
    report.handle(DataError("t.jsonl", 3, "bad", reason="malformed JSON"), "skip")
    report.handle(DataError("t.jsonl", 5, "bad", reason="malformed JSON"), "skip")
    report.handle(DataError("t.jsonl", 9, "empty", reason="empty text"), "skip")
    report.warn(DataError("t.jsonl", 11, "missing", reason="entity not in text"))
    assert report.num_skipped == 3 and report.num_warnings == 1
    assert report.skipped == {"malformed JSON": 2, "empty text": 1}
    assert report.summary() == (
        "t.jsonl: skipped 3 bad lines (2 malformed JSON, 1 empty text); first: t.jsonl:3: bad; "
        "kept with warnings: 1 entity not in text; first: t.jsonl:11: missing"
    )
    with pytest.raises(DataError, match=r"^t\.jsonl:1: x$"):
        report.handle(DataError("t.jsonl", 1, "x"), "error")


# ============================================================================ multi-label: JSON lines


def test_jsonl_basic_bom_crlf_blank_lines(tmp_path):
    content = "\ufeff" + jsonl({"text": "a b", "labels": ["x", "y", "x"]}).replace("\n", "\r\n")
    content += "\r\n   \n" + jsonl({"text": "c\u2028d", "labels": []})
    data = read_multilabel(write(tmp_path, "t.jsonl", content))
    assert isinstance(data, MultilabelDataset) and len(data) == 2
    assert data.texts == ["a b", "c\u2028d"]
    assert data.labels == [["x", "y"], []]
    assert data.lines == [1, 4]
    assert not data.report


def test_jsonl_nested_fields_separator_and_ids(tmp_path):
    path = write(
        tmp_path,
        "t.json",
        jsonl(
            {"doc": {"body": "hello"}, "tags": "b|a| |c"},
            {"doc": {"body": "bye"}, "tags": 1},
        ),
    )
    data = read_multilabel(path, text_field="doc.body", labels_field="tags", label_separator="|")
    assert data.texts == ["hello", "bye"] and data.labels == [["b", "a", "c"], ["1"]]


def test_label_names_map_ids_and_names(tmp_path):
    names = write(tmp_path, "labels.txt", "zero\none\n2x\n\n")
    path = write(
        tmp_path,
        "t.jsonl",
        jsonl(
            {"text": "a", "labels": [0, "one", "2", "2x"]},
        ),
    )
    data = read_multilabel(path, label_names=names)
    assert data.labels == [["zero", "one", "2x"]]
    assert data.label_names == ["zero", "one", "2x"]
    assert read_multilabel(path, label_names=["zero", "one", "2x"]).labels == data.labels


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "a", "labels": ["x"]', r"malformed JSON: Expecting ',' delimiter \(column 30\)"),
        ("[1, 2]", r"expected a JSON object, got a list"),
        ('{"txt": "a", "labels": []}', r"missing field 'text'; did you mean 'txt'\?"),
        ('{"text": "a"}', r"missing field 'labels'"),
        ('{"text": "  ", "labels": ["x"]}', r"empty text in field 'text'"),
        ('{"text": 5, "labels": ["x"]}', r"text field 'text' must be a string, got a number"),
        (
            '{"text": "a", "labels": "x,y"}',
            r"labels field 'labels' is a string \('x,y'\); give a list of labels, or set "
            r"label_separator to split it",
        ),
        ('{"text": "a", "labels": null}', r"labels field 'labels' must be a list of labels, got null"),
        (
            '{"text": "a", "labels": [1.5]}',
            r"labels field 'labels' holds a number; labels must be strings or integer ids",
        ),
        ('{"text": "a", "labels": [""]}', r"labels field 'labels' holds an empty label"),
        ('{"text": "a", "labels": {"x": 1}}', r"labels field 'labels' must be a list of labels, got an object"),
        ("[" * 100000, r"malformed JSON: maximum recursion depth"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "t.jsonl", jsonl({"text": "ok", "labels": []}, "", line))
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:3: ") + message):
        read_multilabel(path)


def test_unknown_label_and_id_out_of_range(tmp_path):
    names = write(tmp_path, "labels.txt", "sports\npolitics\n")
    path = write(tmp_path, "t.jsonl", jsonl({"text": "a", "labels": ["sport"]}))
    with pytest.raises(
        DataError,
        match="^" + re.escape(f"{path}:1: label 'sport' is not in the label file {names}; did you mean 'sports'?"),
    ):
        read_multilabel(path, label_names=names)
    path = write(tmp_path, "t.jsonl", jsonl({"text": "a", "labels": [0, 2]}))
    with pytest.raises(
        DataError,
        match="^" + re.escape(f"{path}:1: label id 2 is out of range: the label file {names} has 2 labels (ids 0-1)"),
    ):
        read_multilabel(path, label_names=names)
    path = write(tmp_path, "t.jsonl", jsonl({"text": "a", "labels": ["9" * 40]}))
    with pytest.raises(DataError, match=r":1: label id 9+ is out of range"):
        read_multilabel(path, label_names=names)


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="^" + re.escape(f"{tmp_path / 'none.jsonl'}: file not found")):
        read_multilabel(tmp_path / "none.jsonl")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: is a folder, expected a file")):
        read_multilabel(tmp_path, format="jsonl")
    empty = write(tmp_path, "empty.jsonl", "\n  \n")
    with pytest.raises(DataError, match="^" + re.escape(f"{empty}: file is empty") + "$"):
        read_multilabel(empty)
    with pytest.raises(DataError, match=re.escape(f"{write(tmp_path, 'e.tsv', '')}: file is empty")):
        read_multilabel(tmp_path / "e.tsv")
    header_only = write(tmp_path, "h.csv", "text,labels\n")
    with pytest.raises(DataError, match="^" + re.escape(f"{header_only}: no examples found") + "$"):
        read_multilabel(header_only)
    unknown = write(tmp_path, "data.dat", "x")
    with pytest.raises(DataError, match=re.escape(f"{unknown}: cannot tell the format from the file name")):
        read_multilabel(unknown)


def test_invalid_utf8_names_line(tmp_path):
    path = write(tmp_path, "t.jsonl", b'{"text": "ok", "labels": []}\n{"text": "\xff", "labels": []}\n')
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:2: invalid UTF-8 (byte 0xff at column 11)")):
        read_multilabel(path)
    data = read_multilabel(path, on_bad_line="skip")
    assert data.texts == ["ok"] and data.report.skipped == {"invalid UTF-8": 1}
    utf16 = write(tmp_path, "u.jsonl", '{"text": "a", "labels": []}\n'.encode("utf-16"))
    with pytest.raises(DataError, match="^" + re.escape(f"{utf16}:1: file is UTF-16 encoded; convert it to UTF-8")):
        read_multilabel(utf16)


def test_skip_mode_counts_reasons_and_max_examples(tmp_path):
    path = write(
        tmp_path,
        "t.jsonl",
        jsonl(
            {"text": "a", "labels": ["x"]},
            "{broken",
            {"text": "", "labels": ["x"]},
            {"text": "b", "labels": ["y"]},
            {"text": "", "labels": []},
            {"text": "c", "labels": ["z"]},
        ),
    )
    data = read_multilabel(path, on_bad_line="skip")
    assert data.texts == ["a", "b", "c"] and data.lines == [1, 4, 6]
    assert data.report.skipped == {"empty text": 2, "malformed JSON": 1}
    assert data.report.summary().startswith(
        f"{path}: skipped 3 bad lines (2 empty text, 1 malformed JSON); first: {path}:2: malformed JSON"
    )
    assert read_multilabel(path, on_bad_line="skip", max_examples=2).texts == ["a", "b"]
    assert read_multilabel(path, max_examples=1).texts == ["a"]


def test_every_record_bad_is_an_error_even_when_skipping(tmp_path):
    path = write(tmp_path, "t.jsonl", jsonl({"text": ""}, "nope"))
    with pytest.raises(DataError, match="^" + re.escape(f"{path}: no examples found ({path}: skipped 2 bad lines")):
        read_multilabel(path, on_bad_line="skip")


def test_argument_errors(tmp_path):
    path = write(tmp_path, "t.jsonl", jsonl({"text": "a", "labels": []}))
    with pytest.raises(ValueError, match=r"on_bad_line must be one of 'error', 'skip'; got 'ignore'"):
        read_multilabel(path, on_bad_line="ignore")
    with pytest.raises(ValueError, match=r"format must be one of 'jsonl', 'csv', 'tsv'; got 'xml'"):
        read_multilabel(path, format="xml")
    with pytest.raises(ValueError, match=r"max_examples must be a positive integer or None; got 0"):
        read_multilabel(path, max_examples=0)
    with pytest.raises(ValueError, match=r"header applies to csv and tsv files only"):
        read_multilabel(path, header=True)
    with pytest.raises(DataError, match=r"JSON lines need field names"):
        read_multilabel(path, text_field=0)


# ============================================================================ multi-label: CSV / TSV


def test_tsv_without_header_goemotions_style(tmp_path):
    names = write(tmp_path, "labels.txt", "admiration\namusement\nanger\n")
    path = write(tmp_path, "t.tsv", 'He said "hi"\t0,2\tid1\r\nplain text\t1\tid2\n')
    data = read_multilabel(path, label_names=names)
    assert data.texts == ['He said "hi"', "plain text"]
    assert data.labels == [["admiration", "anger"], ["amusement"]]


def test_tsv_errors(tmp_path):
    path = write(tmp_path, "t.tsv", "good\t0\nonly one column\n\t1\n")
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:2: expected at least 2 columns, got 1")):
        read_multilabel(path)
    data = read_multilabel(path, on_bad_line="skip")
    assert data.report.skipped == {"too few columns": 1, "empty text": 1}
    with pytest.raises(
        DataError, match=re.escape(f"{path}: text_field 'text' is a column name but the file has no header")
    ):
        read_multilabel(path, text_field="text")


def test_csv_with_header_quotes_and_multiline(tmp_path):
    path = write(
        tmp_path, "t.csv", 'id,review,tags\r\n1,"good, cheap",price|quality\r\n2,"two\nlines",\r\n3,ok,"a|b"\r\n'
    )
    data = read_multilabel(path, text_field="review", labels_field="tags", label_separator="|")
    assert data.texts == ["good, cheap", "two\nlines", "ok"]
    assert data.labels == [["price", "quality"], [], ["a", "b"]]
    assert data.lines == [2, 3, 5]
    by_index = read_multilabel(path, text_field=1, labels_field=2, label_separator="|")
    assert by_index.labels == data.labels


def test_csv_errors(tmp_path):
    path = write(tmp_path, "t.csv", "id,review,tags\n1,good,x\n")
    with pytest.raises(
        DataError, match="^" + re.escape(f"{path}:1: no column 'text' in the header (columns: 'id', 'review', 'tags')")
    ):
        read_multilabel(path)
    with pytest.raises(
        DataError,
        match=re.escape("no column 'tag' in the header (columns: 'id', 'review', 'tags'); did you mean 'tags'?"),
    ):
        read_multilabel(path, text_field="review", labels_field="tag")
    bad = write(tmp_path, "b.csv", 'text,labels\nok,x\n"a"b,x\nfine,y\n')
    with pytest.raises(DataError, match="^" + re.escape(f"{bad}:3: malformed CSV: ")):
        read_multilabel(bad)
    data = read_multilabel(bad, on_bad_line="skip")
    assert data.texts == ["ok", "fine"] and data.report.skipped == {"malformed CSV": 1}
    utf = write(tmp_path, "u.csv", b'text,labels\n"multi\n\xfe line",x\nok,y\n')
    with pytest.raises(DataError, match="^" + re.escape(f"{utf}:3: invalid UTF-8")):
        read_multilabel(utf)
    assert read_multilabel(utf, on_bad_line="skip").texts == ["ok"]


def test_label_file_errors(tmp_path):
    assert read_label_names(write(tmp_path, "ok.txt", "\ufeffa\r\nb\n\n")) == ["a", "b"]
    blank = write(tmp_path, "blank.txt", "a\n\nb\n")
    with pytest.raises(
        DataError, match="^" + re.escape(f"{blank}:2: blank line inside the label file (it would shift the label ids)")
    ):
        read_label_names(blank)
    repeated = write(tmp_path, "rep.txt", "a\nb\na\n")
    with pytest.raises(DataError, match="^" + re.escape(f"{repeated}:3: label 'a' repeats line 1")):
        read_label_names(repeated)


def test_infer_format():
    assert [infer_format(n) for n in ("a.jsonl", "a.JSON", "b.csv", "c.tsv", "d.tab", "e.txt")] == [
        "jsonl",
        "jsonl",
        "csv",
        "tsv",
        "tsv",
        None,
    ]


# ============================================================================ label vocabulary


def test_build_label_vocabulary_and_multi_hot(tmp_path):
    first = MultilabelDataset("a", texts=["x", "y"], labels=[["b", "a"], ["c"]])
    assert build_label_vocabulary([first, [["a", "d"]]]) == ["a", "b", "c", "d"]
    names = write(tmp_path, "labels.txt", "c\nb\na\n")
    assert build_label_vocabulary([first], label_names=names) == ["c", "b", "a"]
    with pytest.raises(ValueError, match=r"1 labels are not in label_names: 'c'"):
        build_label_vocabulary([first], label_names=["a", "b"])
    matrix = to_multi_hot(first, ["a", "b", "c"])
    assert matrix.dtype == np.int8 and matrix.tolist() == [[1, 1, 0], [0, 0, 1]]
    assert to_multi_hot([[], ["c"]], ["a", "b", "c"], dtype="float32").dtype == np.float32
    assert to_multi_hot([], ["a"]).shape == (0, 1)
    with pytest.raises(ValueError, match=r"example 1: label 'bb' is not in the vocabulary; did you mean 'b'\?"):
        to_multi_hot([["a"], ["bb"]], ["a", "b"])
    with pytest.raises(ValueError, match=r"vocabulary has repeated labels"):
        to_multi_hot([["a"]], ["a", "a"])


# ============================================================================ relations


LIC_SCHEMA = jsonl(
    {"subject_type": "人物", "predicate": "祖籍", "object_type": "地点"},
    {"subject_type": "人物", "predicate": "父亲", "object_type": "人物"},
    {"subject_type": "企业", "predicate": "祖籍", "object_type": "地点"},
)


def test_read_schema_formats(tmp_path):
    assert read_schema(write(tmp_path, "all_50_schemas", LIC_SCHEMA)) == ["祖籍", "父亲"]
    both = [{"0": "b", "1": "a"}, {"b": 0, "a": 1}]
    assert read_schema(write(tmp_path, "rel2id.json", json.dumps(both, indent=2))) == ["b", "a"]
    assert read_schema(write(tmp_path, "r1.json", json.dumps([{"x": 1, "y": 0}]))) == ["y", "x"]
    assert read_schema(write(tmp_path, "r2.json", json.dumps({"x": 1, "y": 0}))) == ["y", "x"]
    assert read_schema(write(tmp_path, "r3.json", json.dumps({"1": "x", "0": "y"}))) == ["y", "x"]
    assert read_schema(write(tmp_path, "r4.json", '["p", "q"]')) == ["p", "q"]
    assert read_schema(write(tmp_path, "p.txt", "born in\nworks for\n")) == ["born in", "works for"]


def test_read_schema_errors(tmp_path):
    path = write(tmp_path, "s", LIC_SCHEMA + '{"subject_type": "x"}\n')
    with pytest.raises(DataError, match="^" + re.escape(f'{path}:4: expected a JSON object with a "predicate" string')):
        read_schema(path)
    path = write(tmp_path, "r.json", '[{"a": 0,\n "b": 0}]')
    with pytest.raises(DataError, match=re.escape(f"{path}: predicates 'a' and 'b' share id 0")):
        read_schema(path)
    path = write(tmp_path, "x.json", '[{"a": [1]}]')
    with pytest.raises(
        DataError, match=re.escape(f"{path}: not a schema. The accepted forms are: CasRel's rel2id.json")
    ):
        read_schema(path)
    path = write(tmp_path, "y.json", '[\n{"a": 1,\n]')
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:3: malformed JSON")):
        read_schema(path)
    with pytest.raises(
        DataError, match=re.escape(f"{write(tmp_path, 'e.json', '[]')}: the schema lists no predicates")
    ):
        read_schema(tmp_path / "e.json")
    with pytest.raises(DataError, match=re.escape("the schema repeats a predicate")):
        read_schema(write(tmp_path, "d.json", '["a", "a"]'))


def lic_record(text, *triples, **extra):
    return {"text": text, "spo_list": [{"subject": s, "predicate": p, "object": o} for s, p, o in triples], **extra}


def test_lic2019_layout(tmp_path):
    schema = write(tmp_path, "all_50_schemas", LIC_SCHEMA)
    path = write(
        tmp_path,
        "train.json",
        jsonl(
            lic_record(
                "张三祖籍北京，父亲张四",
                ("张三", "祖籍", "北京"),
                ("张三", "父亲", "张四"),
                ("张三", "祖籍", "北京"),
                postag=[],
            ),
            lic_record("没有关系的句子"),
        ),
    )
    data = read_relations(path, schema=schema)
    assert data.texts == ["张三祖籍北京，父亲张四", "没有关系的句子"]
    assert data.triples == [[("张三", "祖籍", "北京"), ("张三", "父亲", "张四")], []]
    assert data.predicates == ["祖籍", "父亲"] and data.lines == [1, 2]
    no_schema = read_relations(path)
    assert no_schema.predicates == sorted({"祖籍", "父亲"})


def test_casrel_layout_reports_record_lines(tmp_path):
    schema = write(
        tmp_path, "rel2id.json", json.dumps([{"0": "birthPlace", "1": "leader"}, {"birthPlace": 0, "leader": 1}])
    )
    records = [
        {"text": "Bean was born in Texas .", "triple_list": [["Bean", "birthPlace", "Texas"]]},
        {"text": "Obama led the US .", "triple_list": [["Obama", "leader", "US"]]},
    ]
    path = write(tmp_path, "train_triples.json", json.dumps(records, indent=4))
    data = read_relations(path, layout="casrel", schema=schema)
    assert data.triples == [[("Bean", "birthPlace", "Texas")], [("Obama", "leader", "US")]]
    assert data.predicates == ["birthPlace", "leader"]
    assert data.lines == [2, 12]
    records[1]["triple_list"][0][1] = "leaderName"
    path = write(tmp_path, "bad.json", json.dumps(records, indent=4))
    with pytest.raises(
        DataError,
        match="^"
        + re.escape(f"{path}:12: predicate 'leaderName' is not in the schema {schema}; did you mean 'leader'?"),
    ):
        read_relations(path, layout="casrel", schema=schema)


def test_json_array_syntax_errors(tmp_path):
    path = write(tmp_path, "a.json", '[\n {"text": "a", "triple_list": []},\n {"text": "b" "x"}\n]')
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:3: malformed JSON: Expecting ',' delimiter")):
        read_relations(path, layout="casrel")
    path = write(tmp_path, "b.json", '[{"text": "a", "triple_list": []}\n {"text": "b"}]')
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:2: malformed JSON: expected ',' or ']'")):
        read_relations(path, layout="casrel")
    path = write(tmp_path, "c.json", '[{"text": "a", "triple_list": []}]\n[]')
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:2: malformed JSON: extra data after the array")):
        read_relations(path, layout="casrel")
    path = write(tmp_path, "d.json", "[]")
    with pytest.raises(DataError, match="^" + re.escape(f"{path}: no examples found")):
        read_relations(path, layout="casrel")


def test_custom_layout_nested_fields(tmp_path):
    path = write(
        tmp_path,
        "c.jsonl",
        jsonl(
            {"doc": {"sentence": "Ann works at Acme"}, "rels": [{"head": "Ann", "type": "works_for", "tail": "Acme"}]},
            {"doc": {"sentence": "Bo lives in Rome"}, "rels": [["Bo", "lives_in", "Rome"]]},
        ),
    )
    data = read_relations(
        path,
        layout="custom",
        text_field="doc.sentence",
        triples_field="rels",
        subject_key="head",
        predicate_key="type",
        object_key="tail",
    )
    assert data.triples == [[("Ann", "works_for", "Acme")], [("Bo", "lives_in", "Rome")]]
    with pytest.raises(ValueError, match=r"layout 'custom' needs triples_field"):
        read_relations(path, layout="custom")


@pytest.mark.parametrize(
    "record, message",
    [
        ({"spo_list": []}, r"missing field 'text'"),
        ({"text": "a b", "spo_lists": []}, r"missing field 'spo_list'; did you mean 'spo_lists'\?"),
        ({"text": "", "spo_list": []}, r"empty text in field 'text'"),
        ({"text": "a b", "spo_list": {}}, r"field 'spo_list' must be a list of triples, got an object"),
        (
            {"text": "a b", "spo_list": [{"subject": "a", "predicate": "p"}]},
            r"triple 1 in 'spo_list' has no 'object' key",
        ),
        (
            {"text": "a b", "spo_list": [["a", "p"]]},
            r"triple 1 in 'spo_list' must be \[subject, predicate, object\], got 2 items",
        ),
        (
            {"text": "a b", "spo_list": ["a p b"]},
            r"triple 1 in 'spo_list' must be an object or a \[subject, predicate, object\] list, got a string",
        ),
        (
            {"text": "a b", "spo_list": [["a", "p", 3]]},
            r"triple 1 in 'spo_list': the object must be a non-empty string, got a number",
        ),
        (
            {"text": "a b", "spo_list": [["", "p", "b"]]},
            r"triple 1 in 'spo_list': the subject must be a non-empty string, got an empty string",
        ),
        ("not json", r"malformed JSON: Expecting value \(column 1\)"),
        (7, r"expected a JSON object, got a number"),
    ],
)
def test_relation_record_errors(tmp_path, record, message):
    path = write(tmp_path, "r.jsonl", jsonl(lic_record("a p b", ("a", "p", "b")), record))
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:2: ") + message):
        read_relations(path)
    skipped = read_relations(path, on_bad_line="skip")
    assert len(skipped) == 1 and skipped.report.num_skipped == 1


def test_missing_entity_count_or_error(tmp_path):
    path = write(
        tmp_path,
        "r.jsonl",
        jsonl(
            lic_record("Ann works at Acme", ("Ann", "works_for", "ACME")),
            lic_record("Bo lives in Rome", ("Bo", "lives_in", "Rome")),
        ),
    )
    data = read_relations(path)
    assert len(data) == 2 and data.triples[0] == [("Ann", "works_for", "ACME")]
    assert data.report.warnings == {"entity not in text": 1} and data.report.num_skipped == 0
    assert str(data.report.warning_examples[0]) == f"{path}:1: the object 'ACME' of triple 1 is not in the text"
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:1: the object 'ACME' of triple 1 is not in the text")):
        read_relations(path, on_missing_entity="error")
    skipped = read_relations(path, on_missing_entity="error", on_bad_line="skip")
    assert skipped.texts == ["Bo lives in Rome"] and skipped.report.skipped == {"entity not in text": 1}
    with pytest.raises(ValueError, match=r"on_missing_entity must be one of 'count', 'skip', 'error'; got 'drop'"):
        read_relations(path, on_missing_entity="drop")
    with pytest.raises(
        ValueError, match=r"layout must be one of 'lic2019', 'duie2', 'casrel', 'spert', 'custom'; got 'nyt'"
    ):
        read_relations(path, layout="nyt")


def test_relations_max_examples_and_schema_list(tmp_path):
    path = write(tmp_path, "r.jsonl", jsonl(*[lic_record(f"a{i} p b", (f"a{i}", "p", "b")) for i in range(5)]))
    data = read_relations(path, schema=["p", "q"], max_examples=3)
    assert len(data) == 3 and data.predicates == ["p", "q"]
    with pytest.raises(DataError, match=re.escape("predicate 'p' is not in the schema <schema>")):
        read_relations(path, schema=["q"])


# ============================================================================ reading through a config


def test_read_split_from_configs(tmp_path):
    write(tmp_path, "train.tsv", "good stuff\t0,1\nbad\t1\n")
    write(tmp_path, "dev.tsv", "meh\t0\n")
    write(tmp_path, "labels.txt", "pos\nneg\n")
    config_path = write(
        tmp_path,
        "c.yaml",
        "task: multilabel_classification\ndata: {train: train.tsv, dev: dev.tsv, label_names: labels.txt}\n",
    )
    config = load_config(config_path)
    train = read_split(config.data, "train")
    assert train.labels == [["pos", "neg"], ["neg"]]
    assert read_split(config.data, "dev").texts == ["meh"]
    with pytest.raises(ValueError, match=r"the data section has no 'test' file"):
        read_split(config.data, "test")
    with pytest.raises(ValueError, match=r"split must be 'train', 'dev' or 'test'; got 'val'"):
        read_split(config.data, "val")

    write(tmp_path, "r.jsonl", jsonl(lic_record("Ann works at Acme", ("Ann", "works_for", "Acme"))))
    write(tmp_path, "schema.txt", "works_for\n")
    config = load_config(
        write(
            tmp_path, "r.yaml", "task: relation_extraction\ndata: {train: r.jsonl, dev: r.jsonl, schema: schema.txt}\n"
        )
    )
    assert read_split(config.data, "dev").triples == [[("Ann", "works_for", "Acme")]]


# ============================================================================ held-out dev (dev_fraction)


def test_split_off_is_seeded_disjoint_and_keeps_lines(tmp_path):
    records = [{"text": f"doc {i}", "labels": [f"l{i % 3}"]} for i in range(50)]
    records[10] = {"text": " ", "labels": ["l0"]}  # line 11: skipped, counted once
    path = write(tmp_path, "train.jsonl", jsonl(*records))
    data = read_multilabel(path, on_bad_line="skip")
    train, dev = split_off(data, 0.2, seed=7)
    assert (len(train), len(dev)) == (39, 10)  # round(0.2 * 49)
    assert sorted(train.lines + dev.lines) == data.lines and not set(train.lines) & set(dev.lines)
    for part in (train, dev):
        assert part.lines == sorted(part.lines) and part.path == data.path
        for text, labels, line in zip(part.texts, part.labels, part.lines):
            assert text == records[line - 1]["text"] and labels == records[line - 1]["labels"]
    assert train.report is data.report and train.report.num_skipped == 1
    assert not dev.report and dev.report.path == str(path)
    again_train, again_dev = split_off(read_multilabel(path, on_bad_line="skip"), 0.2, seed=7)
    assert (again_train.lines, again_dev.lines) == (train.lines, dev.lines)
    assert split_off(data, 0.2, seed=8)[1].lines != dev.lines


def test_split_off_depends_on_lines_not_on_neighbours():
    data = MultilabelDataset(
        "t.jsonl", texts=[f"t{i}" for i in range(100)], labels=[["a"]] * 100, lines=list(range(1, 101))
    )
    _, dev = split_off(data, 0.1, seed=0)
    # The same lines with one example missing: dev changes only at the cut.
    fewer = MultilabelDataset("t.jsonl", texts=data.texts[1:], labels=data.labels[1:], lines=data.lines[1:])
    _, fewer_dev = split_off(fewer, 0.1, seed=0)
    assert len(set(dev.lines) ^ set(fewer_dev.lines)) <= 2
    # Without line numbers, positions are used.
    unnumbered = MultilabelDataset("m", texts=data.texts, labels=data.labels)
    train, dev = split_off(unnumbered, 0.1, seed=0)
    assert (len(train), len(dev), train.lines, dev.lines) == (90, 10, [], [])


def test_split_off_sizes_and_errors():
    two = MultilabelDataset("t.jsonl", texts=["a", "b"], labels=[["x"], ["y"]], lines=[1, 2])
    assert [len(part) for part in split_off(two, 0.01, seed=0)] == [1, 1]  # at least one each side
    assert [len(part) for part in split_off(two, 0.99, seed=0)] == [1, 1]
    one = MultilabelDataset("t.jsonl", texts=["a"], labels=[["x"]], lines=[3])
    with pytest.raises(
        DataError,
        match=r"^t\.jsonl: cannot hold out a dev split from 1 example; "
        r"need at least 2$",
    ):
        split_off(one, 0.1, seed=0)
    for fraction in (0, 1, -0.5, "0.1", True, None):
        with pytest.raises(ValueError, match=r"fraction must be a number between 0 and 1"):
            split_off(two, fraction, seed=0)
    with pytest.raises(ValueError, match=r"seed must be an integer; got '1'"):
        split_off(two, 0.5, seed="1")


def test_dev_fraction_through_a_config(tmp_path):
    from toolkit.classification.pipeline import ClassificationPipeline

    def read_data(config, log):
        return ClassificationPipeline(config, log=log).read_data()

    write(tmp_path, "train.tsv", "".join(f"text {i}\t{i % 2}\n" for i in range(20)) + "\t0\n")
    write(tmp_path, "labels.txt", "pos\nneg\n")
    config = load_config(
        write(
            tmp_path,
            "c.yaml",
            "task: multilabel_classification\n"
            "data: {train: train.tsv, dev_fraction: 0.25, label_names: labels.txt, "
            "on_bad_line: skip}\ntraining: {seed: 3}\n",
        )
    )
    with pytest.raises(ValueError, match=r"no 'dev' file: dev is held out of train \(dev_fraction 0\.25\)"):
        read_split(config.data, "dev")
    messages = []
    data = read_data(config, log=messages.append)
    assert (len(data.train), len(data.dev), data.test) == (15, 5, None)
    assert "dev: 5 examples held out of train (dev_fraction 0.25, seed 3); train keeps 15 examples" in messages
    assert data.label_names == ["pos", "neg"] and data.train.report.num_skipped == 1
    assert all(data.dev.texts[i] == f"text {line - 1}" for i, line in enumerate(data.dev.lines))
    assert read_data(config, log=messages.append).dev.lines == data.dev.lines
    other_seed = load_config(tmp_path / "c.yaml", overrides=["training.seed=4"])
    assert read_data(other_seed, log=messages.append).dev.lines != data.dev.lines


def test_dev_fraction_for_relations(tmp_path):
    from toolkit.relations.pipeline import RelationPipeline

    def read_data(config, log):
        return RelationPipeline(config, log=log).read_data()

    write(tmp_path, "all_50_schemas", LIC_SCHEMA)
    records = [lic_record(f"张{i}祖籍北京", (f"张{i}", "祖籍", "北京")) for i in range(11)]
    write(tmp_path, "train.json", jsonl(*records))
    config = load_config(
        write(
            tmp_path,
            "r.yaml",
            "task: relation_extraction\n"
            "data: {train: train.json, dev_fraction: 0.2, schema: all_50_schemas}\n"
            "training: {seed: 5}\n",
        )
    )
    messages = []
    data = read_data(config, log=messages.append)
    assert (len(data.train), len(data.dev), data.test) == (9, 2, None)
    assert (
        "dev: 2 sentences, 2 triples held out of train (dev_fraction 0.2, seed 5); "
        "train keeps 9 sentences, 9 triples" in messages
    )
    assert sorted(data.train.lines + data.dev.lines) == list(range(1, 12))
    # Texts, triples and line numbers stay together; the predicates are the schema's.
    for part in (data.train, data.dev):
        assert all(part.texts[i] == f"张{line - 1}祖籍北京" for i, line in enumerate(part.lines))
        assert all(triples == [(text[:-4], "祖籍", "北京")] for text, triples in zip(part.texts, part.triples))
        assert part.predicates == ["祖籍", "父亲"]
    assert read_data(config, log=messages.append).dev.lines == data.dev.lines
    with pytest.raises(ValueError, match=r"no 'dev' file: dev is held out of train \(dev_fraction 0\.2\)"):
        read_split(config.data, "dev")
    with pytest.raises(ConfigError) as excinfo:
        load_config(tmp_path / "r.yaml", overrides=["data.dev=train.json"])
    assert (
        "data.dev_fraction: give dev (a file) or dev_fraction (0.2, a share of train held out as dev), "
        "not both" in str(excinfo.value)
    )
    with pytest.raises(ConfigError, match=r"data\.dev: required key is missing; give a dev file, or dev_fraction"):
        load_config(tmp_path / "r.yaml", overrides=["data.dev_fraction=null"])


# ============================================================================ the real shared data


def test_reuters_r90():
    folder = shared("mlc/reuters_r90")
    config = load_config(
        None,
        base={
            "task": "multilabel_classification",
            "data": {
                "train": str(folder / "train.jsonl"),
                "dev": str(folder / "train.jsonl"),
                "label_names": str(folder / "labels.txt"),
                "on_bad_line": "skip",
            },
        },
    )
    data = read_split(config.data, "train")
    # 47 documents of the file have an empty text: counted, not fatal, in skip mode.
    assert len(data) == 7770 - 47 and data.report.skipped == {"empty text": 47}
    assert data.labels[0] == ["cocoa"]
    vocabulary = build_label_vocabulary([data], label_names=config.data.label_names)
    assert len(vocabulary) == 90
    assert to_multi_hot(data, vocabulary).sum(axis=0).min() >= 1
    with pytest.raises(DataError, match=re.escape(f"{folder / 'train.jsonl'}:62: empty text in field 'text'")):
        read_multilabel(folder / "train.jsonl")


def test_reuters_r90_dev_fraction():
    folder = shared("mlc/reuters_r90")
    data = read_multilabel(folder / "train.jsonl", on_bad_line="skip")
    train, dev = split_off(data, 0.1, seed=42)
    assert (len(train), len(dev)) == (7723 - 772, 772)
    assert split_off(data, 0.1, seed=42)[1].lines == dev.lines


def test_goemotions():
    folder = shared("mlc/goemotions")
    data = read_multilabel(
        folder / "train.tsv", text_field=0, labels_field=1, label_separator=",", label_names=folder / "labels.txt"
    )
    assert len(data) == 43410 and not data.report
    vocabulary = build_label_vocabulary([data], label_names=folder / "labels.txt")
    assert len(vocabulary) == 28 and vocabulary[-1] == "neutral"
    assert data.labels[0] == ["neutral"]
    dev = read_multilabel(folder / "dev.tsv", label_names=folder / "labels.txt")
    assert len(dev) == 5426


def test_lic2019_sample():
    folder = shared("re/lic2019_sample")
    schema = read_schema(folder / "all_50_schemas")
    assert len(schema) == 49  # 50 lines; one predicate is listed for two type pairs
    data = read_relations(folder / "train_data.json", layout="lic2019", schema=folder / "all_50_schemas")
    assert len(data) == 2601 and data.report.num_skipped == 0
    assert data.report.warnings["entity not in text"] == 10
    assert read_relations(folder / "dev_data.json", schema=schema).predicates == schema


@pytest.mark.parametrize("name, relations", [("webnlg_star", 171), ("webnlg", 216)])
def test_webnlg(name, relations):
    folder = shared(f"re/{name}")
    schema = read_schema(folder / "rel2id.json")
    assert len(schema) == relations
    data = read_relations(folder / "train_triples.json", layout="casrel", schema=schema)
    assert len(data) == 5019 and not data.report
    assert data.lines[:2] == [2, 17] if name == "webnlg_star" else data.lines[0] == 2
    assert len(read_relations(folder / "val_triples.json", layout="casrel", schema=schema)) == 500


# ============================================================================ properties

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
_records = st.dictionaries(
    st.sampled_from(["text", "labels", "spo_list", "triple_list", "other"]),
    _json_values | st.lists(st.lists(st.text(max_size=4), max_size=4), max_size=3),
    max_size=4,
)
_PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_or_data_error(reader, content: bytes, suffix: str, **kwargs):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        try:
            result = reader(path, **kwargs)
        except DataError as error:
            assert str(error).startswith(str(path))
            return None
        assert len(result) >= 1
        return result


@_PROPERTY
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".csv", ".tsv"]), skip=st.booleans())
def test_multilabel_reader_on_arbitrary_bytes(content, suffix, skip):
    _read_or_data_error(read_multilabel, content, suffix, on_bad_line="skip" if skip else "error")


@_PROPERTY
@given(
    lines=st.lists(_records | _json_values, max_size=5), skip=st.booleans(), names=st.none() | st.just(["a", "b", "1"])
)
def test_multilabel_reader_on_arbitrary_records(lines, skip, names):
    content = "\n".join(json.dumps(line) for line in lines).encode()
    data = _read_or_data_error(
        read_multilabel, content, ".jsonl", label_names=names, on_bad_line="skip" if skip else "error"
    )
    if data is not None:
        assert all(isinstance(t, str) and t.strip() for t in data.texts)
        assert all(isinstance(label, str) for labels in data.labels for label in labels)


@_PROPERTY
@given(rows=st.lists(st.lists(st.text(max_size=10), max_size=4), max_size=5), delimiter=st.sampled_from([",", "\t"]))
def test_table_reader_on_arbitrary_text(rows, delimiter):
    content = "\n".join(delimiter.join(row) for row in rows).encode("utf-8")
    suffix = ".csv" if delimiter == "," else ".tsv"
    _read_or_data_error(read_multilabel, content, suffix, on_bad_line="skip")
    _read_or_data_error(read_multilabel, content, suffix, label_names=["x", "y"])


@_PROPERTY
@given(
    records=st.lists(_records | _json_values, max_size=5),
    as_array=st.booleans(),
    layout=st.sampled_from(["lic2019", "casrel"]),
    skip=st.booleans(),
    missing=st.sampled_from(["count", "error"]),
)
def test_relation_reader_on_arbitrary_records(records, as_array, layout, skip, missing):
    if as_array:
        content = json.dumps(records, indent=1).encode()
    else:
        content = "\n".join(json.dumps(record) for record in records).encode()
    data = _read_or_data_error(
        read_relations,
        content,
        ".json",
        layout=layout,
        schema=None,
        on_bad_line="skip" if skip else "error",
        on_missing_entity=missing,
    )
    if data is not None:
        assert all(len(triple) == 3 for triples in data.triples for triple in triples)


@_PROPERTY
@given(content=st.binary(max_size=300))
def test_relation_reader_and_schema_on_arbitrary_bytes(content):
    _read_or_data_error(read_relations, content, ".json", on_bad_line="skip")
    _read_or_data_error(read_schema, content, ".json")


def test_docstring_examples_run():
    import doctest

    import toolkit.data.multilabel
    import toolkit.data.relations

    result = doctest.testmod(toolkit.data.multilabel)
    assert result.failed == 0 and result.attempted >= 3
    result = doctest.testmod(toolkit.data.relations)
    assert result.failed == 0 and result.attempted >= 1


# ============================================================================ data.max_examples: a seeded sample


def _label_sorted_config(tmp_path, dev="dev: dev.tsv"):
    """A TSV of 650 examples sorted by label (65 labels, 10 each) and a config reading it."""
    rows = [f"text {label} {i}\tl{label:02d}\n" for label in range(65) for i in range(10)]
    write(tmp_path, "train.tsv", "".join(rows))
    write(tmp_path, "dev.tsv", "".join(rows[::7]))
    keys = ", ".join(["train: train.tsv", dev, "max_examples: 100"])
    return write(tmp_path, "c.yaml", f"task: multilabel_classification\ndata: {{{keys}}}\ntraining: {{seed: 42}}\n")


def _read_data(config, log=lambda message: None):
    from toolkit.classification.pipeline import ClassificationPipeline

    return ClassificationPipeline(config, log=log).read_data()


def test_max_examples_is_a_seeded_sample_from_all_over_the_file(tmp_path):
    path = _label_sorted_config(tmp_path)
    messages = []
    data = _read_data(load_config(path), log=messages.append)
    assert len(data.train) == 100 and len(data.dev) == 93  # dev has 93 examples: not cut
    assert "train: 100 of 650 examples sampled (data.max_examples 100, seed 42)" in messages
    # The first 100 lines hold 10 labels; a sample holds most of the 65.
    assert len({label for labels in data.train.labels for label in labels}) > 40
    assert data.train.lines == sorted(data.train.lines) and data.train.lines != list(range(1, 101))
    for text, labels, line in zip(data.train.texts, data.train.labels, data.train.lines):
        assert text == f"text {(line - 1) // 10} {(line - 1) % 10}" and labels == [f"l{(line - 1) // 10:02d}"]
    # The same sample on every read; another seed, another sample.
    assert _read_data(load_config(path)).train.lines == data.train.lines
    other = _read_data(load_config(path, overrides=["training.seed=7"]))
    assert len(other.train) == 100 and other.train.lines != data.train.lines


def test_max_examples_then_dev_fraction_splits_the_sample(tmp_path):
    path = _label_sorted_config(tmp_path, dev="dev_fraction: 0.2")
    messages = []
    data = _read_data(load_config(path), log=messages.append)
    assert (len(data.train), len(data.dev)) == (80, 20)
    assert "train: 100 of 650 examples sampled (data.max_examples 100, seed 42)" in messages
    full = _read_data(load_config(path, overrides=["data.max_examples=null"]))
    sampled = set(data.train.lines) | set(data.dev.lines)
    assert len(sampled) == 100 and sampled <= set(full.train.lines) | set(full.dev.lines)
    # The sample is not drawn from the examples a full run holds out as dev.
    assert len(sampled & set(full.dev.lines)) < 50


def test_read_multilabel_split_reads_the_whole_file_and_sample_works_on_any_dataset(tmp_path):
    from toolkit.data.multilabel import read_multilabel_split
    from toolkit.data.relations import RelationDataset
    from toolkit.data.splits import sample

    config = load_config(_label_sorted_config(tmp_path))
    assert len(read_multilabel_split(config.data, "train")) == 650
    relations = RelationDataset(
        "r.json",
        texts=[f"s{i}" for i in range(30)],
        triples=[[(f"s{i}", "p", "o")] for i in range(30)],
        lines=list(range(1, 31)),
    )
    kept = sample(relations, 5, seed=1)
    assert len(kept) == 5 and kept.lines == sorted(kept.lines)
    assert all(triples == [(text, "p", "o")] for text, triples in zip(kept.texts, kept.triples))
    assert sample(relations, 30, seed=1) is relations  # nothing to cut
    assert sample(relations, 5, seed=1).lines == kept.lines and sample(relations, 5, seed=2).lines != kept.lines
    with pytest.raises(ValueError, match="size must be a positive integer; got 0"):
        sample(relations, 0, seed=1)


@pytest.mark.parametrize("missing", ["dev", "test"])
def test_a_missing_dev_or_test_file_is_told_before_train_is_read(tmp_path, missing, monkeypatch):
    from toolkit.data import read_splits

    (tmp_path / "train.jsonl").write_text('{"text": "a", "labels": ["x"]}\n', encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text('{"text": "b", "labels": ["x"]}\n', encoding="utf-8")
    overrides = [f"data.train={tmp_path / 'train.jsonl'}", f"data.dev={tmp_path / 'dev.jsonl'}"]
    overrides.append(f"data.{missing}={tmp_path / 'nowhere.jsonl'}")
    config = load_config(None, base={"task": "multilabel_classification"}, overrides=overrides)
    read = []
    monkeypatch.setattr(type(config.data), "read", lambda self, split: read.append(split))
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nowhere.jsonl'}: file not found (data.{missing})")):
        read_splits(config.data, seed=0)
    assert read == []
