"""What a run says about its data before the first epoch (toolkit.data.summary), and the
warnings about likely mistakes: each names the config key to check; `data.on_warning: error` stops."""

import csv
import io
import json
import random

import pytest

from tests.conftest import TINY_ENCODER
from toolkit.config import default_config, load_config
from toolkit.data import DataError
from toolkit.data.summary import (
    DataWarning,
    SplitData,
    check_warnings,
    data_summary,
    data_warnings,
    maxlen_warning,
    separator_warning,
    summary_lines,
    swapped_fields_warning,
    unseen_labels_warnings,
)

TOPICS = ["sports", "politics", "economy", "science", "health", "travel"]


def write_csv(path, rows, header=("text", "labels")):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def news_rows(count, offset=0, join="|"):
    """CSV rows of short news texts, each with one to three topics joined by `join` (seeded by its number)."""
    rows = []
    for i in range(offset, offset + count):
        topics = random.Random(i).sample(TOPICS, 1 + i % 3)
        rows.append([f"story {i}: the {' and '.join(topics)} desk reports on today's events", join.join(topics)])
    return rows


def config_for(tmp_path, **data):
    lines = ["task: multilabel_classification", "data:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in data.items()]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def describe(config):
    """`(summary, warnings)` of a config's data, without a tokenizer (so no maxlen check)."""
    from toolkit.classification.pipeline import ClassificationPipeline

    pipeline = ClassificationPipeline(config, log=lambda message: None)
    return pipeline.describe_data(pipeline.read_data())


def codes(warnings):
    return [warning.code for warning in warnings]


# ----------------------------------------------------------------------------- the warnings, from real files


def test_pipe_joined_labels_read_with_the_default_separator_warn_naming_the_key(tmp_path):
    write_csv(tmp_path / "train.csv", news_rows(40))
    write_csv(tmp_path / "dev.csv", news_rows(10, offset=40))
    config = config_for(tmp_path, train="train.csv", dev="dev.csv")
    assert config.data.label_separator == ","
    summary, warnings = describe(config)
    # Joined labels also leave dev labels unseen in train; they do not make the fields look swapped.
    assert codes(warnings)[0] == "label_separator" and "swapped_fields" not in codes(warnings)
    warning = warnings[0]
    assert warning.key == "data.label_separator"
    assert 'labels look joined with "|"' in warning.message
    assert 'data.label_separator is ","' in warning.message and 'set data.label_separator: "|"' in warning.message
    assert summary["warnings"] == [warning.to_dict() for warning in warnings]
    # Read that way, "sports|politics" is one label: many more labels than topics.
    assert summary["labels"]["count"] > len(TOPICS)


def test_the_same_file_with_its_separator_set_has_no_warning(tmp_path):
    write_csv(tmp_path / "train.csv", news_rows(40))
    write_csv(tmp_path / "dev.csv", news_rows(10, offset=40))
    config = config_for(tmp_path, train="train.csv", dev="dev.csv", label_separator="|")
    summary, warnings = describe(config)
    assert warnings == [] and summary["warnings"] == []
    assert summary["labels"]["count"] == len(TOPICS)
    assert summary["splits"]["train"]["labels_per_example"]["max"] == 3


def test_json_lists_whose_items_join_labels_say_to_split_the_items(tmp_path):
    lines = [json.dumps({"text": text, "labels": [labels]}) for text, labels in news_rows(30)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = config_for(tmp_path, train="train.jsonl", dev_fraction=0.2)
    (warning,) = [warning for warning in describe(config)[1] if warning.code == "label_separator"]
    assert warning.key == "data.labels_field" and "write each label as its own list item" in warning.message


# Event types as DuEE names them: a category, "/", a subtype. No part is a label of its own.
EVENT_TYPES = [
    "灾害/意外-地震",
    "灾害/意外-起火",
    "灾害/意外-车祸",
    "财经/交易-上市",
    "财经/交易-融资",
    "竞赛行为-夺冠",
]


def event_rows(count):
    """CSV rows of short Chinese news with one or two event types, joined by the default ","."""
    rows = []
    for i in range(count):
        types = random.Random(i).sample(EVENT_TYPES, 1 + i % 2)
        rows.append([f"新闻{i}：今日{'和'.join(name.split('-')[-1] for name in types)}的报道", ",".join(types)])
    return rows


def test_hierarchical_label_names_are_not_taken_for_joined_labels(tmp_path):
    write_csv(tmp_path / "train.csv", event_rows(40))
    write_csv(tmp_path / "dev.csv", event_rows(12)[2:])
    summary, warnings = describe(config_for(tmp_path, train="train.csv", dev="dev.csv"))
    assert "label_separator" not in codes(warnings)
    assert summary["labels"]["count"] == len(EVENT_TYPES)  # read whole, as they should be
    lines = [json.dumps({"text": text, "labels": labels.split(",")}) for text, labels in event_rows(30)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, warnings = describe(config_for(tmp_path, train="train.jsonl", dev_fraction=0.2))
    assert "label_separator" not in codes(warnings)


def test_swapped_text_and_label_columns_warn(tmp_path):
    rows = [[labels, text] for text, labels in news_rows(40)]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "dev.csv", [[labels, text] for text, labels in news_rows(10, offset=40)])
    config = config_for(tmp_path, train="train.csv", dev="dev.csv", label_separator="|")
    _, warnings = describe(config)
    (swapped,) = [warning for warning in warnings if warning.code == "swapped_fields"]
    assert swapped.key == "data.text_field, data.labels_field"
    assert "40 distinct labels for 40 examples" in swapped.message
    assert "labels longer than the texts" in swapped.message and "swapped?" in swapped.message


def test_dev_and_test_labels_never_seen_in_train_warn_with_count_and_names(tmp_path):
    write_csv(tmp_path / "train.csv", news_rows(30))
    write_csv(tmp_path / "dev.csv", [*news_rows(5, offset=30), ["the weather desk reports rain", "weather"]])
    write_csv(tmp_path / "test.csv", [["a story about art and music", "art|music"], *news_rows(3, offset=40)])
    config = config_for(tmp_path, train="train.csv", dev="dev.csv", test="test.csv", label_separator="|")
    _, warnings = describe(config)
    assert codes(warnings) == ["unseen_labels", "unseen_labels"]
    dev, test = warnings
    assert dev.key == "data.dev" and "1 label of dev never occur in train ('weather'; in 1 of 6 dev examples)" in (
        dev.message
    )
    assert test.key == "data.test" and "2 labels of test never occur in train ('art', 'music'" in test.message


def test_maxlen_cutting_more_than_5_percent_warns(tmp_path):
    write_csv(tmp_path / "train.csv", news_rows(40))
    write_csv(tmp_path / "dev.csv", news_rows(10, offset=40))
    config = config_for(tmp_path, train="train.csv", dev="dev.csv", label_separator="|")
    from toolkit.classification.pipeline import ClassificationPipeline

    pipeline = ClassificationPipeline(config, log=lambda message: None)
    data = pipeline.read_data()
    maxlen = config.model.maxlen
    lengths = {"train": [20] * 37 + [maxlen + 1] * 3, "dev": [20] * 10}  # 7.5% of train cut
    summary, warnings = pipeline.describe_data(data, lengths)
    (warning,) = warnings
    assert (warning.code, warning.key) == ("maxlen_cut", "model.maxlen")
    assert f"model.maxlen {maxlen} cuts 3 of 40 train texts (7.5%)" in warning.message
    assert summary["splits"]["train"]["tokens"] == {
        "mean": 28.18,
        "median": 20,
        "min": 20,
        "max": maxlen + 1,
        "p95": maxlen + 1,
        "maxlen": maxlen,
        "cut": 3,
        "cut_share": 0.075,
    }
    assert summary["splits"]["dev"]["tokens"]["cut"] == 0
    # 2 of 40 (5%) is not more than 5%.
    assert pipeline.describe_data(data, {"train": [20] * 38 + [maxlen + 1] * 2})[1] == []


def test_on_warning_error_stops_before_the_first_epoch_listing_every_warning(tmp_path):
    from toolkit.classification.pipeline import ClassificationPipeline
    from toolkit.data.synthetic import write_multilabel_demo

    write_multilabel_demo(tmp_path / "demo", n_train=20, n_dev=10, n_test=10, seed=1)  # for its vocab.txt
    write_csv(tmp_path / "train.csv", news_rows(40))
    write_csv(tmp_path / "dev.csv", [*news_rows(10, offset=40), ["the weather desk reports rain", "weather"]])
    overrides = [
        *TINY_ENCODER,
        "model.maxlen=8",
        "training.epochs=1",
        f"data.train={tmp_path / 'train.csv'}",
        f"data.dev={tmp_path / 'dev.csv'}",
        "data.test=null",
        "data.label_names=null",
        "data.on_warning=error",
    ]
    config = default_config("multilabel_classification", tmp_path / "demo", tmp_path / "run", overrides=overrides)
    messages = []
    with pytest.raises(DataError) as raised:
        ClassificationPipeline(config, log=messages.append).train()
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'train.csv'}: 3 data warnings with data.on_warning: error: 1) ")
    for expected in ("(check data.label_separator)", "(check data.dev)", "(check model.maxlen)"):
        assert expected in message
    assert message.endswith("Fix them, or set data.on_warning: count to train anyway")
    assert "\n" not in message
    # The summary and the warnings were logged; the run folder this start made is gone again.
    assert any(line.startswith("data: ") for line in messages)
    assert sum(line.startswith("data warning: ") for line in messages) == 3
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- the functions


