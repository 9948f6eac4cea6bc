"""The config files in configs/: each loads, points where it says, and (opt-in) trains on real data.

The smoke run trains every real-data config for one epoch on 200 examples; it
is skipped unless ``TOOLKIT_RUN_REAL_DATA=1`` (it needs ../shared/data and the
pretrained all-MiniLM-L6-v2, and takes a few minutes on a CPU):

    TOOLKIT_RUN_REAL_DATA=1 python -m pytest tests/test_shipped_configs.py -s -k smoke
"""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, shared_dir
from toolkit.config import MultilabelConfig, default_config, load_config
from toolkit.encoders.fetch import missing_files

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.y*ml"))
REAL_DATA = [path for path in CONFIGS if "TOOLKIT_SHARED_DIR" in path.read_text(encoding="utf-8")]
# Pipeline 1 on real data: MiniLM fine-tuned on a multi-label data set of ../shared.
REAL_MULTILABEL = [path for path in REAL_DATA if "task: multilabel_classification" in path.read_text(encoding="utf-8")]
RELATION_CONFIGS = [path for path in CONFIGS if "task: relation_extraction" in path.read_text(encoding="utf-8")]
REAL_RELATIONS = [path for path in REAL_DATA if path in RELATION_CONFIGS]
MINILM = Path(os.environ.get("MINILM_DIR", "~/.cache/pretrained/all-MiniLM-L6-v2")).expanduser()
# The configs that name m3e-small, whose licence (non-commercial, research use only) their headers must say.
M3E_CONFIGS = [path for path in CONFIGS if "m3e-small" in path.read_text(encoding="utf-8")]
NO_SHARED = (
    "../shared/data (or $TOOLKIT_SHARED_DIR/data) is absent: the real data sets live only in the project's own setup"
)


def _name(path):
    return path.name


@pytest.fixture
def environment(tmp_path, monkeypatch):
    """Env vars that the configs read: the shared folder (real or a stand-in), MiniLM and
    m3e-small folders that do not exist, and an empty demo data folder."""
    shared = shared_dir()
    monkeypatch.setenv("TOOLKIT_SHARED_DIR", str(shared if shared is not None else tmp_path / "shared"))
    monkeypatch.setenv("MINILM_DIR", str(tmp_path / "no_minilm_here"))
    monkeypatch.setenv("M3E_DIR", str(tmp_path / "no_m3e_here"))
    monkeypatch.setenv("DEMO_DATA", str(tmp_path / "demo_data"))
    return tmp_path


