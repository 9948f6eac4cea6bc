"""Pipeline 1 end to end on a tiny generated data set: train, evaluate, predict, reload."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from tests.conftest import REPO_ROOT, TINY_ENCODER, set_flags
from toolkit.config import default_config
from toolkit.data import DataError, read_multilabel, to_multi_hot
from toolkit.data.synthetic import write_multilabel_demo

TINY = [
    *TINY_ENCODER,
    "model.maxlen=48",
    "training.epochs=2",
    "training.batch_size=32",
    "training.learning_rate=0.003",
    "training.early_stopping_patience=null",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny training run shared by the tests of this module."""
    from toolkit.classification.pipeline import ClassificationPipeline

    root = tmp_path_factory.mktemp("pipeline1")
    write_multilabel_demo(root / "data", n_train=240, n_dev=80, n_test=80, seed=3)
    config = default_config(
        "multilabel_classification", data_dir=root / "data", output_dir=root / "run", overrides=TINY
    )
    results = ClassificationPipeline(config, log=lambda message: None).train()
    return config, results, Path(config.output.dir)


def test_run_folder_holds_every_output(tiny_run):
    _, _, run = tiny_run
    for name in ("config.yaml", "metrics.json", "report.txt", "report_dev.json", "report_test.json", "history.csv"):
        assert (run / name).is_file(), name
    for name in ("learning_curves.png", "per_label_f1_dev.png", "per_label_f1_test.png", "f1_vs_threshold.png"):
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (run / "best").iterdir()) == ["model.keras", "predictor.json", "tokenizer"]
    assert any((run / "logs").iterdir()), "TensorBoard logs"
    assert len((run / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_the_logged_values_are_what_the_config_schema_lets_training_monitor(tiny_run):
    from toolkit.config import MultilabelConfig

    _, _, run = tiny_run
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert set(header) - {"epoch"} == set(MultilabelConfig.logged_metrics)


def test_metrics_are_computed_from_the_saved_models_predictions(tiny_run):
    config, results, run = tiny_run
    from toolkit.predictors import MultilabelPredictor

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(results))
    predictor = MultilabelPredictor.load(run / "best")
    for split in ("dev", "test"):
        data = read_multilabel(getattr(config.data, split), format="jsonl", text_field="text", labels_field="labels")
        targets = to_multi_hot(data.labels, predictor.label_names)
        decisions = predictor.predict(data.texts)
        assert metrics[split]["micro_f1"] == pytest.approx(
            skm.f1_score(targets, decisions, average="micro", zero_division=0)
        )
        assert metrics[split]["macro_f1"] == pytest.approx(
            skm.f1_score(targets, decisions, average="macro", zero_division=0)
        )
        assert metrics[split]["subset_accuracy"] == pytest.approx(skm.accuracy_score(targets, decisions))
    assert metrics["decision_threshold"] == 0.0
    assert metrics["best_epoch"] in (1, 2)


def test_metrics_time_each_epochs_training_steps_apart_from_the_rest(tiny_run):
    _, results, _ = tiny_run
    seconds = results["epoch_train_seconds"]
    assert len(seconds) == 2 and all(value > 0 for value in seconds)  # one an epoch, the steps alone
    assert sum(seconds) < results["train_seconds"]  # dev scoring, checkpoints and backups are left out


def test_predict_streams_json_lines_and_plain_text_and_keeps_output_on_error(tiny_run, tmp_path):
    from toolkit.pipeline import Pipeline

    _, _, run = tiny_run
    pipeline = Pipeline.from_run(run, log=lambda m: None)
    source = tmp_path / "texts.txt"
    source.write_text(
        '{"text": "shares of the bank rose after the merger"}\nrain and storms hit the coast\n\n', encoding="utf-8"
    )
    output = tmp_path / "out.jsonl"
    assert pipeline.predict_file(source, output, chunk_size=1) == 3  # the blank line too: lines stay aligned
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line["text"] for line in lines] == [
        "shares of the bank rose after the merger",
        "rain and storms hit the coast",
        "",
    ]
    for line in lines:
        assert set(line["labels"]) == set(line["scores"]) and all(score > 0 for score in line["scores"].values())
    assert lines[2] == {"text": "", "labels": [], "scores": {}}

    bad = tmp_path / "bad.txt"
    bad.write_text("first text\nsecond text\n{broken json\n", encoding="utf-8")
    before = output.read_text(encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt:3: invalid JSON.*\(the 2 prediction\(s\) before it are in "):
        pipeline.predict_file(bad, output, chunk_size=1)
    assert output.read_text(encoding="utf-8") == before  # the existing output is not emptied
    kept = [json.loads(line)["text"] for line in (tmp_path / "out.jsonl.partial").read_text().splitlines()]
    assert kept == ["first text", "second text"]


def test_predict_keeps_every_good_line_before_a_bad_one_and_the_old_output(tiny_run, tmp_path, capsys):
    from toolkit.cli import main

    _, _, run = tiny_run
    source, output = tmp_path / "texts.txt", tmp_path / "out.jsonl"
    output.write_text('{"old": 1}\n{"old": 2}\n{"old": 3}\n', encoding="utf-8")
    lines = [f"text number {number}" for number in range(1, 3001)]
    lines[2499] = '{"no_text_field": 1}'  # line 2,500 of 3,000: within the second chunk of 2,048
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["predict", str(run), str(source), str(output)]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"error: {source}:2500: expected an object with a string field 'text'")
    assert f"(the 2499 prediction(s) before it are in {output}.partial; {output} was not changed)" in message
    assert output.read_text(encoding="utf-8") == '{"old": 1}\n{"old": 2}\n{"old": 3}\n'
    kept = (tmp_path / "out.jsonl.partial").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in kept] == lines[:2499]
    # A run that finishes replaces the output whole and leaves no partial file.
    source.write_text("\n".join(lines[:10]) + "\n", encoding="utf-8")
    assert main(["predict", str(run), str(source), str(output)]) == 0
    assert len(output.read_text(encoding="utf-8").splitlines()) == 10 and not (tmp_path / "out.jsonl.partial").exists()


