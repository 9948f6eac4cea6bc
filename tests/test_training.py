"""Training machinery: the learning-rate schedule, atomic folder swaps, stopping on NaN."""

import math

import keras
import numpy as np
import pytest

from toolkit.atomic import replace_directory, resolve_directory
from toolkit.callbacks import BestModelCheckpoint
from toolkit.config import TrainingConfig
from toolkit.optimization import WarmupDecay, ema_warning, make_optimizer


def test_warmup_then_linear_and_cosine_decay():
    linear = WarmupDecay(peak=1.0, warmup_steps=10, total_steps=110, decay="linear")
    values = [float(keras.ops.convert_to_numpy(linear(step))) for step in (0, 4, 9, 10, 60, 110, 200)]
    assert values == pytest.approx([0.1, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0], abs=1e-6)
    cosine = WarmupDecay(peak=2.0, warmup_steps=0, total_steps=100, decay="cosine")
    assert float(keras.ops.convert_to_numpy(cosine(50))) == pytest.approx(1.0, abs=1e-5)
    constant = WarmupDecay(peak=3.0, warmup_steps=0, total_steps=100, decay="none")
    assert float(keras.ops.convert_to_numpy(constant(70))) == pytest.approx(3.0)
    assert WarmupDecay.from_config(linear.get_config()).get_config() == linear.get_config()
    with pytest.raises(ValueError, match="decay must be 'linear', 'cosine' or 'none'; got 'step'"):
        WarmupDecay(1.0, 0, 10, decay="step")


def test_a_weight_average_too_long_for_the_run_is_warned_about(caplog):
    # 0.999 ** 628 = 0.53: the average would still be half the untrained start.
    message = ema_warning(0.999, 628)
    assert "training.ema=0.999" in message and "628" in message and "53%" in message
    assert ema_warning(0.999, 4710) is None  # 0.9%: long enough
    assert ema_warning(0.9, 100) is None
    assert ema_warning(None, 10) is None
    with caplog.at_level("WARNING", logger="toolkit"):
        make_optimizer(TrainingConfig(epochs=4, ema=0.999), steps_per_epoch=157)
    assert any("training.ema=0.999" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="toolkit"):
        make_optimizer(TrainingConfig(epochs=30, ema=0.999), steps_per_epoch=157)
    assert not caplog.records


def test_replace_directory_swaps_whole_folders(tmp_path):
    target = tmp_path / "best"

    def write(version):
        def build(folder):
            folder.mkdir()
            (folder / "model.txt").write_text(version)

        return build

    replace_directory(write("one"), target)
    replace_directory(write("two"), target)
    assert (target / "model.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]

    def broken(folder):
        folder.mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_directory(broken, target)
    assert (target / "model.txt").read_text() == "two"  # the old model survives a failed save
    # Interrupted between the two renames: the old folder is found at best.old.
    target.rename(tmp_path / "best.old")
    assert resolve_directory(target) == tmp_path / "best.old"


class Poisonable(keras.layers.Layer):
    """Passes its input through, or NaN once `poisoned` is set."""

    def build(self, input_shape):
        self.poisoned = self.add_weight(shape=(), initializer="zeros", trainable=False, name="poisoned")

    def call(self, x):
        return keras.ops.where(self.poisoned > 0, keras.ops.full_like(x, float("nan")), x)


class PoisonAtEpoch(keras.callbacks.Callback):
    def __init__(self, layer, epoch):
        super().__init__()
        self.layer, self.epoch = layer, epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.layer.poisoned.assign(1.0)


def test_nan_loss_stops_training_keeps_the_last_good_model_and_says_so(tmp_path):
    inputs = keras.Input((3,))
    poison = Poisonable()
    model = keras.Model(inputs, poison(keras.layers.Dense(1)(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    saved, messages = [], []
    checkpoint = BestModelCheckpoint(
        lambda folder: (folder.mkdir(), saved.append(folder.name)),
        tmp_path / "best",
        monitor="loss",
        mode="min",
        log=messages.append,
    )
    x, y = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)
    history = model.fit(x, y, batch_size=4, epochs=5, callbacks=[PoisonAtEpoch(poison, 1), checkpoint], verbose=0)
    assert len(history.history["loss"]) == 2  # stopped in the second epoch, not after five
    assert saved == ["best.tmp"] and checkpoint.best_epoch == 1
    assert checkpoint.stopped_on_nan["epoch"] == 2 and checkpoint.stopped_on_nan["batch"] == 1
    assert math.isnan(checkpoint.stopped_on_nan["loss"])
    assert len(messages) == 1 and "the loss became nan at epoch 2, batch 1" in messages[0]
    assert "the best model so far (epoch 1) is kept" in messages[0]
    checkpoint.require_model()  # a model exists: no error


def test_nan_in_the_first_epoch_means_no_model_and_a_clear_error(tmp_path):
    checkpoint = BestModelCheckpoint(lambda folder: None, tmp_path / "best", monitor="loss", mode="min", log=print)
    checkpoint.stopped_on_nan = {"epoch": 1, "batch": 3, "loss": float("inf")}
    with pytest.raises(RuntimeError, match="loss became inf at epoch 1, batch 3; no model had been saved yet"):
        checkpoint.require_model()
    fresh = BestModelCheckpoint(lambda folder: None, tmp_path / "best", monitor="val_micro_f1")
    with pytest.raises(RuntimeError, match=r"training.monitor \(val_micro_f1\) never had a finite value"):
        fresh.require_model()


def test_early_stopping_counts_from_the_best_epoch_and_says_so(tmp_path):
    """Stops once `patience` epochs pass without a better score, counted from the best epoch, so
    a resumed run (best epoch given) stops where the uninterrupted one does."""

    class Model:
        stop_training = False

    def run(scores, start=0, **settings):
        messages = []
        checkpoint = BestModelCheckpoint(
            lambda folder: folder.mkdir(), tmp_path / "best", monitor="val_f1", log=messages.append, **settings
        )
        checkpoint.set_model(Model())
        for epoch, score in enumerate(scores, start=start):
            checkpoint.on_epoch_end(epoch, {"val_f1": score})
            if checkpoint.model.stop_training:
                break
        checkpoint.on_train_end()
        return checkpoint, messages

    whole, messages = run([0.1, 0.5, 0.4, 0.3, 0.9], patience=2)
    assert whole.early_stopped == {"epoch": 4, "best_epoch": 2, "patience": 2} and whole.best_epoch == 2
    assert messages == [
        "early stopping after epoch 4: val_f1 has not improved for 2 epoch(s) since epoch 2 "
        "(training.early_stopping_patience)"
    ]
    # Resumed after epoch 3's backup: the best (epoch 2, 0.5) comes from best.json.
    resumed, _ = run([0.3, 0.9], start=3, patience=2, initial_score=0.5, initial_epoch=2)
    assert resumed.early_stopped == whole.early_stopped
    endless, messages = run([0.1, 0.5, 0.4, 0.3, 0.9])
    assert endless.early_stopped is None and endless.best_epoch == 5 and messages == []