def test_data_summary_counts_and_rows():
    train = SplitData(
        ["first text", "second, longer text", "third"],
        [["a"], ["a", "b"], []],
        token_lengths=[4, 6, 3],
        lines=[2, 3, 5],
        path="train.csv",
    )
    dev = SplitData(["x y"], [["b"]], token_lengths=[9], lines=[2])
    summary = data_summary(
        {"train": train, "dev": dev, "test": None}, label_names=["a", "b", "c"], maxlen=5, extra={"seed": 1}
    )
    assert summary["seed"] == 1
    assert summary["labels"] == {
        "count": 3,
        "most_frequent": [["a", 2], ["b", 1], ["c", 0]],
        "least_frequent": [["c", 0], ["b", 1], ["a", 2]],
        "unseen_in_train": 1,
    }
    split = summary["splits"]["train"]
    assert split["examples"] == 3 and split["path"] == "train.csv"
    assert split["labels_per_example"] == {
        "mean": 1.0,
        "median": 1,
        "min": 0,
        "max": 2,
        "histogram": {"0": 1, "1": 1, "2": 1},
    }
    assert split["tokens"]["cut"] == 1 and split["tokens"]["cut_share"] == 0.3333
    assert split["rows"] == [
        {"line": 2, "text": "first text", "labels": ["a"]},
        {"line": 3, "text": "second, longer text", "labels": ["a", "b"]},
    ]
    assert summary["splits"]["dev"]["tokens"]["cut"] == 1 and list(summary["splits"]) == ["train", "dev"]
    lines = summary_lines(summary)
    assert lines[0] == "data: 3 labels; train 3 examples, dev 1"
    assert "model.maxlen 5 cuts 1 train text (33%), 1 dev (100%)" in lines[2]
    assert lines[3] == "train line 2: 'first text' -> a"
    json.dumps(summary)  # JSON-ready as it is


