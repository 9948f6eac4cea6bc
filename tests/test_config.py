"""Tests for toolkit.config: loading, defaults, paths, overrides and every error message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from toolkit.config import (
    ConfigError,
    MultilabelConfig,
    RelationConfig,
    TaskConfig,
    default_config,
    load_config,
)
from toolkit.encoders.spec import EncoderSpec

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
task: multilabel_classification
data:
  train: data/train.jsonl
  dev: data/dev.jsonl
"""

RELATION = """\
task: relation_extraction
data:
  train: re/train.json
  dev: re/dev.json
  schema: re/all_50_schemas
"""


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(excinfo) -> list:
    return excinfo.value.problems


# ----------------------------------------------------------------------------- loading


def test_minimal_config_gets_defaults_and_absolute_paths(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert isinstance(config, MultilabelConfig) and isinstance(config, TaskConfig)
    assert config.data.train == str(tmp_path / "data" / "train.jsonl")
    assert config.data.format == "jsonl"
    assert (config.data.text_field, config.data.labels_field) == ("text", "labels")
    assert config.data.label_separator is None and config.data.header is None
    assert config.data.on_bad_line == "error"
    assert isinstance(config.model.encoder, EncoderSpec)
    assert config.model.maxlen == 128 and config.model.pooling == "cls"
    assert config.training.monitor == "val_micro_f1"
    assert config.training.mixed_precision is None and config.training.ema is None
    assert config.loss.name == "multilabel_categorical_crossentropy"
    assert config.output.dir == str(Path.cwd() / "runs" / "run")  # defaults: the working directory
    assert config.output.overwrite is False


def test_tsv_defaults_read_goemotions_layout(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
task: multilabel_classification
data: {train: g/train.tsv, dev: g/dev.tsv, label_names: g/labels.txt}
""",
        )
    )
    data = config.data
    assert (data.format, data.header, data.text_field, data.labels_field) == ("tsv", False, 0, 1)
    assert data.label_separator == ","
    assert data.label_names == str(tmp_path / "g" / "labels.txt")


def test_csv_defaults_to_header_and_named_columns(tmp_path):
    config = load_config(write(tmp_path, "task: multilabel_classification\ndata: {train: a.csv, dev: b.csv}\n"))
    assert (config.data.header, config.data.text_field, config.data.labels_field) == (True, "text", "labels")


def test_headerless_column_number_given_as_text_becomes_int(tmp_path):
    config = load_config(write(tmp_path, MINIMAL.replace("jsonl", "tsv")), overrides=["data.text_field='2'"])
    assert config.data.text_field == 2


def test_relation_config(tmp_path):
    config = load_config(write(tmp_path, RELATION))
    assert isinstance(config, RelationConfig)
    assert config.data.schema_path == str(tmp_path / "re" / "all_50_schemas")
    assert config.data.layout == "lic2019" and config.data.on_missing_entity == "count"
    assert config.to_dict()["data"]["schema"] == config.data.schema_path


def test_custom_relation_layout(tmp_path):
    config = load_config(
        write(
            tmp_path,
            RELATION
            + """\
  layout: custom
  triples_field: relations
  subject_key: head
  predicate_key: type
  object_key: tail
""",
        )
    )
    assert config.data.text_field == "text"
    assert (config.data.subject_key, config.data.object_key) == ("head", "tail")


def test_paths_absolute_home_and_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(
        write(
            tmp_path,
            """\
task: multilabel_classification
data: {train: /abs/train.jsonl, dev: ~/dev.jsonl, test: ../test.jsonl}
model: {encoder: {source: huggingface, path: hf://org/model, vocab: enc/vocab.txt}}
output: {dir: out}
""",
        )
    )
    assert config.data.train == "/abs/train.jsonl"
    assert config.data.dev == str(tmp_path / "home" / "dev.jsonl")
    assert config.data.test == str(tmp_path.parent / "test.jsonl")
    assert config.model.encoder.path == "hf://org/model"
    assert config.model.encoder.vocab == str(tmp_path / "enc" / "vocab.txt")
    assert config.output.dir == str(tmp_path / "out")


def test_empty_file_with_base(tmp_path):
    base = {"task": "multilabel_classification", "data": {"train": "t.jsonl", "dev": "d.jsonl"}}
    config = load_config(write(tmp_path, ""), base=base)
    assert config.data.train == str(Path.cwd() / "t.jsonl")


def test_file_values_win_over_base(tmp_path):
    base = default_config("multilabel_classification", data_dir=tmp_path / "demo").to_dict()
    config = load_config(write(tmp_path, "training: {epochs: 9}\nmodel: {encoder: {num_layers: 1}}\n"), base=base)
    assert config.training.epochs == 9
    assert config.model.encoder.num_layers == 1
    assert config.model.encoder.hidden_dim == base["model"]["encoder"]["hidden_dim"]
    assert config.data.train == str(tmp_path / "demo" / "train.jsonl")


# ----------------------------------------------------------------------------- env variables


def test_env_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_TEST_DATA", "/data/set")
    monkeypatch.setenv("TOOLKIT_TEST_EPOCHS", "7")
    monkeypatch.delenv("TOOLKIT_TEST_UNSET", raising=False)
    config = load_config(
        write(
            tmp_path,
            """\
task: multilabel_classification
data:
  train: ${TOOLKIT_TEST_DATA}/train.jsonl
  dev: ${TOOLKIT_TEST_UNSET:-fallback}/dev.jsonl
  test: ${TOOLKIT_TEST_UNSET:-null}
training:
  epochs: ${TOOLKIT_TEST_EPOCHS}
output:
  dir: runs/$${literal}
""",
        )
    )
    assert config.data.train == "/data/set/train.jsonl"
    assert config.data.dev == str(tmp_path / "fallback" / "dev.jsonl")
    assert config.data.test is None
    assert config.training.epochs == 7
    assert config.output.dir.endswith("runs/${literal}")


def test_unset_env_variable_names_key_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TOOLKIT_TEST_MISSING", raising=False)
    path = write(tmp_path, MINIMAL.replace("data/dev.jsonl", "${TOOLKIT_TEST_MISSING}/dev.jsonl"))
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert problems_of(excinfo) == [
        f"{path}: data.dev: environment variable 'TOOLKIT_TEST_MISSING' is not set and has no "
        "default (write ${TOOLKIT_TEST_MISSING:-default} to give one)"
    ]


def test_malformed_env_reference(tmp_path):
    path = write(tmp_path, MINIMAL.replace("data/dev.jsonl", "${1BAD}"))
    with pytest.raises(ConfigError, match=r"data\.dev: malformed reference '\$\{1BAD\}'"):
        load_config(path)


# ----------------------------------------------------------------------------- overrides


def test_overrides_are_yaml_scalars(tmp_path):
    config = load_config(
        write(tmp_path, MINIMAL),
        overrides=[
            "training.epochs=3",
            "model.encoder.num_layers=4",
            "training.ema=0.999",
            "training.early_stopping_patience=null",
            "output.overwrite=true",
            "training.learning_rate=1e-3",
            "loss.name=binary_crossentropy",
        ],
    )
    assert config.training.epochs == 3
    assert config.model.encoder.num_layers == 4
    assert config.training.ema == 0.999
    assert config.training.early_stopping_patience is None
    assert config.output.overwrite is True
    assert config.training.learning_rate == pytest.approx(1e-3)
    assert config.loss.name == "binary_crossentropy"


def test_the_decision_rule_and_the_time_budget_are_checked(tmp_path):
    config = load_config(
        write(tmp_path, MINIMAL), overrides=["predict.min_labels=1", "predict.max_labels=3", "training.max_minutes=90"]
    )
    assert (config.predict.min_labels, config.predict.max_labels, config.training.max_minutes) == (1, 3, 90)
    with pytest.raises(ConfigError, match=r"predict\.min_labels: is more than max_labels \(4 > 3\)"):
        load_config(write(tmp_path, MINIMAL), overrides=["predict.min_labels=4", "predict.max_labels=3"])
    with pytest.raises(ConfigError, match=r"predict\.max_labels: expected .*1"):
        load_config(write(tmp_path, MINIMAL), overrides=["predict.max_labels=0"])
    with pytest.raises(ConfigError, match=r"training\.max_minutes: expected .*0"):
        load_config(write(tmp_path, MINIMAL), overrides=["training.max_minutes=0"])
    with pytest.raises(ConfigError, match=r"predict\.max_lables: .*did you mean 'max_labels'"):
        load_config(write(tmp_path, MINIMAL), overrides=["predict.max_lables=2"])


def test_override_paths_are_relative_to_working_directory(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(write(tmp_path, MINIMAL), overrides=["data.test=t.jsonl"])
    assert config.data.test == str(elsewhere / "t.jsonl")
    assert config.data.train == str(tmp_path / "data" / "train.jsonl")


def test_override_of_unknown_key(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, MINIMAL), overrides=["training.epoch=3"])
    assert problems_of(excinfo) == ["--set training.epoch=3: training.epoch: unknown key; did you mean 'epochs'?"]


def test_override_errors(tmp_path):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=r"^--set training\.epochs: expected section\.key=value$"):
        load_config(path, overrides=["training.epochs"])
    with pytest.raises(
        ConfigError,
        match=r"--set training\.epochs\.x=1: training\.epochs: is not a "
        r"section; it holds 3",
    ):
        load_config(path, overrides=["training.epochs=3", "training.epochs.x=1"])
    with pytest.raises(
        ConfigError,
        match=r"--set training\.\.x=1: expected section\.key=value; got "
        r"the key 'training\.\.x'",
    ):
        load_config(path, overrides=["training..x=1"])
    with pytest.raises(
        ConfigError,
        match=r"--set model\.maxlen=\[: model\.maxlen: the value is not "
        r"valid YAML",
    ):
        load_config(path, overrides=["model.maxlen=["])
    with pytest.raises(
        ConfigError,
        match=r"^--set model\.maxlen=x: model\.maxlen: expected a valid "
        r"integer.*; got 'x'$",
    ):
        load_config(path, overrides=["model.maxlen=x"])


# ----------------------------------------------------------------------------- validation errors


def test_unknown_key_did_you_mean(tmp_path):
    path = write(tmp_path, MINIMAL + "training:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert str(excinfo.value) == f"{path}: training.epoch: unknown key; did you mean 'epochs'?"


def test_unknown_key_without_close_match_lists_choices(tmp_path):
    path = write(tmp_path, MINIMAL + "loss:\n  zzz: 1\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: loss.zzz: unknown key; expected one of: name")):
        load_config(path)


def test_unknown_section_and_nested_encoder_key(tmp_path):
    path = write(tmp_path, MINIMAL + "trainig: {}\nmodel:\n  encoder:\n    num_layer: 3\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert set(problems_of(excinfo)) == {
        f"{path}: trainig: unknown key; did you mean 'training'?",
        f"{path}: model.encoder.num_layer: unknown key; did you mean 'num_layers'?",
    }


def test_every_problem_is_listed(tmp_path):
    path = write(
        tmp_path,
        """\
task: multilabel_classification
data:
  train: a.jsonl
model:
  pooling: avg
  dropout: 2
training:
  epochs: three
  batch_size: 0
  decay: cosin
  ema: 1.5
  mixed_precision: float16
""",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    problems = problems_of(excinfo)
    expected = [
        "data.dev: required key is missing; give a dev file, or dev_fraction (e.g. 0.1) to hold out "
        "that share of train as dev",
        "model.pooling: expected one of 'cls', 'mean' or 'max'; got 'avg'",
        "model.dropout: expected less than 1; got 2",
        "training.epochs: expected a valid integer, unable to parse string as an integer; got 'three'",
        "training.batch_size: expected greater than or equal to 1; got 0",
        "training.decay: expected one of 'linear', 'cosine' or 'none'; got 'cosin'; did you mean 'cosine'?",
        "training.ema: expected less than 1; got 1.5",
        "training.mixed_precision: expected one of 'mixed_float16' or 'mixed_bfloat16'; got 'float16'; "
        "did you mean 'mixed_float16'?",
    ]
    assert sorted(problems) == sorted(f"{path}: {line}" for line in expected)


def test_keys_of_the_other_task_are_rejected_with_a_reason(tmp_path):
    path = write(tmp_path, MINIMAL + "  schema: s.json\n  layout: casrel\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert set(problems_of(excinfo)) == {
        f"{path}: data.schema: unknown key for task 'multilabel_classification'; 'schema' is only "
        "used when task is 'relation_extraction'",
        f"{path}: data.layout: unknown key for task 'multilabel_classification'; 'layout' is only "
        "used when task is 'relation_extraction'",
    }
    path = write(tmp_path, RELATION + "  label_separator: '|'\n", "relation.yaml")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{path}: data.label_separator: unknown key for task 'relation_extraction'; "
            "'label_separator' is only used when task is 'multilabel_classification'"
        ),
    ):
        load_config(path)


def test_dev_fraction_replaces_dev(tmp_path):
    no_dev = MINIMAL.replace("  dev: data/dev.jsonl\n", "")
    config = load_config(write(tmp_path, no_dev + "  dev_fraction: 0.1\n"))
    assert config.data.dev is None and config.data.dev_fraction == 0.1
    assert load_config(config.save(tmp_path / "saved.yaml")) == config  # a run's copy keeps it
    assert MINIMAL.count("dev:") == 1 and load_config(write(tmp_path, MINIMAL)).data.dev_fraction is None


def test_dev_and_dev_fraction_exactly_one(tmp_path):
    no_dev = write(tmp_path, MINIMAL.replace("  dev: data/dev.jsonl\n", ""), "no_dev.yaml")
    with pytest.raises(ConfigError) as excinfo:
        load_config(no_dev)
    assert problems_of(excinfo) == [
        f"{no_dev}: data.dev: required key is missing; give a dev file, or dev_fraction (e.g. 0.1) "
        "to hold out that share of train as dev"
    ]
    both = write(tmp_path, MINIMAL + "  dev_fraction: 0.2\n", "both.yaml")
    with pytest.raises(ConfigError) as excinfo:
        load_config(both)
    assert problems_of(excinfo) == [
        f"{both}: data.dev_fraction: give dev (a file) or dev_fraction (0.2, a share of train held "
        "out as dev), not both"
    ]
    # Switching from a dev file to a held-out share on the command line.
    assert load_config(both, overrides=["data.dev=null"]).data.dev_fraction == 0.2


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "expected greater than 0; got 0"),
        ("0.5", "expected less than 0.5; got 0.5"),
        ("-0.1", "expected greater than 0; got -0.1"),
        ("a", "expected a valid number, unable to parse string as a number; got 'a'"),
    ],
)
def test_dev_fraction_bounds(tmp_path, value, message):
    path = write(tmp_path, MINIMAL.replace("  dev: data/dev.jsonl\n", ""))
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, overrides=[f"data.dev_fraction={value}"])
    assert problems_of(excinfo) == [f"--set data.dev_fraction={value}: data.dev_fraction: {message}"]


def test_home_inside_an_env_default_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENCODER_DIR", raising=False)
    path = write(
        tmp_path, MINIMAL + "model:\n  encoder:\n    source: huggingface\n    path: ${ENCODER_DIR:-~/models/minilm}\n"
    )
    assert load_config(path).model.encoder.path == str(tmp_path / "home" / "models" / "minilm")
    monkeypatch.setenv("ENCODER_DIR", "~/other")
    assert load_config(path).model.encoder.path == str(tmp_path / "home" / "other")


def test_relation_layout_rules(tmp_path):
    path = write(tmp_path, RELATION + "  subject_key: head\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert problems_of(excinfo) == [
        f"{path}: data.subject_key: only used with layout 'custom' (layout 'lic2019' fixes the field names); got 'head'"
    ]
    path = write(tmp_path, RELATION + "  layout: custom\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert problems_of(excinfo) == [
        f"{path}: data.triples_field: required with layout 'custom': the field holding the list of triples"
    ]
    with pytest.raises(
        ConfigError,
        match=r"data\.on_missing_entity: expected one of 'count', 'skip' or "
        r"'error'; got 'drop'",
    ):
        load_config(write(tmp_path, RELATION), overrides=["data.on_missing_entity=drop"])
    # The schema is optional: the predicates then come from the training data.
    assert load_config(write(tmp_path, RELATION.replace("  schema: re/all_50_schemas\n", ""))).data.schema_path is None


def test_multilabel_format_rules(tmp_path):
    path = write(tmp_path, MINIMAL + "  header: true\n  text_field: 0\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert set(problems_of(excinfo)) == {
        f"{path}: data.header: only used with csv and tsv files (format is 'jsonl'); got True",
        f"{path}: data.text_field: a JSON lines file needs a field name; got the column number 0",
    }
    path = write(tmp_path, MINIMAL.replace("jsonl", "tsv") + "  text_field: sentence\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{path}: data.text_field: the file has no header (header: false), so give a column "
            "number from 0; got 'sentence'"
        ),
    ):
        load_config(path)
    path = write(tmp_path, MINIMAL.replace("jsonl", "dat"))
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{path}: data.format: cannot tell the format of '{tmp_path / 'data' / 'train.dat'}' from "
            "its extension; set format to 'jsonl', 'csv' or 'tsv'"
        ),
    ):
        load_config(path)
    with pytest.raises(ConfigError, match=r"data\.label_separator: expected a non-empty string or null"):
        load_config(write(tmp_path, MINIMAL), overrides=["data.label_separator=''"])
    with pytest.raises(ConfigError, match=r"data\.labels_field: is the same as text_field \('text'\)"):
        load_config(write(tmp_path, MINIMAL), overrides=["data.labels_field=text"])
    with pytest.raises(
        ConfigError,
        match=r"data\.on_bad_line: expected one of 'error' or 'skip'; "
        r"got 'ignore'",
    ):
        load_config(write(tmp_path, MINIMAL), overrides=["data.on_bad_line=ignore"])
    with pytest.raises(ConfigError, match=r"data\.max_examples: expected greater than or equal to 1; got 0"):
        load_config(write(tmp_path, MINIMAL), overrides=["data.max_examples=0"])


def test_cross_field_rules(tmp_path):
    path = write(tmp_path, MINIMAL + "training: {warmup_ratio: 0.1, warmup_steps: 10}\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(f"{path}: training.warmup_steps: give warmup_ratio (0.1) or warmup_steps (10), not both"),
    ):
        load_config(path)
    path = write(tmp_path, MINIMAL)
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "--set training.warmup_steps=100: training.warmup_steps: give warmup_ratio (0.1) or "
            "warmup_steps (100), not both"
        ),
    ):
        load_config(path, overrides=["training.warmup_ratio=0.1", "training.warmup_steps=100"])
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "--set model.maxlen=600: model.maxlen: expected at most model.encoder.max_sequence_length (512); got 600"
        ),
    ):
        load_config(path, overrides=["model.maxlen=600"])


def test_text_field_of_wrong_type_is_one_problem(tmp_path):
    path = write(tmp_path, MINIMAL + "  text_field: [a, b]\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert problems_of(excinfo) == [
        f"{path}: data.text_field: expected a valid integer or a valid string; got a list ['a', 'b']"
    ]


def test_section_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, MINIMAL + "training: 3\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: training: expected a section (a mapping of keys); got 3")
    ):
        load_config(path)


def test_task_errors(tmp_path):
    path = write(tmp_path, "data: {train: a.jsonl, dev: b.jsonl}\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{path}: task: required key is missing; expected one of 'multilabel_classification', 'relation_extraction', 'entity_recognition'"
        ),
    ):
        load_config(path)
    path = write(tmp_path, MINIMAL.replace("multilabel_classification", "multilabel_clasification"))
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{path}: task: expected one of 'multilabel_classification', 'relation_extraction', 'entity_recognition'; got "
            "'multilabel_clasification'; did you mean 'multilabel_classification'?"
        ),
    ):
        load_config(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "task: multilabel_classification\ndata:\n  train: [a\n  dev: b\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:4: invalid YAML: ")):
        load_config(path)
    path = write(tmp_path, "task: x\n\tdata: 1\n", "tabs.yaml")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2: invalid YAML: ")):
        load_config(path)


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, MINIMAL + "  train: other.jsonl\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}:5: invalid YAML: duplicate key 'train' (first written on line 3)")
    ):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: expected a mapping of sections at the top level; got a list ['a', 'b']")
    ):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'nope.yaml'}: config file not found")):
        load_config(tmp_path / "nope.yaml")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    error = ConfigError(["a: b: c", "d: e: f"])
    assert str(error) == "a: b: c\nd: e: f" and error.problems == ["a: b: c", "d: e: f"]


# ----------------------------------------------------------------------------- writing


def test_save_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_TEST_DATA", str(tmp_path / "d"))
    config = load_config(
        write(
            tmp_path,
            MINIMAL.replace("data/train", "${TOOLKIT_TEST_DATA}/train")
            + "training: {ema: 0.999}\noutput: {dir: 'runs/$${x}'}\n",
        ),
        overrides=["model.encoder.source=random"],
    )
    saved = config.save(tmp_path / "run" / "config.yaml")
    monkeypatch.delenv("TOOLKIT_TEST_DATA")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    again = load_config(saved)
    assert again == config
    assert again.to_dict() == config.to_dict()
    assert again.output.dir.endswith("runs/${x}")
    assert yaml.safe_load(config.to_yaml())["data"]["train"] == config.data.train


def test_relation_config_round_trips(tmp_path):
    config = load_config(write(tmp_path, RELATION))
    again = load_config(config.save(tmp_path / "saved.yaml"))
    assert again == config and isinstance(again, RelationConfig)
    assert "schema:" in config.to_yaml() and "schema_path" not in config.to_yaml()


def test_check_files_lists_missing_inputs(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    path = write(tmp_path, MINIMAL)
    config = load_config(path)
    with pytest.raises(ConfigError) as excinfo:
        config.check_files()
    assert problems_of(excinfo) == [f"{path}: data.dev: file not found: {tmp_path / 'data' / 'dev.jsonl'}"]


# ----------------------------------------------------------------------------- defaults, template


@pytest.mark.parametrize("task", ["multilabel_classification", "relation_extraction"])
def test_default_config(task, tmp_path):
    config = default_config(task, data_dir=tmp_path / "demo", output_dir=tmp_path / "run")
    assert config.task == task
    assert config.model.encoder.source == "random"
    assert config.model.encoder.vocab == str(tmp_path / "demo" / "vocab.txt")
    assert config.output.dir == str(tmp_path / "run")
    assert load_config(config.save(tmp_path / "c.yaml")) == config
    assert default_config(task, tmp_path, overrides=["training.epochs=1"]).training.epochs == 1


def test_default_config_unknown_task():
    with pytest.raises(ConfigError, match=r"task: expected one of"):
        default_config("classification")


def test_from_dict():
    config = TaskConfig.from_dict(
        {"task": "relation_extraction", "data": {"train": "a", "dev": "b", "schema": "s"}}, source="<test>"
    )
    assert isinstance(config, RelationConfig) and config.data.train == "a"
    with pytest.raises(
        ConfigError,
        match=r"^<test>: data\.dev: required key is missing; give a dev file, or "
        r"dev_fraction \(e\.g\. 0\.1\) to hold out that share of train as dev$",
    ):
        TaskConfig.from_dict({"task": "relation_extraction", "data": {"train": "a", "schema": "s"}}, source="<test>")


def _yaml_keys(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _yaml_keys(value, prefix + (key,))


@pytest.mark.parametrize(
    "name, task",
    [("template_multilabel.yaml", "multilabel_classification"), ("template_relations.yaml", "relation_extraction")],
)
def test_template_loads_and_documents_every_key(tmp_path, name, task):
    template = REPO / "configs" / name
    config = load_config(template)
    assert config.task == task
    written = {".".join(keys) for keys in _yaml_keys(yaml.safe_load(template.read_text()))}
    every = {".".join(keys) for keys in _yaml_keys(config.to_dict())}
    assert every - written == set(), "keys missing from the template"


def test_docstring_examples_run():
    import doctest

    import toolkit.config.loading
    import toolkit.config.sections

    assert doctest.testmod(toolkit.config.loading).failed == 0
    assert doctest.testmod(toolkit.config.sections).failed == 0


# ----------------------------------------------------------------------------- one schema per task


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "loss.name=binary_crossentropy",
            "loss: unknown key for task 'relation_extraction'; 'loss' is only used when task is "
            "'multilabel_classification'",
        ),
        (
            "model.pooling=cls",
            "model.pooling: unknown key for task 'relation_extraction'; 'pooling' is only used when task is "
            "'multilabel_classification'",
        ),
        (
            "training.monitor=val_f1",
            "training.monitor: expected one of the values task 'relation_extraction' logs (loss, subject_micro_f1, "
            "object_micro_f1, val_micro_f1, val_precision, val_recall); got 'val_f1'; did you mean 'val_micro_f1'?",
        ),
        ("training.epochs=true", "training.epochs: expected a valid integer; got True"),
        ("training.batch_size=true", "training.batch_size: expected a valid integer; got True"),
        ("model.maxlen=2", "model.maxlen: expected at least 3 ([CLS], [SEP] and the tokens this task needs); got 2"),
    ],
)
def test_a_relation_config_refuses_what_the_task_does_not_use(tmp_path, override, message):
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, RELATION), overrides=[override])
    assert problems_of(excinfo) == [f"--set {override}: {message}"]


def test_monitor_is_checked_against_what_the_classifier_logs(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, MINIMAL + "training:\n  monitor: val_f1\n"))
    (problem,) = problems_of(excinfo)
    assert problem.startswith(
        f"{tmp_path / 'config.yaml'}: training.monitor: expected one of the values task "
        "'multilabel_classification' logs (loss, micro_f1, macro_f1,"
    )
    assert problem.endswith("got 'val_f1'; did you mean 'val_micro_f1'?")
    for monitor in ("val_macro_f1", "val_loss", "val_subset_accuracy"):
        assert load_config(write(tmp_path, MINIMAL), overrides=[f"training.monitor={monitor}"])


@pytest.mark.parametrize(
    "line, message",
    [
        ("epochs: true", "training.epochs: expected a valid integer; got True"),
        ("epochs: '3'", "training.epochs: expected a valid integer; got the string '3' (write it without quotes)"),
        (
            'learning_rate: "1e-3"',
            "training.learning_rate: expected a valid number; got the string '1e-3' (write it without quotes)",
        ),
        ("ema: 'false'", "training.ema: expected a valid number; got the string 'false' (write it without quotes)"),
    ],
)
def test_types_are_strict(tmp_path, line, message):
    path = write(tmp_path, MINIMAL + f"training:\n  {line}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert problems_of(excinfo) == [f"{path}: {message}"]


def test_the_encoder_section_is_strict_too(tmp_path):
    path = write(tmp_path, MINIMAL + "model:\n  encoder: {num_layers: true, hidden_dim: '128'}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert sorted(problems_of(excinfo)) == [
        f"{path}: model.encoder.hidden_dim: expected a valid integer; got the string '128' (write it without quotes)",
        f"{path}: model.encoder.num_layers: expected a valid integer; got True",
    ]


def test_numbers_read_as_yaml_1_2_and_set_values_stay_yaml(tmp_path, monkeypatch):
    config = load_config(
        write(tmp_path, MINIMAL + "training:\n  learning_rate: 1e-3\n  weight_decay: 2E-2\n"),
        overrides=["training.epochs=4", "training.warmup_ratio=1e-1"],
    )
    assert config.training.learning_rate == 0.001 and config.training.weight_decay == 0.02
    assert config.training.epochs == 4 and config.training.warmup_ratio == 0.1
    monkeypatch.setenv("TOOLKIT_TEST_RATE", "3e-4")
    config = load_config(write(tmp_path, MINIMAL + "training:\n  learning_rate: ${TOOLKIT_TEST_RATE}\n"))
    assert config.training.learning_rate == 3e-4
    # A value with text around the reference stays text.
    monkeypatch.setenv("TOOLKIT_TEST_NAME", "7")
    config = load_config(write(tmp_path, MINIMAL + "output:\n  dir: runs/${TOOLKIT_TEST_NAME}\n"))
    assert config.output.dir.endswith("runs/7")


def test_each_task_has_its_own_schema_in_a_discriminated_union():
    from toolkit.config.loading import _adapter
    from toolkit.tasks import config_class, task_names

    assert [config_class(name).model_fields["task"].default for name in task_names()] == list(task_names())
    schema = _adapter().json_schema()
    assert set(schema["discriminator"]["mapping"]) == set(task_names())
    assert (
        "loss" not in RelationConfig.model_fields
        and "pooling" not in RelationConfig.model_fields["model"].annotation.model_fields
    )


def test_loading_a_config_imports_neither_keras_nor_the_tokenizer():
    import subprocess
    import sys

    code = (
        "import sys; from toolkit.config import load_config; import toolkit.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow', 'tokenizers', 'jax', "
        "'torch', 'matplotlib'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- hints for easy slips


def test_did_you_mean_ignores_case(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, RELATION + "  layout: LIC2019\n"))
    assert problems_of(excinfo)[0].endswith("got 'LIC2019'; did you mean 'lic2019'?")
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, MINIMAL + "  Max_Examples: 3\n"))
    assert problems_of(excinfo)[0].endswith("data.Max_Examples: unknown key; did you mean 'max_examples'?")


@pytest.mark.parametrize("value", ["|", ">"])
def test_a_set_value_yaml_reads_as_empty_is_told_to_quote_it(tmp_path, value):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, overrides=[f"data.label_separator={value}"])
    assert problems_of(excinfo) == [
        f"--set data.label_separator={value}: data.label_separator: YAML reads {value!r} as an empty string; "
        f"quote it to mean the text: --set 'data.label_separator=\"{value}\"'"
    ]
    assert load_config(path, overrides=[f'data.label_separator="{value}"']).data.label_separator == value
    # An empty value on purpose is still null, and an empty quoted string is still empty.
    assert load_config(path, overrides=["data.test="]).data.test is None
