"""`predict` reads what training read (toolkit.streaming): the run's format, header and text
field; one output line per input line or record, blank ones included; the other fields carried."""

import json

import pytest

from toolkit.config import default_config
from toolkit.data import DataError
from toolkit.streaming import PredictionInput, iter_records, iter_texts, stream_predictions

CSV_RUN = PredictionInput(format="csv", text_field="review", header=True, blank={"labels": [], "scores": {}})


def fake_records(texts):
    """One record per text, as a classification run writes them, without a model."""
    return [{"text": text, "labels": ["long"] if len(text) > 12 else [], "scores": {}} for text in texts]


def predict(tmp_path, name, content, layout=None, **options):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8", newline="")
    output = tmp_path / (name + ".out.jsonl")
    count = stream_predictions(source, output, fake_records, layout=layout, **options)
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert count == len(lines)
    return lines


def test_a_csv_with_a_header_and_an_id_gives_one_line_per_row_with_the_id_and_no_header(tmp_path):
    content = (
        "id,review,tags\n"
        '7,"Great sound, poor battery",audio|battery\n'
        "8,cheap,price\n"
        "\n"
        '9,"a review that spans\ntwo lines",audio\n'
        "10,,price\n"
    )
    lines = predict(tmp_path, "reviews.csv", content, CSV_RUN, chunk_size=2)
    assert [line["text"] for line in lines] == [
        "Great sound, poor battery",
        "cheap",
        "",
        "a review that spans\ntwo lines",
        "",
    ]
    assert [line.get("id") for line in lines] == ["7", "8", None, "9", "10"]
    assert lines[0] == {
        "text": "Great sound, poor battery",
        "labels": ["long"],
        "scores": {},
        "id": "7",
        "tags": "audio|battery",
    }
    assert lines[2] == {"text": "", "labels": [], "scores": {}}  # the blank line: nothing predicted
    assert lines[4] == {"text": "", "labels": [], "scores": {}, "id": "10", "tags": "price"}  # a blank text


def test_a_jsonl_input_with_a_blank_line_in_the_middle_stays_aligned(tmp_path):
    layout = PredictionInput(format="jsonl", text_field="body.text", blank={"labels": [], "scores": {}})
    content = (
        json.dumps({"id": 1, "body": {"text": "the first text of all"}, "labels": ["gold"]})
        + "\n\n"
        + json.dumps({"id": 2, "body": {"text": "second"}})
        + "\n"
    )
    lines = predict(tmp_path, "in.jsonl", content, layout, chunk_size=1)
    assert lines == [
        {"text": "the first text of all", "labels": ["long"], "scores": {}, "id": 1, "input_labels": ["gold"]},
        {"text": "", "labels": [], "scores": {}},
        {"text": "second", "labels": [], "scores": {}, "id": 2},
    ]
    # A JSON lines file of the run's format is JSON throughout.
    with pytest.raises(DataError, match=r"in\.jsonl:2: invalid JSON"):
        predict(tmp_path, "in.jsonl", '{"body": {"text": "a"}}\nplain text\n', layout)


def test_a_txt_input_is_one_text_a_line_with_blank_lines_aligned(tmp_path):
    content = "first line of text\n\n   \nlast\n\n"
    lines = predict(tmp_path, "notes.txt", content, CSV_RUN, chunk_size=2)
    assert [line["text"] for line in lines] == ["first line of text", "", "   ", "last", ""]
    assert [line["labels"] for line in lines] == [["long"], [], [], [], []]
    # The default layout (line by line) reads JSON objects among plain lines.
    lines = predict(tmp_path, "mixed.txt", '{"text": "a json text here", "id": 3}\nplain\n\n')
    assert lines == [
        {"text": "a json text here", "labels": ["long"], "scores": {}, "id": 3},
        {"text": "plain", "labels": [], "scores": {}},
        {"text": ""},
    ]


