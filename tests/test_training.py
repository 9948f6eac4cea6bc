"""Training machinery: the learning-rate schedule, the weight average, atomic folder swaps, stopping on NaN."""

import math

import keras
import numpy as np
import pytest

from toolkit.atomic import replace_directory, resolve_directory
from toolkit.callbacks import AverageOrTrainingWeights, BestModelCheckpoint, _weight_average
from toolkit.config import TrainingConfig
from toolkit.optimization import WarmupDecay, ema_decay, make_optimizer

TRUE_WEIGHTS = np.array([[1.0], [-2.0], [0.5]], dtype="float32")


def _regression(n=64, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype("float32")
    return x, x @ TRUE_WEIGHTS


def _linear_model(ema=None, learning_rate=0.05):
    """y = x w + b with SGD; `ema` turns Keras' plain weight average on (it lags well behind)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(learning_rate, use_ema=ema is not None, ema_momentum=ema or 0.99)
    model.compile(optimizer, "mse")
    return model


def _weights(model):
    return [keras.ops.convert_to_numpy(variable).copy() for variable in model.trainable_variables]


def test_the_better_of_average_and_training_weights_is_kept_and_training_goes_on_from_its_own():
    x, y = _regression()
    model = _linear_model(ema=0.99)
    model.optimizer.build(model.trainable_variables)
    variables, averages = _weight_average(model.optimizer)

    def validate():
        return {"val_loss": model.evaluate(x, y, verbose=0)}

    keep = AverageOrTrainingWeights("val_loss", "min", validate=validate)
    keep.set_model(model)
    start = _weights(model)

    # An average at the true weights beats the random start: it is kept, scored and left in the model.
    averages[0].assign(TRUE_WEIGHTS)
    averages[1].assign(np.zeros(1, "float32"))
    logs = {"loss": 1.0, **validate()}
    keep.on_epoch_end(0, logs)
    assert keep.average_kept and logs["average_kept"] == 1.0
    assert logs["val_loss"] == logs["val_loss_average"] == pytest.approx(0.0, abs=1e-10)
    assert logs["val_loss_training"] > 0.1
    np.testing.assert_allclose(_weights(model)[0], TRUE_WEIGHTS)
    keep.on_epoch_begin(1)  # the next epoch trains on from the training weights
    for now, before in zip(_weights(model), start):
        np.testing.assert_array_equal(now, before)

    # Training weights at the answer beat an average far from it: they stay, and the average is unchanged.
    variables[0].assign(TRUE_WEIGHTS)
    variables[1].assign(np.zeros(1, "float32"))
    averages[0].assign(np.full((3, 1), 5.0, "float32"))
    logs = {"loss": 1.0, **validate()}
    keep.on_epoch_end(1, logs)
    assert not keep.average_kept and logs["average_kept"] == 0.0
    assert logs["val_loss"] == logs["val_loss_training"] == pytest.approx(0.0, abs=1e-10)
    assert logs["val_loss_average"] > 1.0
    np.testing.assert_allclose(_weights(model)[0], TRUE_WEIGHTS)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(averages[0]), 5.0)
    # Keras' fit ends by putting the average into the model; the kept training weights come back.
    model.optimizer.finalize_variable_values(model.trainable_variables)
    keep.on_train_end()
    np.testing.assert_allclose(_weights(model)[0], TRUE_WEIGHTS)


def test_a_run_with_a_compared_average_never_scores_below_the_same_run_without():
    x, y = _regression()
    y = y + np.random.default_rng(5).normal(size=y.shape).astype("float32")  # noisy: steps jitter, an average helps
    dev_x, dev_y = _regression(32, seed=1)

    def train(ema):
        model = _linear_model(ema=ema, learning_rate=0.1)
        seen = []

        def validate():
            return {"val_loss": model.evaluate(dev_x, dev_y, verbose=0)}

        class Record(keras.callbacks.Callback):  # what the callbacks after it see: the kept weights
            def on_epoch_end(self, epoch, logs=None):
                seen.append(validate()["val_loss"])

        callbacks = [AverageOrTrainingWeights("val_loss", "min", validate=validate)] if ema else []
        history = model.fit(
            x,
            y,
            batch_size=8,
            epochs=6,
            validation_data=(dev_x, dev_y),
            shuffle=False,
            verbose=0,
            callbacks=[*callbacks, Record()],
        ).history
        return model, history, seen

    _, without, _ = train(None)
    model, history, seen = train(0.9)
    # The training weights take the same path with or without an average ...
    np.testing.assert_allclose(history["val_loss_training"], without["val_loss"], rtol=1e-4)
    # ... and each epoch keeps whichever of the two scores better, so it never scores worse.
    np.testing.assert_allclose(
        history["val_loss"], np.minimum(history["val_loss_average"], history["val_loss_training"]), rtol=1e-6
    )
    assert all(kept <= alone * (1 + 1e-4) for kept, alone in zip(history["val_loss"], without["val_loss"]))
    # The lagging average loses at first and wins once the steps only jitter around the answer.
    assert history["average_kept"][0] == 0.0 and history["average_kept"][-1] == 1.0
    assert min(history["val_loss"]) < 0.8 * min(without["val_loss"])
    # The callbacks after it score the kept weights, and after fit the model holds the last ones.
    np.testing.assert_allclose(seen, history["val_loss"], rtol=1e-5)
    assert model.evaluate(dev_x, dev_y, verbose=0) == pytest.approx(history["val_loss"][-1], rel=1e-5)


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


def test_the_weight_average_warms_up():
    """The optimizer's average after each step equals the recurrence avg_t = d_t avg_{t-1} + (1 - d_t) w_t
    with d_t = min(ema, (1 + t) / (10 + t)), d_0 = 0, over the weights w_t the steps produced."""
    assert [ema_decay(0.999, t) for t in (0, 1, 8)] == [0.0, 2 / 11, 0.5]
    assert ema_decay(0.9, 10**6) == 0.9 and ema_decay(0.999, 8990) == pytest.approx(0.999)
    optimizer = make_optimizer(TrainingConfig(epochs=1, ema=0.9, learning_rate=0.1, warmup_steps=0), 40)
    variable = keras.Variable(np.array([1.0, -2.0, 0.5], dtype="float32"))
    optimizer.build([variable])
    rng = np.random.default_rng(0)
    expected = None
    for step in range(40):
        optimizer.apply([keras.ops.convert_to_tensor(rng.normal(size=3).astype("float32"))], [variable])
        weights = keras.ops.convert_to_numpy(variable).astype("float64")
        decay = ema_decay(0.9, step)
        expected = weights if expected is None else decay * expected + (1 - decay) * weights
        average = keras.ops.convert_to_numpy(optimizer._model_variables_moving_average[0])
        np.testing.assert_allclose(average, expected, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
    # Without the warm-up, the first weights would still be 0.9 ** 39 = 1.6% of the average; with it, less
    # than 0.01%: the average of a short run is its training, not its start.
    first_share = np.prod([ema_decay(0.9, t) for t in range(1, 40)])
    assert first_share < 1e-4


def test_optimization_docstring_examples_run():
    import doctest

    import toolkit.optimization

    assert doctest.testmod(toolkit.optimization).failed == 0


def test_an_optimizer_without_average_is_plain_adamw():
    optimizer = make_optimizer(TrainingConfig(epochs=1, ema=None), 10)
    assert isinstance(optimizer, keras.optimizers.AdamW) and not optimizer.use_ema
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(make_optimizer(TrainingConfig(ema=0.99), 5)))
    assert type(restored).__name__ == "WarmEMAAdamW" and restored.use_ema and restored.ema_momentum == 0.99


def _embedding_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), dtype="int32")
    hidden = keras.layers.Embedding(64, 8, name="embedding")(inputs)
    hidden = keras.layers.LayerNormalization()(keras.layers.GlobalAveragePooling1D()(hidden))
    return keras.Model(inputs, keras.layers.Dense(5)(hidden))


def _train(optimizer, tokens, targets, steps=12):
    from toolkit.losses import MultilabelCategoricalCrossentropy

    model = _embedding_model(0)
    model.compile(optimizer=optimizer, loss=MultilabelCategoricalCrossentropy())
    model.fit(tokens, targets, batch_size=8, epochs=steps // 2, shuffle=False, verbose=0)
    return model


def _optimizer(**settings):
    config = TrainingConfig(epochs=1, learning_rate=0.05, warmup_steps=2, weight_decay=0.1, ema=0.9)
    return make_optimizer(config, 2, **settings)


def test_the_fused_update_is_keras_adamw():
    """On TensorFlow the update runs as fused kernels (clipping, decay, Adam); trained through `fit`,
    with an embedding's row gradients, clipping that binds and a weight average, it gives the
    weights Keras' own AdamW gives (elsewhere both are Keras' AdamW). No token repeats within a
    batch here: see the next test for repeats."""
    rng = np.random.default_rng(0)
    tokens = np.concatenate([rng.permutation(64)[:48].reshape(8, 6) for _ in range(2)]).astype("int32")
    targets = (rng.random((16, 5)) < 0.3).astype("float32")
    fused = _train(_optimizer(), tokens, targets)
    plain = _train(_optimizer(fused=False), tokens, targets)
    for ours, keras_own in zip(fused.weights, plain.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(keras_own), rtol=2e-4, atol=2e-6
        )
    assert not np.allclose(keras.ops.convert_to_numpy(fused.weights[0]), _embedding_model(0).get_weights()[0])


def test_repeated_lookups_are_summed_before_adam_squares_them():
    """A token looked up twice in a batch gives its row the sum of two gradients, and Adam's second
    moment is the square of that sum, as for a dense gradient (tf-keras and PyTorch do the same).
    Keras 3's AdamW squares each lookup's gradient and sums the squares, so a repeated row takes a
    larger step there; the fused update equals Keras' AdamW given the gradient made dense."""
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("row gradients (IndexedSlices) are TensorFlow's")
    rows = tf.IndexedSlices(tf.constant([[3.0, -1.0], [1.0, 2.0]]), tf.constant([0, 0]), tf.constant([2, 2]))
    results = {}
    for name, fused, gradient in (("fused", True, rows), ("dense", False, tf.convert_to_tensor(rows)),
                                  ("keras", False, rows)):  # fmt: skip
        variable = keras.Variable(np.ones((2, 2), dtype="float32"), name="kernel")
        optimizer = _optimizer(fused=fused)
        optimizer.build([variable])
        for _ in range(3):
            optimizer.apply([gradient], [variable])
        results[name] = keras.ops.convert_to_numpy(variable)
    np.testing.assert_allclose(results["fused"], results["dense"], rtol=1e-5)
    assert not np.allclose(results["keras"][0], results["dense"][0], rtol=1e-3)