def test_long_texts_are_shortened_in_rows_and_histogram_caps():
    summary = data_summary({"train": SplitData(["word " * 100], [[f"l{i}" for i in range(12)]])})
    row = summary["splits"]["train"]["rows"][0]
    assert len(row["text"]) <= 83 and row["text"].endswith("...") and "\n" not in row["text"]
    assert summary["splits"]["train"]["labels_per_example"]["histogram"]["10+"] == 1


def test_separator_check_needs_parts_that_are_labels_too():
    assert separator_warning([["Sci/Tech"], ["World"], ["Sports"]], ",") is None
    assert separator_warning([["a|b"], ["c|d"]], ",") is None  # no part repeats: no evidence
    assert separator_warning([["a|b"], ["b|c"]], ",").code == "label_separator"


def test_separator_check_tells_a_hierarchy_from_a_list_and_says_what_it_found():
    hierarchy = [["灾害/意外-地震"], ["灾害/意外-起火", "财经/交易-上市"], ["财经/交易-融资"], ["灾害/意外-起火"]]
    assert separator_warning(hierarchy, ",") is None  # a category repeats in its own place only
    assert separator_warning(hierarchy, None, in_lists=True) is None
    assert separator_warning([["Sports/Football"], ["Sports/Tennis"], ["News/Sports"]], ",").message == (
        "labels look joined with \"/\": 3 of 3 examples have a label holding it (e.g. 'News/Sports'), and "
        "'Sports' comes first in 'Sports/Tennis' but after it in 'News/Sports', as the items of a list do; "
        'data.label_separator is ",", so each is read as one label: set data.label_separator: "/"'
    )
    # A category that is a label as well: found, and said so.
    warning = separator_warning([*hierarchy, ["灾害"]], ",")
    assert "and '灾害' is a label of its own too;" in warning.message and "e.g. '灾害/意外-地震'" in warning.message
    joined = separator_warning([["a|b"], ["c"], ["b"], ["a|c"]], None)
    assert "'b', 'c' are labels of their own too" in joined.message
    assert separator_warning([["a;b"], ["a"]], None).message.endswith(
        'data.label_separator is unset, so each is read as one label: set data.label_separator: ";"'
    )
    assert separator_warning([["a|b"], ["a"]], "|") is None  # the separator in use is not suspect


