"""Metrics against scikit-learn, across many update_state calls and resets."""

import warnings

import keras
import numpy as np
import pytest
from sklearn import metrics as skm

from tests.backend_utils import to_numpy
from toolkit.metrics import MultilabelF1Score, MultilabelPrecision, MultilabelRecall, SubsetAccuracy

SCORES = [
    (MultilabelF1Score, skm.f1_score),
    (MultilabelPrecision, skm.precision_score),
    (MultilabelRecall, skm.recall_score),
]
AVERAGES = ["micro", "macro", "weighted", "samples", None]


def random_batch(rng, rows=60, classes=7):
    targets = (rng.random((rows, classes)) < 0.3).astype(np.int32)
    logits = rng.normal(size=(rows, classes)).astype(np.float32)
    targets[:, -1] = 0  # a class with no support ...
    logits[:, -1] = -1.0  # ... and no predictions: zero_division decides its score
    targets[:3] = 0  # rows with no labels ...
    logits[:3] = -1.0  # ... and no predictions
    return targets, logits


def sklearn_score(function, targets, logits, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(targets, (logits > 0).astype(np.int32), **kwargs)


@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("metric_class,function", SCORES)
def test_matches_sklearn_over_many_updates_and_after_reset(rng, metric_class, function, average, zero_division):
    targets, logits = random_batch(rng)
    weights = rng.random(len(targets)).astype(np.float32)
    metric = metric_class(average=average, zero_division=zero_division)
    for start in range(0, len(targets), 7):
        metric.update_state(
            targets[start : start + 7], logits[start : start + 7], sample_weight=weights[start : start + 7]
        )
    expected = sklearn_score(
        function, targets, logits, average=average, zero_division=zero_division, sample_weight=weights
    )
    np.testing.assert_allclose(to_numpy(metric.result()), expected, rtol=1e-6, atol=1e-6)

    metric.reset_state()
    other_targets, other_logits = random_batch(np.random.default_rng(7), rows=25)
    metric.update_state(other_targets, other_logits)
    expected = sklearn_score(function, other_targets, other_logits, average=average, zero_division=zero_division)
    np.testing.assert_allclose(to_numpy(metric.result()), expected, rtol=1e-6, atol=1e-6)


def test_threshold_is_on_the_logit_scale(rng):
    targets, logits = random_batch(rng)
    metric = MultilabelF1Score(threshold=0.7)
    metric.update_state(targets, logits)
    expected = skm.f1_score(targets, (logits > 0.7).astype(int), average="micro")
    np.testing.assert_allclose(to_numpy(metric.result()), expected, rtol=1e-6)


def test_subset_accuracy_matches_sklearn(rng):
    targets, logits = random_batch(rng)
    targets[10] = (logits[10] > 0).astype(np.int32)  # at least one exact row
    metric = SubsetAccuracy()
    metric.update_state(targets[:30], logits[:30])
    metric.update_state(targets[30:], logits[30:])
    expected = skm.accuracy_score(targets, (logits > 0).astype(int))
    np.testing.assert_allclose(to_numpy(metric.result()), expected, rtol=1e-6)
    metric.reset_state()
    assert float(to_numpy(metric.result())) == 0.0


def test_mask_drops_entries_and_fully_masked_rows(rng):
    """Sequence logits [batch, heads, seq] with padding: masked entries count nowhere."""
    targets = (rng.random((4, 2, 9)) < 0.3).astype(np.int32)
    logits = rng.normal(size=(4, 2, 9)).astype(np.float32)
    lengths = np.array([9, 5, 0, 2])
    mask = np.arange(9)[None, None, :] < lengths[:, None, None]
    # Garbage at padded positions must not matter.
    noisy_logits = np.where(mask, logits, 5.0).astype(np.float32)
    noisy_targets = np.where(mask, targets, 0)

    rows = [(b, h) for b in range(4) for h in range(2) if lengths[b] > 0]
    flat_true = np.concatenate([targets[b, h, : lengths[b]] for b, h in rows])
    flat_pred = np.concatenate([(logits[b, h, : lengths[b]] > 0).astype(int) for b, h in rows])
    micro = MultilabelF1Score(average="micro")
    micro.update_state(noisy_targets, noisy_logits, mask=mask)
    np.testing.assert_allclose(to_numpy(micro.result()), skm.f1_score(flat_true, flat_pred), rtol=1e-6)

    per_row = []
    for b, h in rows:
        row_true, row_pred = targets[b, h, : lengths[b]], (logits[b, h, : lengths[b]] > 0).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_row.append(skm.f1_score(row_true, row_pred, zero_division=0.0))
    samples = MultilabelF1Score(average="samples")
    samples.update_state(noisy_targets, noisy_logits, mask=mask)
    np.testing.assert_allclose(to_numpy(samples.result()), np.mean(per_row), rtol=1e-6)

    subset = SubsetAccuracy()
    subset.update_state(noisy_targets, noisy_logits, mask=mask)
    exact = [np.array_equal(targets[b, h, : lengths[b]], (logits[b, h, : lengths[b]] > 0)) for b, h in rows]
    np.testing.assert_allclose(to_numpy(subset.result()), np.mean(exact), rtol=1e-6)


def test_per_class_metrics_infer_num_classes_and_reject_a_change(rng):
    targets, logits = random_batch(rng)
    metric = MultilabelRecall(average="macro")
    metric.update_state(targets, logits)
    assert metric.num_classes == targets.shape[1]
    with pytest.raises(ValueError, match="expected logits with 7 classes"):
        metric.update_state(targets[:, :3], logits[:, :3])


@pytest.mark.parametrize("metric_class", [MultilabelF1Score, MultilabelPrecision, MultilabelRecall])
def test_argument_errors_name_the_argument_and_value(metric_class):
    name = metric_class.__name__
    with pytest.raises(ValueError, match=rf"The 'average' argument of {name} must be one of .*Got 'binary' instead"):
        metric_class(average="binary")
    with pytest.raises(ValueError, match=rf"The 'zero_division' argument of {name} must be 0.0 or 1.0. Got 'warn'"):
        metric_class(zero_division="warn")
    with pytest.raises(ValueError, match=rf"The 'threshold' argument of {name} must be a finite number.*Got nan"):
        metric_class(threshold=float("nan"))
    with pytest.raises(ValueError, match=rf"The 'num_classes' argument of {name} must be a positive integer.*Got 0"):
        metric_class(num_classes=0)
    with pytest.raises(ValueError, match="The 'threshold' argument of SubsetAccuracy must be a finite number"):
        SubsetAccuracy(threshold="0")


def test_configs_round_trip():
    metric = MultilabelF1Score(threshold=0.5, average="macro", num_classes=4, zero_division=1.0, name="f")
    clone = MultilabelF1Score.from_config(metric.get_config())
    assert (clone.threshold, clone.average, clone.num_classes, clone.zero_division, clone.name) == (
        0.5,
        "macro",
        4,
        1.0,
        "f",
    )
    assert SubsetAccuracy.from_config(SubsetAccuracy(threshold=1.5).get_config()).threshold == 1.5
    assert MultilabelPrecision(average=None).name == "precision"
    assert MultilabelRecall(average="samples").name == "samples_recall"


def test_metrics_in_compile_and_a_saved_model_reload(tmp_path, rng):
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.float32)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    from toolkit.losses import MultilabelCategoricalCrossentropy

    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=MultilabelCategoricalCrossentropy(),
        metrics=[MultilabelF1Score(average="micro"), MultilabelF1Score(average="macro"), SubsetAccuracy()],
    )
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert {"micro_f1", "macro_f1", "subset_accuracy"} <= set(history.history)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    predictions = (to_numpy(model(x)) > 0).astype(int)
    np.testing.assert_allclose(logs["micro_f1"], skm.f1_score(y, predictions, average="micro"), rtol=1e-5)
    np.testing.assert_allclose(logs["macro_f1"], skm.f1_score(y, predictions, average="macro"), rtol=1e-5)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    restored_logs = restored.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(restored_logs["micro_f1"], logs["micro_f1"], rtol=1e-6)