def test_sparse_updates_leave_rows_no_batch_looks_up():
    """With `sparse_updates`, an embedding row is decayed and updated (its moments too) only in the
    steps that look it up: rows looked up in every step get exactly the dense update, rows never
    looked up keep their weights and zero moments. On other backends the option changes nothing."""
    rng = np.random.default_rng(1)
    start = rng.normal(size=(6, 3)).astype("float32")
    results = {}
    for sparse in (True, False):
        variable = keras.Variable(start, name="embeddings")
        optimizer = _optimizer(sparse_updates=sparse)
        optimizer.build([variable])
        for step in range(6):
            rows = [0, 1, 0] + ([2] if step % 2 else [])  # rows 0 and 1 always, row 2 every other step
            values = rng.normal(size=(len(rows), 3)).astype("float32")
            gradient = keras.ops.convert_to_tensor(np.zeros((6, 3), "float32"))
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                gradient = tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant([6, 3]))
            else:
                dense = np.zeros((6, 3), "float32")
                np.add.at(dense, rows, values)
                gradient = keras.ops.convert_to_tensor(dense)
            optimizer.apply([gradient], [variable])
        results[sparse] = (keras.ops.convert_to_numpy(variable), keras.ops.convert_to_numpy(optimizer._momentums[0]))
        rng = np.random.default_rng(1)
        rng.normal(size=(6, 3))  # the same gradients for the second optimizer
    (sparse_rows, sparse_momentum), (dense_rows, _) = results[True], results[False]
    np.testing.assert_allclose(sparse_rows[:2], dense_rows[:2], rtol=1e-5, atol=1e-7)
    if keras.backend.backend() == "tensorflow":
        np.testing.assert_array_equal(sparse_rows[3:], start[3:])
        assert not sparse_momentum[3:].any() and sparse_momentum[:3].all()
        assert not np.allclose(dense_rows[3:], start[3:])  # dense AdamW decays and moves them
        assert not np.allclose(sparse_rows[2], dense_rows[2])
    else:
        np.testing.assert_allclose(sparse_rows, dense_rows, rtol=1e-5, atol=1e-7)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(_optimizer(sparse_updates=True, fused=False)))
    assert restored.sparse_updates and not restored.fused


