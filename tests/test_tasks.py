"""A third task added as docs/architecture.md says (a schema, a Pipeline subclass, one registry
entry) runs through config loading, the CLI and `Pipeline.train` without other changes."""

import json
from typing import ClassVar, Literal

import numpy as np
import pytest

from toolkit import tasks
from toolkit.config import ConfigError, load_config
from toolkit.config.sections import DataConfig, TaskConfig
from toolkit.pipeline import Pipeline, TrainingFeed

LETTERS = "abcdefghijklmnopqrstuvwxyz"


# 1. The schema: its data section names its reader; the values it logs; its demo.
class LettersData(DataConfig):
    def read(self, split="train"):
        from toolkit.data import read_multilabel

        return read_multilabel(getattr(self, split), format="jsonl")


class LettersConfig(TaskConfig):
    logged_metrics: ClassVar[tuple] = ("loss", "val_loss")
    default_monitor: ClassVar[str] = "val_loss"

    task: Literal["letters"] = "letters"
    data: LettersData

    @staticmethod
    def demo(data_dir):
        return {"task": "letters", "data": {"train": f"{data_dir}/train.jsonl", "dev": f"{data_dir}/dev.jsonl"}}


# 3. The pipeline: what differs from the base (a bag-of-letters model that tags vowels).
class LettersPredictor:
    def __init__(self, model):
        self.model = model

    @staticmethod
    def features(texts):
        return np.array([[text.count(letter) for letter in LETTERS] for text in texts], dtype="float32")

    def predict(self, texts):
        logits = np.asarray(self.model.predict(self.features(texts), verbose=0))
        return [[LETTERS[i] for i in np.flatnonzero(row > 0)] for row in logits]

    def save(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / "model.keras")

    @classmethod
    def load(cls, folder):
        import keras

        return cls(keras.models.load_model(folder / "model.keras", compile=False))


class LettersPipeline(Pipeline):
    task = "letters"
    predictor_class = LettersPredictor

    @staticmethod
    def write_demo_data(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for split, count in (("train", 96), ("dev", 32)):
            lines = []
            for _ in range(count):
                text = "".join(rng.choice(list(LETTERS), size=8))
                lines.append(json.dumps({"text": text, "labels": sorted(set(text) & set("aeiou"))}))
            (data_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def read_data(self):
        from toolkit.data import read_splits

        return read_splits(self.config.data, self.config.training.seed, log=self.log)

    def build(self, data):
        import keras

        inputs = keras.Input((len(LETTERS),))
        return LettersPredictor(keras.Model(inputs, keras.layers.Dense(len(LETTERS))(inputs)))

    def training_feed(self, predictor, data, run=None, *, initial_epoch=0):
        import tensorflow as tf

        from toolkit.data import to_multi_hot

        def batches(split):
            targets = to_multi_hot(split.labels, list(LETTERS), dtype="float32")
            return tf.data.Dataset.from_tensor_slices((predictor.features(split.texts), targets)).batch(32)

        return TrainingFeed(predictor.model, batches(data.train), validation=batches(data.dev))

    def compile(self, predictor, feed):
        from toolkit.losses import MultilabelCategoricalCrossentropy
        from toolkit.optimization import make_optimizer

        optimizer = make_optimizer(self.config.training, steps_per_epoch=3)
        feed.model.compile(optimizer=optimizer, loss=MultilabelCategoricalCrossentropy())

    def score(self, run, predictor, data, *, calibrate=False):
        predicted = predictor.predict(data.dev.texts)
        exact = float(np.mean([set(p) == set(g) for p, g in zip(predicted, data.dev.labels)]))
        return {"dev": {"exact": exact}}, f"dev exact match {exact:.3f}\n"

    def prediction_records(self, predictor, texts):
        return [{"text": text, "labels": labels} for text, labels in zip(texts, predictor.predict(texts))]


@pytest.fixture
def letters_task(monkeypatch):
    # 4. One registry entry.
    entry = tasks.Task("letters", "letters", f"{__name__}:LettersConfig", f"{__name__}:LettersPipeline", "toy")
    monkeypatch.setattr(tasks, "TASKS", (*tasks.TASKS, entry))
    return entry


def test_a_registered_task_loads_its_schema_and_its_errors_name_it(letters_task, tmp_path):
    path = tmp_path / "letters.yaml"
    path.write_text("task: letters\ndata: {train: t.jsonl, dev: d.jsonl}\n", encoding="utf-8")
    assert isinstance(load_config(path), LettersConfig)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, overrides=["training.monitor=val_los"])
    assert "did you mean 'val_loss'?" in str(excinfo.value)
    with pytest.raises(ConfigError, match=r"loss: unknown key for task 'letters'; 'loss' is only used when task is "):
        load_config(path, overrides=["loss.name=binary_crossentropy"])
    with pytest.raises(ConfigError, match=r"task: expected one of .*'letters'; got 'leters'; did you mean 'letters'"):
        load_config(path, overrides=["task=leters"])


def test_a_registered_task_trains_evaluates_and_predicts_through_the_base(letters_task, tmp_path):
    from toolkit.cli import main

    assert main(["demo", "letters", "--output", str(tmp_path / "run"), "--set", "training.epochs=2"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["best_epoch"] in (1, 2) and 0.0 <= metrics["dev"]["exact"] <= 1.0
    assert (tmp_path / "run" / "report.txt").read_text().startswith("dev exact match")
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert set(header) - {"epoch"} == set(LettersConfig.logged_metrics)
    (tmp_path / "in.txt").write_text("aaaa\nzzzz\n", encoding="utf-8")
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "in.txt"), str(tmp_path / "out.jsonl")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["text"] for line in lines] == ["aaaa", "zzzz"]
    assert main(["evaluate", str(tmp_path / "run")]) == 0


@pytest.mark.parametrize(
    "module, name",
    [
        ("toolkit.classification.pipeline", "ClassificationPipeline"),
        ("toolkit.relations.pipeline", "RelationPipeline"),
        ("toolkit.entities.pipeline", "EntityPipeline"),
    ],
)
def test_the_demo_says_what_its_data_is_and_when_it_replaces_a_run(module, name, tmp_path):
    import importlib

    pipeline = getattr(importlib.import_module(module), name)
    lines = []
    pipeline.demo_config(tmp_path / "demo", log=lines.append)
    assert lines == [f"demo data written to {tmp_path / 'demo_data'}: {pipeline.demo_description}"]
    assert "templates" in pipeline.demo_description and "on real text" in pipeline.demo_description
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "metrics.json").write_text("{}", encoding="utf-8")
    lines.clear()
    pipeline.demo_config(tmp_path / "demo", log=lines.append)
    assert lines[-1] == f"the earlier demo run in {tmp_path / 'demo'} will be replaced"