def test_predict_takes_the_decision_rule_from_the_command_line(tiny_run, tmp_path, capsys):
    from toolkit.cli import main

    _, _, run = tiny_run
    source, output = tmp_path / "texts.txt", tmp_path / "out.jsonl"
    source.write_text("".join(f"text number {number}\n" for number in range(40)), encoding="utf-8")

    def labels(*flags):
        assert main(["predict", str(run), str(source), str(output), *flags]) == 0
        return [json.loads(line)["labels"] for line in output.read_text(encoding="utf-8").splitlines()]

    plain, two, one = labels(), labels("--min-labels", "2"), labels("--max-labels", "1")
    assert all(len(found) >= 2 and set(found) >= set(base) for found, base in zip(two, plain))
    assert all(len(found) <= 1 and set(found) <= set(base) for found, base in zip(one, plain))
    assert two != plain or one != plain  # the flags reached the predictor
    capsys.readouterr()
    assert main(["predict", str(run), str(source), str(output), "--min-labels", "3", "--max-labels", "2"]) == 2
    assert capsys.readouterr().err.strip() == "error: --min-labels (3) is more than --max-labels (2)"


def test_a_damaged_best_model_is_one_line_naming_the_file(tiny_run, tmp_path, capsys):
    import shutil

    from toolkit.cli import main

    _, _, run = tiny_run
    source = tmp_path / "texts.txt"
    source.write_text("some text\n", encoding="utf-8")
    for name, damage, expected in [
        (
            "model.keras",
            "truncate",
            r"best/model.keras: not a complete .keras file \([\d,]+ bytes, truncated or damaged\)",
        ),
        ("predictor.json", '{"label_names": [', r"best/predictor.json:1: not valid JSON \("),
        ("predictor.json", "delete", r"best/predictor.json not found: .*best is not a folder written by"),
    ]:
        copy = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True))
        target = copy / "best" / name
        if damage == "truncate":
            with open(target, "r+b") as handle:
                handle.truncate(target.stat().st_size // 2)
        elif damage == "delete":
            target.unlink()
        else:
            target.write_text(damage, encoding="utf-8")
        for command in (["predict", str(copy), str(source), str(tmp_path / "out.jsonl")], ["evaluate", str(copy)]):
            assert main(command) == 2
            message = capsys.readouterr().err.strip()
            assert re.match(rf"error: .*{expected}", message) and "\n" not in message, message
        shutil.rmtree(copy)


def test_a_moved_run_folder_still_predicts_and_names_its_new_place(tiny_run, tmp_path):
    import shutil

    from toolkit.pipeline import Pipeline

    _, _, run = tiny_run
    moved = shutil.copytree(run, tmp_path / "moved")
    pipeline = Pipeline.from_run(moved, log=lambda m: None)
    assert pipeline.run_folder.path == moved.absolute()
    (tmp_path / "in.txt").write_text("the team won the final match\n", encoding="utf-8")
    assert pipeline.predict_file(tmp_path / "in.txt", tmp_path / "out.jsonl") == 1


def test_reloaded_predictor_gives_the_same_logits(tiny_run):
    from toolkit.predictors import MultilabelPredictor

    _, _, run = tiny_run
    texts = ["stocks fell as oil prices climbed", "the team won the final match"]
    first = MultilabelPredictor.load(run / "best").decision_function(texts)
    second = MultilabelPredictor.load(run / "best").decision_function(texts)
    np.testing.assert_allclose(first, second, rtol=1e-6)


def test_existing_run_folder_is_refused_without_overwrite(tiny_run):
    from toolkit.classification.pipeline import ClassificationPipeline
    from toolkit.runs import RunFolderError

    config, _, _ = tiny_run
    refused = config.model_copy(deep=True)
    refused.output.overwrite = False
    with pytest.raises(RunFolderError, match="already holds a run"):
        ClassificationPipeline(refused, log=lambda m: None).train()


def run_cli(*args, backend="tensorflow", cwd=None):
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, env=environment, cwd=cwd, timeout=900
    )


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_cli_trains_evaluates_and_predicts(tmp_path, backend):
    write_multilabel_demo(tmp_path / "data", n_train=120, n_dev=40, n_test=40, seed=5)
    config = default_config("multilabel_classification", data_dir=tmp_path / "data", output_dir=tmp_path / "run")
    config.save(tmp_path / "config.yaml")
    overrides = set_flags(TINY)
    done = run_cli("train", str(tmp_path / "config.yaml"), *overrides, "--set", "training.epochs=1", backend=backend)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["micro_f1"] <= 1.0
    done = run_cli("evaluate", str(tmp_path / "run"), backend=backend)
    assert done.returncode == 0, done.stderr[-3000:]
    (tmp_path / "in.txt").write_text("markets rallied on strong earnings\n", encoding="utf-8")
    done = run_cli(
        "predict", str(tmp_path / "run"), str(tmp_path / "in.txt"), str(tmp_path / "out.jsonl"), backend=backend
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "out.jsonl").read_text())["text"] == "markets rallied on strong earnings"