def test_the_layout_for_each_kind_of_file():
    assert CSV_RUN.for_file("more.csv") == CSV_RUN
    assert CSV_RUN.for_file("MORE.CSV").text_field == "review"
    tsv = CSV_RUN.for_file("more.tsv")
    assert (tsv.format, tsv.header, tsv.text_field) == ("tsv", False, 0)
    jsonl = CSV_RUN.for_file("more.jsonl")
    assert (jsonl.format, jsonl.text_field) == ("jsonl", "text")
    plain = PredictionInput(format="jsonl", text_field="body").for_file("more.txt")
    assert (plain.format, plain.text_field) == (None, "body")
    assert PredictionInput(format="tsv", text_field=0).for_file("x.txt").text_field == "text"
    assert PredictionInput().for_file("x.csv").format is None  # no run format: line by line


def test_headerless_tsv_carries_the_other_columns_by_number(tmp_path):
    layout = PredictionInput(format="tsv", text_field=0, header=False)
    lines = predict(tmp_path, "in.tsv", "so happy today\t3,27\teebbqej\n\nmeh\t4\tx\n", layout)
    assert lines == [
        {"text": "so happy today", "labels": ["long"], "scores": {}, "column_1": "3,27", "column_2": "eebbqej"},
        {"text": ""},
        {"text": "meh", "labels": [], "scores": {}, "column_1": "4", "column_2": "x"},
    ]


def test_bad_records_name_the_line_and_keep_what_came_before(tmp_path):
    output = tmp_path / "in.csv.out.jsonl"
    output.write_text("old\n", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        predict(tmp_path, "in.csv", 'review,id\nfine text,1\n\n"broken,2\n', CSV_RUN, chunk_size=1)
    assert str(raised.value).startswith(f"{tmp_path / 'in.csv'}:4: malformed CSV")
    assert f"(the 2 prediction(s) before it are in {output}.partial; {output} was not changed)" in str(raised.value)
    assert output.read_text(encoding="utf-8") == "old\n"
    kept = [json.loads(line) for line in (tmp_path / "in.csv.out.jsonl.partial").read_text().splitlines()]
    assert [line["text"] for line in kept] == ["fine text", ""]
    with pytest.raises(DataError, match=r"in\.csv:1: no column 'review' in the header \(columns: 'text', 'id'\)"):
        predict(tmp_path, "in.csv", "text,id\na,1\n", CSV_RUN)
    with pytest.raises(
        DataError, match=r"in\.txt:2: expected an object with a string field 'text'; did you mean 'txt'\?"
    ):
        predict(tmp_path, "in.txt", 'first\n{"txt": "x"}\n')


def test_iter_records_and_iter_texts(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text('one\n\n{"text": "two", "id": 5}\n', encoding="utf-8")
    assert list(iter_records(path)) == [(1, "one", {}), (2, "", {}), (3, "two", {"id": 5})]
    assert list(iter_texts(path)) == [(1, "one"), (3, "two")]


def test_the_default_reads_a_relation_runs_text_field(tmp_path):
    from toolkit.classification.pipeline import ClassificationPipeline
    from toolkit.pipeline import Pipeline
    from toolkit.relations.pipeline import RelationPipeline

    config = default_config("relation_extraction", tmp_path)
    relations = RelationPipeline(config, log=lambda message: None)
    layout = relations.prediction_input()
    assert (layout.format, layout.text_field, dict(layout.blank)) == (None, "text", {"spo_list": []})
    custom = default_config(
        "relation_extraction",
        tmp_path,
        overrides=["data.layout=custom", "data.text_field=body", "data.triples_field=t"],
    )
    assert RelationPipeline(custom, log=lambda message: None).prediction_input().text_field == "body"
    base = Pipeline.prediction_input(RelationPipeline(custom, log=lambda message: None))
    assert (base.format, base.text_field, dict(base.blank)) == (None, "body", {})
    classification = ClassificationPipeline(
        default_config("multilabel_classification", tmp_path, overrides=["data.text_field=body"]),
        log=lambda message: None,
    ).prediction_input()
    assert (classification.format, classification.text_field, classification.header) == ("jsonl", "body", None)
    assert dict(classification.blank) == {"labels": [], "scores": {}}