def test_swapped_fields_needs_enough_examples_for_the_count_rule():
    texts = [f"text number {i}" for i in range(10)]
    assert swapped_fields_warning(texts, [[f"l{i}"] for i in range(10)]) is None  # fewer than 20 examples
    texts = [f"text number {i}" for i in range(40)]
    assert swapped_fields_warning(texts, [[f"l{i}"] for i in range(40)]).code == "swapped_fields"
    assert swapped_fields_warning(texts, [[f"l{i % 20}"] for i in range(40)]) is None  # 20 labels: not > 0.5 * 40


def test_unseen_labels_key_per_split_and_maxlen_share():
    warnings = unseen_labels_warnings([["a"]], {"dev": [["z"]], "test": None}, keys={"dev": "data.dev_fraction"})
    assert [warning.key for warning in warnings] == ["data.dev_fraction"]
    assert maxlen_warning({"train": [10] * 19 + [99]}, 32) is None  # 5% exactly
    assert maxlen_warning({"train": [10] * 18 + [99] * 2}, 32).code == "maxlen_cut"
    assert (
        data_warnings({"train": SplitData(["some text"] * 3, [["a"]] * 3, token_lengths=[50] * 3)}, maxlen=None) == []
    )


def test_check_warnings_counts_or_stops():
    warnings = [DataWarning("a", "first", "data.x"), DataWarning("b", "second", "data.y")]
    check_warnings(warnings, "count", "train.csv")
    check_warnings([], "error", "train.csv")
    with pytest.raises(
        DataError,
        match=r"^train\.csv: 2 data warnings with data\.on_warning: error: "
        r"1\) first \(check data\.x\); 2\) second \(check data\.y\)\. Fix them, or set "
        r"data\.on_warning: count to train anyway$",
    ):
        check_warnings(warnings, "error", "train.csv")
    with pytest.raises(ValueError, match="on_warning must be 'count' or 'error'"):
        check_warnings(warnings, "skip", "train.csv")


def test_on_warning_is_a_classification_data_key(tmp_path):
    from toolkit.config import ConfigError

    config = config_for(tmp_path, train="train.csv", dev="dev.csv")
    assert config.data.on_warning == "count"
    with pytest.raises(ConfigError, match=r"data\.on_warning: expected one of 'count' or 'error'"):
        load_config(tmp_path / "config.yaml", overrides=["data.on_warning=skip"])
    # The relation task has no such checks, so the key is not offered there (rather than ignored).
    with pytest.raises(ConfigError, match=r"data\.on_warning: unknown key"):
        default_config("relation_extraction", tmp_path, overrides=["data.on_warning=error"])


def test_docstring_examples_run():
    import doctest

    import toolkit.data.summary

    result = doctest.testmod(toolkit.data.summary)
    assert result.failed == 0 and result.attempted >= 10