def test_cli_reports_config_errors_with_the_key_and_writes_nothing(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "task: multilabel_classification\ndata: {train: a.jsonl, dev: b.jsonl}\ntraining: {epoch: 3}\n"
        f"output: {{dir: {tmp_path / 'run'}}}\n",
        encoding="utf-8",
    )
    done = run_cli("train", str(tmp_path / "config.yaml"))
    assert done.returncode == 2
    assert "training.epoch" in done.stderr and "did you mean 'epochs'" in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "task, override, key",
    [
        ("relation_extraction", "loss.name=binary_crossentropy", "loss"),
        ("relation_extraction", "model.pooling=cls", "model.pooling"),
        ("relation_extraction", "training.monitor=val_f1", "training.monitor"),
        ("relation_extraction", "model.maxlen=2", "model.maxlen"),
        ("multilabel_classification", "training.monitor=val_f1", "training.monitor"),
        ("multilabel_classification", "training.epochs=true", "training.epochs"),
        ("multilabel_classification", "training.batch_size=true", "training.batch_size"),
        ("multilabel_classification", "training.epochs='3'", "training.epochs"),
    ],
)
def test_cli_refuses_a_bad_key_in_one_line_before_reading_data(tmp_path, task, override, key):
    from toolkit.cli import main

    # The data files do not exist: the config error must come first.
    data = "{train: a.jsonl, dev: b.jsonl" + (", schema: s.json}" if task == "relation_extraction" else "}")
    path = tmp_path / "config.yaml"
    path.write_text(f"task: {task}\ndata: {data}\noutput: {{dir: {tmp_path / 'run'}}}\n", encoding="utf-8")
    code = main(["train", str(path), "--set", override])
    assert code == 2
    assert not (tmp_path / "run").exists()