def test_the_shipped_configs_are_found():
    names = {path.name for path in CONFIGS}
    assert {"template_multilabel.yaml", "demo_classification.yaml", "reuters.yaml", "goemotions.yaml"} <= names
    assert {path.name for path in REAL_MULTILABEL} >= {"reuters.yaml", "goemotions.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_loads(path, environment):
    """Loading needs neither the data nor the encoder folder: only check_files looks."""
    config = load_config(path)
    for value in (config.data.train, config.data.dev, config.model.encoder.path, config.output.dir):
        assert value is None or os.path.isabs(value)
    assert load_config(config.save(environment / "saved.yaml")) == config


@pytest.mark.parametrize("path", REAL_MULTILABEL, ids=_name)
def test_real_data_config_defaults_point_beside_the_checkout(path, monkeypatch, tmp_path):
    monkeypatch.delenv("TOOLKIT_SHARED_DIR", raising=False)
    monkeypatch.delenv("MINILM_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(path)
    assert Path(config.data.train).is_relative_to(REPO_ROOT.parent / "shared" / "data" / "mlc")
    assert config.model.encoder.path == str(tmp_path / ".cache" / "pretrained" / "all-MiniLM-L6-v2")
    assert config.output.dir == str(REPO_ROOT / "runs" / path.stem)
    assert config.model.encoder.source == "huggingface" and config.model.pooling == "mean"


@pytest.mark.parametrize("path", REAL_DATA, ids=_name)
def test_real_data_config_files_exist(path, environment):
    if shared_dir() is None:
        pytest.skip(NO_SHARED)
    (environment / "no_minilm_here").mkdir()  # stand-ins: only the data files are checked here
    (environment / "no_m3e_here").mkdir()
    config = load_config(path)
    config.check_files()


@pytest.mark.parametrize("path", RELATION_CONFIGS, ids=_name)
@pytest.mark.parametrize("method", ["semi_pointer", "gplinker"])
def test_every_relation_config_takes_either_method(path, method, environment):
    """`--set model.method=gplinker` (or the default) on any shipped relation config is a valid config."""
    config = load_config(path, overrides=[f"model.method={method}"])
    assert config.model.method == method
    assert config.training.monitor in config.logged_metrics
    if method == "gplinker":
        assert config.training.monitor not in config.semi_pointer_only


def test_m3e_small_is_the_sample_s_encoder_and_one_variable_away_for_the_full_data(monkeypatch, tmp_path):
    assert {path.name for path in M3E_CONFIGS} == {"lic2019_sample_m3e.yaml", "lic2019_full.yaml", "duie2.yaml"}
    for path in M3E_CONFIGS:  # named or configured: the licence is said beside it
        header = path.read_text(encoding="utf-8").split("\ntask:")[0]
        assert "NON-COMMERCIAL, FOR" in header and "RESEARCH USE ONLY" in header, path.name
    monkeypatch.delenv("M3E_DIR", raising=False)
    monkeypatch.delenv("CHINESE_BERT_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    m3e = tmp_path / ".cache" / "pretrained" / "m3e-small"
    sample = load_config(REPO_ROOT / "configs" / "lic2019_sample_m3e.yaml")
    assert (sample.model.encoder.source, sample.model.encoder.path) == ("huggingface", str(m3e))
    assert sample.data.train == load_config(REPO_ROOT / "configs" / "lic2019_sample.yaml").data.train
    assert sample.output.dir == str(REPO_ROOT / "runs" / "lic2019_sample_m3e")
    for name in ("lic2019_full.yaml", "duie2.yaml"):
        assert load_config(REPO_ROOT / "configs" / name).model.encoder.path.endswith("chinese_L-12_H-768_A-12")
        monkeypatch.setenv("CHINESE_BERT_DIR", str(m3e))
        switched = load_config(REPO_ROOT / "configs" / name)
        assert (switched.model.encoder.source, switched.model.encoder.path) == ("auto", str(m3e))
        monkeypatch.delenv("CHINESE_BERT_DIR")


def test_reuters_holds_out_dev(environment):
    config = load_config(REPO_ROOT / "configs" / "reuters.yaml")
    assert isinstance(config, MultilabelConfig)
    assert (config.data.dev, config.data.dev_fraction, config.data.on_bad_line) == (None, 0.1, "skip")
    assert config.model.maxlen == 256


def test_demo_config_is_the_built_in_demo(environment):
    """configs/demo_classification.yaml holds what default_config builds, but for the run folder."""
    data_dir = environment / "demo_data"
    from_file = load_config(REPO_ROOT / "configs" / "demo_classification.yaml").to_dict()
    built_in = default_config("multilabel_classification", data_dir=data_dir).to_dict()
    assert from_file.pop("output") == {
        "dir": str(REPO_ROOT / "runs" / "demo_classification_config"),
        "overwrite": False,
    }
    built_in.pop("output")
    assert from_file == built_in


def test_baseline_is_one_override_away(environment):
    for path in CONFIGS:
        if path.name.startswith("template") or "task: multilabel_classification" not in path.read_text(
            encoding="utf-8"
        ):
            continue
        assert "--set loss.name=binary_crossentropy" in path.read_text(encoding="utf-8"), path.name
        config = load_config(path, overrides=["loss.name=binary_crossentropy"])
        assert config.loss.name == "binary_crossentropy"


def test_unset_demo_data_reads_what_the_demo_command_writes(monkeypatch):
    """`python -m toolkit demo classification`, run in the checkout, writes runs/demo_classification_data."""
    monkeypatch.delenv("DEMO_DATA", raising=False)
    config = load_config(REPO_ROOT / "configs" / "demo_classification.yaml")
    assert config.data.train == str(REPO_ROOT / "runs" / "demo_classification_data" / "train.jsonl")


# ----------------------------------------------------------------------------- opt-in smoke run


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("TOOLKIT_RUN_REAL_DATA") != "1",
    reason="real-data smoke run: set TOOLKIT_RUN_REAL_DATA=1 to train each real config for 1 epoch on 200 examples",
)
@pytest.mark.parametrize("path", REAL_MULTILABEL, ids=_name)
def test_smoke_real_data(path, tmp_path, capsys):
    if shared_dir() is None:
        pytest.skip(NO_SHARED)
    if not (MINILM / "model.safetensors").is_file():
        pytest.skip(
            f"all-MiniLM-L6-v2 is not in {MINILM}: run `python -m toolkit get-encoder all-MiniLM-L6-v2` (or set MINILM_DIR)"
        )
    from toolkit.classification.pipeline import ClassificationPipeline

    config = load_config(
        path,
        overrides=[
            "training.epochs=1",
            "data.max_examples=200",
            f"output.dir={tmp_path / 'run'}",
        ],
    )
    messages = []
    results = ClassificationPipeline(config, log=messages.append).train()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == json.loads(json.dumps(results))
    assert results["best_epoch"] == 1 and 0.0 <= results["dev"]["micro_f1"] <= 1.0
    with capsys.disabled():
        print(
            f"\n{path.name}: train {results['train_examples']} examples, "
            f"{results['train_seconds']} s; dev micro-F1 {results['dev']['micro_f1']:.4f}, "
            f"macro-F1 {results['dev']['macro_f1']:.4f}, threshold {results['decision_threshold']:g}, "
            f"skipped {results['skipped_lines']}"
        )


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("TOOLKIT_RUN_REAL_DATA") != "1",
    reason="real-data smoke run: set TOOLKIT_RUN_REAL_DATA=1 to train each real config for 1 epoch on 200 examples",
)
@pytest.mark.parametrize("path", REAL_RELATIONS, ids=_name)
@pytest.mark.parametrize("method", ["semi_pointer", "gplinker"])
def test_smoke_real_relation_data(path, method, tmp_path, capsys):
    """Every shipped relation config with data in ../shared trains and scores with either method."""
    if shared_dir() is None:
        pytest.skip(NO_SHARED)
    config = load_config(path, overrides=[f"model.method={method}"])
    encoder = Path(config.model.encoder.path or ".")
    if config.model.encoder.source == "huggingface" and missing_files(encoder):
        pytest.skip(
            f"{encoder} holds no encoder: run `python -m toolkit get-encoder {encoder.name}` (or set its *_DIR)"
        )
    from toolkit.relations.pipeline import RelationPipeline

    config = load_config(
        path,
        overrides=[
            f"model.method={method}",
            "training.epochs=1",
            "data.max_examples=200",
            f"output.dir={tmp_path / 'run'}",
        ],
    )
    results = RelationPipeline(config, log=lambda line: None).train()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == json.loads(json.dumps(results))
    assert results["best_epoch"] == 1 and 0.0 <= results["dev"]["f1"] <= 1.0
    with capsys.disabled():
        print(f"\n{path.name} {method}: {results['train_seconds']} s; dev F1 {results['dev']['f1']:.4f}")