def test_the_config_turns_sparse_updates_on():
    assert make_optimizer(TrainingConfig(sparse_embedding_updates=True), 5).sparse_updates
    assert not make_optimizer(TrainingConfig(), 5).sparse_updates
    assert not make_optimizer(TrainingConfig(sparse_embedding_updates=True), 5, sparse_updates=False).sparse_updates


def test_sparse_updates_train_through_fit():
    """In `fit`'s compiled step, rows no batch looks up stay as they were."""
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 40, size=(16, 6)).astype("int32")  # rows 40-63 never looked up
    targets = (rng.random((16, 5)) < 0.3).astype("float32")
    trained = keras.ops.convert_to_numpy(_train(_optimizer(sparse_updates=True), tokens, targets).weights[0])
    start = _embedding_model(0).get_weights()[0]
    assert not np.allclose(trained[:40], start[:40])
    if keras.backend.backend() == "tensorflow":  # to the rounding of the weight average
        np.testing.assert_allclose(trained[40:], start[40:], rtol=1e-6, atol=0)


class _Model:
    stop_training = False


def _checkpoint_run(tmp_path, scores, *, start=0, epochs=None, before_epoch_end=None, **settings):
    """Drive a `BestModelCheckpoint` through epochs scoring `scores` (from epoch `start`) as `fit` would,
    until it stops training; `before_epoch_end(epoch)` runs first at each epoch end. Returns
    `(checkpoint, logged lines)`."""
    messages = []
    checkpoint = BestModelCheckpoint(
        lambda folder: folder.mkdir(), tmp_path / "best", monitor="val_f1", log=messages.append, **settings
    )
    checkpoint.set_model(_Model())
    if epochs is not None:
        checkpoint.set_params({"epochs": epochs})
    checkpoint.on_train_begin()
    for epoch, score in enumerate(scores, start=start):
        if before_epoch_end is not None:
            before_epoch_end(epoch)
        checkpoint.on_epoch_end(epoch, {"val_f1": score})
        if checkpoint.model.stop_training:
            break
    checkpoint.on_train_end()
    return checkpoint, messages