def test_cli_bad_key_message_is_one_line(tmp_path, capsys):
    from toolkit.cli import main

    path = tmp_path / "config.yaml"
    path.write_text("task: relation_extraction\ndata: {train: a.json, dev: b.json, schema: s.json}\n", encoding="utf-8")
    assert main(["train", str(path), "--set", "training.monitor=val_f1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set training.monitor=val_f1: training.monitor: ")
    assert "did you mean 'val_micro_f1'?" in lines[0]


def test_cli_reports_a_missing_encoder_file_without_a_traceback(tmp_path):
    write_multilabel_demo(tmp_path / "data", n_train=20, n_dev=10, n_test=10, seed=1)
    config = default_config("multilabel_classification", data_dir=tmp_path / "data", output_dir=tmp_path / "run")
    config.save(tmp_path / "config.yaml")
    done = run_cli("train", str(tmp_path / "config.yaml"), "--set", f"model.encoder.vocab={tmp_path / 'missing.txt'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "missing.txt" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing was trained, so the same folder is reused by the next try.
    from toolkit.runs import RunFolder

    assert not RunFolder(tmp_path / "run").started()


# ----------------------------------------------------------------------------- what was read, and predict reading it


def test_the_run_folder_says_what_was_read_before_training(tiny_run):
    from toolkit.predictors import MultilabelPredictor

    config, _, run = tiny_run
    summary = json.loads((run / "data_summary.json").read_text(encoding="utf-8"))
    assert {name: split["examples"] for name, split in summary["splits"].items()} == {
        "train": 240,
        "dev": 80,
        "test": 80,
    }
    assert summary["labels"]["count"] == 10 and len(summary["labels"]["most_frequent"]) == 5
    counts = [count for _, count in summary["labels"]["most_frequent"]]
    assert counts == sorted(counts, reverse=True) and summary["labels"]["least_frequent"][0][1] <= counts[-1]
    train = summary["splits"]["train"]
    assert 1 <= train["labels_per_example"]["min"] <= train["labels_per_example"]["mean"]
    assert sum(train["labels_per_example"]["histogram"].values()) == 240
    data = read_multilabel(config.data.train)
    first = train["rows"][0]
    assert (first["line"], first["labels"]) == (1, data.labels[0]) and len(train["rows"]) == 2
    assert data.texts[0].startswith(first["text"].removesuffix("...")) and len(first["text"]) <= 83
    # Token lengths are those of the run's tokenizer, before maxlen cuts them.
    tokenizer = MultilabelPredictor.load(run / "best").preprocessor.tokenizer
    lengths = [len(encoding) for encoding in tokenizer.encode_batch(data.texts, maxlen=10_000)]
    cut = sum(length > 48 for length in lengths)
    assert train["tokens"]["max"] == max(lengths) and train["tokens"]["maxlen"] == 48
    assert (train["tokens"]["cut"], train["tokens"]["cut_share"]) == (cut, round(cut / 240, 4))
    assert summary["read_as"]["on_warning"] == "count"
    codes = [warning["code"] for warning in summary["warnings"]]
    assert ("maxlen_cut" in codes) == any(split["tokens"]["cut_share"] > 0.05 for split in summary["splits"].values())
    assert all(set(warning) == {"code", "message", "key"} for warning in summary["warnings"])


def test_predict_reads_a_csv_like_the_training_csv(tiny_run, tmp_path):
    """A run trained on a CSV (here: the tiny run's model, with a CSV data section) reads a CSV the same way."""
    from toolkit.classification.pipeline import ClassificationPipeline

    config, _, run = tiny_run
    csv_config = config.model_copy(deep=True)
    csv_config.data.format, csv_config.data.header = "csv", True
    csv_config.data.text_field, csv_config.data.labels_field = "review", "tags"
    csv_config.output.dir = str(run)
    pipeline = ClassificationPipeline(csv_config, log=lambda message: None)
    source = tmp_path / "reviews.csv"
    source.write_text(
        "id,review,tags\n"
        'r1,"shares of the bank rose, then fell",economy\n'
        "r2,rain and storms hit the coast,weather\n"
        "\n"
        "r3,the team won the final match,sports\n",
        encoding="utf-8",
    )
    output = tmp_path / "out.jsonl"
    assert pipeline.predict_file(source, output) == 4
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line.get("id") for line in lines] == ["r1", "r2", None, "r3"]
    assert [line["text"] for line in lines] == [
        "shares of the bank rose, then fell",
        "rain and storms hit the coast",
        "",
        "the team won the final match",
    ]
    assert lines[0]["tags"] == "economy" and "review" not in lines[0]  # the gold labels carried, the text once
    assert lines[2] == {"text": "", "labels": [], "scores": {}}
    # The same predictions as for the texts alone, one a line.
    (tmp_path / "texts.txt").write_text("\n".join(line["text"] for line in lines) + "\n", encoding="utf-8")
    assert pipeline.predict_file(tmp_path / "texts.txt", tmp_path / "plain.jsonl") == 4
    plain = [json.loads(line) for line in (tmp_path / "plain.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["labels"] for line in plain] == [line["labels"] for line in lines]


# ----------------------------------------------------------------------------- the token cache and the batches, as arrays

CHINESE_VOCAB = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared")) / "data/chinese_bert/vocab.txt"
CACHE_TEXTS = [
    "the cat sat on the mat",
    "",
    "周杰伦的《晴天》，发行于2003年。",
    "Café naïve résumé cafe\u0301 and   spaces\t\there",
    "the cats sat " * 30,  # cut by maxlen
    "hello 😀 world [SEP] ok",
    "新年快乐" * 40,  # cut by maxlen
]


def _tokenizers():
    from toolkit.encoders import WordPieceTokenizer

    words = ["the", "cat", "##s", "sat", "on", "mat", "hello", "world", "ok", "周", "杰", "伦", "的", "新", "年"]
    found = [WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])]
    if CHINESE_VOCAB.is_file():
        found.append(WordPieceTokenizer(CHINESE_VOCAB))
    return found


@pytest.mark.parametrize("tokenizer", _tokenizers(), ids=lambda tokenizer: f"vocab-{tokenizer.vocabulary_size}")
def test_the_token_cache_and_the_batches_hold_the_preprocessors_ids(tmp_path, tokenizer):
    from types import SimpleNamespace

    from toolkit.batching import length_grouped_batches
    from toolkit.classification.pipeline import encode_split
    from toolkit.classification.preprocessor import TextPreprocessor

    preprocessor = TextPreprocessor(tokenizer, maxlen=16)
    texts = CACHE_TEXTS * 3
    dataset = SimpleNamespace(texts=texts, labels=[["a"] if i % 2 else ["b"] for i in range(len(texts))])
    expected = preprocessor.encode(texts)  # the list form: ids per text, cut to maxlen
    uncut = [len(encoding) for encoding in tokenizer.encode_batch(texts, maxlen=10_000)]
    written = encode_split(preprocessor, dataset, ["a", "b"], tmp_path)
    (cache_file,) = tmp_path.glob("tokens-*.npz")
    read = encode_split(preprocessor, dataset, ["a", "b"], tmp_path)
    assert max(uncut) > 16 and min(uncut) == 2
    for encoded in (written, read):
        tokens = encoded.tokens
        assert encoded.lengths.tolist() == [len(ids) for ids in expected]
        assert encoded.text_lengths.tolist() == uncut
        assert [
            tokens.flat_token_ids[start : start + length].tolist()
            for start, length in zip(tokens.starts, tokens.lengths)
        ] == expected
    # Batches as training and prediction pad them: the list form's `pad`, from the arrays.
    for indices in length_grouped_batches(read.lengths, 4, shuffle=True, seed=1):
        inputs = preprocessor.inputs(read.tokens, indices)
        reference = preprocessor.pad([expected[i] for i in indices])
        assert set(inputs) == set(reference)
        for name in reference:
            np.testing.assert_array_equal(inputs[name], reference[name])
            assert inputs[name].dtype == np.int32
    for got, reference in ((preprocessor(texts), preprocessor.pad(expected)), (preprocessor([]), preprocessor.pad([]))):
        for name in reference:
            np.testing.assert_array_equal(got[name], reference[name])
            assert got[name].shape == reference[name].shape
    # Prediction's batches have a few fixed shapes: rows and tokens padded to `toolkit.batching`'s sizes
    # (a batch of unequal lengths may be cut in smaller calls: `padding_splits`).
    from toolkit.batching import bucket_size, decode_rows, padded_length

    seen = []
    for indices, inputs in preprocessor.batches(texts, 5):
        reference = preprocessor.pad([expected[i] for i in indices])["token_ids"]
        got, width = inputs["token_ids"], reference.shape[1]
        rows = min(bucket_size(len(indices)), decode_rows(len(texts), 5))
        assert got.shape == (rows, padded_length(width, preprocessor.maxlen))
        seen.extend(indices.tolist())
        np.testing.assert_array_equal(got[: len(indices), :width], reference)
        assert (got[: len(indices), width:] == preprocessor.tokenizer.pad_id).all()
    assert sorted(seen) == list(range(len(texts)))  # every text in one call
    # A cache written before the arrays (int64 lengths) and before text lengths were kept still reads.
    flat = np.concatenate([np.asarray(ids, dtype="int32") for ids in expected])
    np.savez(cache_file, flat=flat, lengths=np.array([len(ids) for ids in expected]))
    old = encode_split(preprocessor, dataset, ["a", "b"], tmp_path)
    assert old.lengths.tolist() == [len(ids) for ids in expected] and old.text_lengths.tolist() == uncut
    np.testing.assert_array_equal(old.tokens.flat_token_ids, flat)