def test_a_time_budget_ends_training_at_the_first_epoch_end_past_it(tmp_path, monkeypatch):
    """`max_seconds` counts the seconds trained before (a resumed run's) and those of this process; the
    epoch that crosses it is finished, scored and kept if best; the last epoch is no budget stop."""
    import toolkit.callbacks

    clock = [100.0]
    monkeypatch.setattr(toolkit.callbacks.time, "monotonic", lambda: clock[0])

    def run(epoch_seconds, epochs=10, **settings):
        def tick(epoch):
            clock[0] += epoch_seconds[epoch]

        scores = [0.1 * (epoch + 1) for epoch in range(len(epoch_seconds))]
        return _checkpoint_run(tmp_path, scores, epochs=epochs, before_epoch_end=tick, **settings)

    budget, messages = run([50, 50, 50, 50], max_seconds=120)
    assert budget.budget_stopped == {"epoch": 3, "minutes": 2.5, "max_minutes": 2.0} and budget.best_epoch == 3
    assert messages == [
        "time budget reached after epoch 3: 2.5 minutes trained (training.max_minutes=2); the best epoch so far is 3"
    ]
    resumed, _ = run([50, 50], max_seconds=120, initial_seconds=100)  # 100 s trained before a restart
    assert resumed.budget_stopped["epoch"] == 1 and resumed.budget_stopped["minutes"] == 2.5
    ended, messages = run([50, 50, 50], epochs=3, max_seconds=120)  # the budget ends with the last epoch
    assert ended.budget_stopped is None and messages == []
    unlimited, _ = run([500, 500])
    assert unlimited.budget_stopped is None and unlimited.best_epoch == 2


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

    def run(scores, start=0, **settings):
        return _checkpoint_run(tmp_path, scores, start=start, **settings)

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
