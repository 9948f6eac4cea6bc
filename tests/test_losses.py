"""The loss against a float64 NumPy reference, on whichever backend runs the suite."""

import keras
import numpy as np
import pytest

from tests.backend_utils import to_numpy, value_and_gradient
from toolkit.losses import (
    MultilabelCategoricalCrossentropy,
    SparseMultilabelCategoricalCrossentropy,
    multilabel_categorical_crossentropy,
    sparse_multilabel_categorical_crossentropy,
)


def reference_loss_and_gradient(targets, logits, mask=None):
    """Float64 value and gradient of log(1 + sum (1-t) e^s) + log(1 + sum t e^-s)."""
    targets = np.asarray(targets, np.float64)
    logits = np.asarray(logits, np.float64)
    usable = ~np.isneginf(logits)
    if mask is not None:
        usable &= np.broadcast_to(np.asarray(mask, bool), logits.shape)
    safe_logits = np.where(usable, logits, 0.0)

    def log1p_sum_exp(x, weight):
        with np.errstate(divide="ignore"):
            z = np.where(weight > 0, x + np.log(np.where(weight > 0, weight, 1.0)), -np.inf)
        zero = np.zeros(z.shape[:-1] + (1,))
        total = np.logaddexp.reduce(np.concatenate([zero, z], axis=-1), axis=-1)
        return total, np.exp(z - total[..., None])  # value, d value / d x

    negative, negative_grad = log1p_sum_exp(safe_logits, (1.0 - targets) * usable)
    positive, positive_grad = log1p_sum_exp(-safe_logits, targets * usable)
    return negative + positive, negative_grad - positive_grad


def random_problem(rng, shape, positive_rate=0.3, scale=4.0):
    logits = (rng.normal(size=shape) * scale).astype(np.float32)
    targets = (rng.random(shape) < positive_rate).astype(np.float32)
    return targets, logits


def assert_matches_reference(targets, logits, mask=None, rtol=1e-5):
    value, gradient = value_and_gradient(lambda s: multilabel_categorical_crossentropy(targets, s, mask=mask), logits)
    expected_value, expected_gradient = reference_loss_and_gradient(targets, logits, mask)
    np.testing.assert_allclose(value, expected_value, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("shape", [(8, 13), (3, 4, 9), (2, 1)])
def test_dense_matches_reference_value_and_gradient(rng, shape):
    targets, logits = random_problem(rng, shape)
    assert_matches_reference(targets, logits)


def test_soft_labels_match_reference(rng):
    logits = (rng.normal(size=(6, 10)) * 3).astype(np.float32)
    targets = rng.random((6, 10)).astype(np.float32)
    targets[:, :3] = 0.0
    targets[:, 3:5] = 1.0
    assert_matches_reference(targets, logits)


def test_soft_loss_equals_hard_loss_for_binary_targets(rng):
    targets, logits = random_problem(rng, (5, 7))
    hard = reference_loss_and_gradient(targets, logits)[0]
    np.testing.assert_allclose(to_numpy(multilabel_categorical_crossentropy(targets, logits)), hard, rtol=1e-6)


def test_extreme_logits_give_exact_values_and_gradients():
    logits = np.array([[1e4, -1e4, 3.0, -5.0, 1e4 - 1.0], [-1e4, -1e4, -1e4, 1e4, 2.0]], np.float32)
    targets = np.array([[1, 0, 1, 1, 0], [0, 1, 0, 1, 0]], np.float32)
    assert_matches_reference(targets, logits)
    value = to_numpy(multilabel_categorical_crossentropy(targets, logits))
    assert np.all(np.isfinite(value))
    # The positive at -1e4 costs 1e4; the negatives cost log(1 + e^-1e4 + e^-1e4 + e^2).
    assert value[1] == pytest.approx(1e4 + np.log1p(np.exp(2.0)), rel=1e-6)


def test_rows_without_positives_or_without_negatives(rng):
    logits = (rng.normal(size=(2, 6)) * 3).astype(np.float32)
    targets = np.stack([np.zeros(6), np.ones(6)]).astype(np.float32)
    assert_matches_reference(targets, logits)


def test_negative_infinity_logits_are_masked(rng):
    targets, logits = random_problem(rng, (4, 8))
    logits[:, 6:] = -np.inf
    targets_with_padding = targets.copy()
    targets_with_padding[:, 6:] = 1.0  # positives at padded positions must not count
    value, gradient = value_and_gradient(lambda s: multilabel_categorical_crossentropy(targets_with_padding, s), logits)
    expected = reference_loss_and_gradient(targets[:, :6], logits[:, :6])
    np.testing.assert_allclose(value, expected[0], rtol=1e-5)
    np.testing.assert_allclose(gradient[:, :6], expected[1], rtol=1e-5, atol=1e-7)
    assert np.all(gradient[:, 6:] == 0)


def test_explicit_mask_broadcasts_and_equals_dropping_the_entries(rng):
    targets, logits = random_problem(rng, (3, 2, 9))
    mask = np.ones((3, 1, 9), bool)
    mask[0, :, 5:] = False
    mask[2, :, 0] = False
    assert_matches_reference(targets, logits, mask=mask)
    value = to_numpy(multilabel_categorical_crossentropy(targets, logits, mask=mask))
    dropped = reference_loss_and_gradient(targets[0, :, :5], logits[0, :, :5])[0]
    np.testing.assert_allclose(value[0], dropped, rtol=1e-5)


def test_fully_masked_row_has_zero_loss_and_zero_gradient(rng):
    targets, logits = random_problem(rng, (2, 5))
    mask = np.array([[False] * 5, [True] * 5])
    value, gradient = value_and_gradient(lambda s: multilabel_categorical_crossentropy(targets, s, mask=mask), logits)
    assert value[0] == 0.0
    assert np.all(gradient[0] == 0.0)
    all_padding = np.full((1, 4), -np.inf, np.float32)
    value, gradient = value_and_gradient(lambda s: multilabel_categorical_crossentropy(np.ones((1, 4)), s), all_padding)
    assert value[0] == 0.0 and np.all(np.isfinite(gradient))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_half_precision_logits_compute_in_float32(policy):
    logits = np.array([[300.0, -300.0, 60000.0, 2.0]], np.float32)
    targets = np.array([[0, 1, 1, 0]], np.float32)
    half = "float16" if policy == "mixed_float16" else "bfloat16"
    half_logits = keras.ops.cast(logits, half)
    value = multilabel_categorical_crossentropy(targets, half_logits)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    expected = reference_loss_and_gradient(targets, to_numpy(keras.ops.cast(half_logits, "float32")))[0]
    np.testing.assert_allclose(to_numpy(value), expected, rtol=1e-5)

    keras.config.set_dtype_policy(policy)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(6, kernel_initializer=keras.initializers.Constant(50.0))(inputs))
    model.compile(optimizer="sgd", loss=MultilabelCategoricalCrossentropy())
    history = model.fit(np.ones((8, 4)) * 40, np.eye(6)[np.arange(8) % 6], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def dense_to_indices(targets, pad=-1, offset=0):
    width = max(1, int(targets.sum(axis=-1).max()))
    indices = np.full(targets.shape[:-1] + (width,), pad, np.int32)
    for row in np.ndindex(targets.shape[:-1]):
        positive = np.flatnonzero(targets[row]) + offset
        indices[row][: len(positive)] = positive
    return indices


@pytest.mark.parametrize("shape", [(6, 11), (2, 3, 7)])
def test_sparse_equals_dense(rng, shape):
    targets, logits = random_problem(rng, shape)
    indices = dense_to_indices(targets)
    value, gradient = value_and_gradient(lambda s: sparse_multilabel_categorical_crossentropy(indices, s), logits)
    expected_value, expected_gradient = reference_loss_and_gradient(targets, logits)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-7)


def test_sparse_mask_zero_reserves_class_zero(rng):
    targets, logits = random_problem(rng, (5, 9))
    targets[:, 0] = 0.0
    indices = dense_to_indices(targets, pad=0)
    value = to_numpy(sparse_multilabel_categorical_crossentropy(indices, logits, mask_zero=True))
    expected = reference_loss_and_gradient(targets[:, 1:], logits[:, 1:])[0]
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_sparse_duplicates_count_once_and_every_class_positive_is_exact():
    logits = np.array([[40.0, 35.0, 38.0], [1.0, 2.0, 3.0]], np.float32)
    indices = np.array([[0, 1, 2, 2], [1, 1, -1, -1]], np.int32)
    targets = np.array([[1, 1, 1], [0, 1, 0]], np.float32)
    value, gradient = value_and_gradient(lambda s: sparse_multilabel_categorical_crossentropy(indices, s), logits)
    expected_value, expected_gradient = reference_loss_and_gradient(targets, logits)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-12)
    assert np.all(value >= 0) and np.all(np.isfinite(gradient))


def test_sparse_never_negative_when_positives_dominate(rng):
    logits = np.concatenate([np.full((4, 3), 30.0), rng.normal(size=(4, 50)) - 20.0], axis=-1).astype(np.float32)
    indices = np.tile(np.array([[0, 1, 2]], np.int32), (4, 1))
    value = to_numpy(sparse_multilabel_categorical_crossentropy(indices, logits))
    assert np.all(value >= 0)
    targets = np.zeros_like(logits)
    targets[:, :3] = 1
    np.testing.assert_allclose(value, reference_loss_and_gradient(targets, logits)[0], rtol=1e-5, atol=1e-12)


def test_loss_classes_round_trip_their_config():
    loss = SparseMultilabelCategoricalCrossentropy(mask_zero=True, reduction="sum", name="sparse")
    clone = SparseMultilabelCategoricalCrossentropy.from_config(loss.get_config())
    assert clone.mask_zero is True and clone.reduction == "sum" and clone.name == "sparse"
    dense = MultilabelCategoricalCrossentropy.from_config(MultilabelCategoricalCrossentropy().get_config())
    assert dense.name == "multilabel_categorical_crossentropy"
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SparseMultilabelCategoricalCrossentropy) and restored.mask_zero


def test_loss_class_reduces_like_keras(rng):
    targets, logits = random_problem(rng, (6, 5))
    per_row = reference_loss_and_gradient(targets, logits)[0]
    weights = rng.random(6).astype(np.float32)
    value = to_numpy(MultilabelCategoricalCrossentropy()(targets, logits, sample_weight=weights))
    np.testing.assert_allclose(value, np.mean(per_row * weights), rtol=1e-5)
    indices = dense_to_indices(targets)
    sparse_value = to_numpy(SparseMultilabelCategoricalCrossentropy()(indices, logits))
    np.testing.assert_allclose(sparse_value, per_row.mean(), rtol=1e-5)


def test_saved_model_with_the_loss_reloads_without_custom_objects(tmp_path, rng):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer="adam", loss=SparseMultilabelCategoricalCrossentropy(mask_zero=True))
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = np.array([[1, 2], [2, 0]] * 4, np.int32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(restored.loss, SparseMultilabelCategoricalCrossentropy)
    assert restored.loss.mask_zero is True
    np.testing.assert_allclose(restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5)


def test_training_with_the_loss_learns_a_separable_problem(rng):
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x[:, :4] > 0).astype(np.float32)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=MultilabelCategoricalCrossentropy())
    model.fit(x, y, epochs=30, batch_size=64, verbose=0)
    accuracy = np.mean((to_numpy(model(x)) > 0) == (y > 0))
    assert accuracy > 0.97


def test_sparse_reads_an_unknown_class_count_at_run_time(rng):
    """A graph traced for any sequence length (GlobalPointer's seq * seq classes) computes the same loss."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("only TensorFlow traces a graph with an unknown last axis")
    import tensorflow as tf

    targets, logits = random_problem(rng, (4, 3, 25))
    indices = dense_to_indices(targets.reshape(-1, 25)).reshape(4, 3, -1)
    traced = tf.function(
        lambda y, s: sparse_multilabel_categorical_crossentropy(y, s),
        input_signature=[tf.TensorSpec((None, None, None), tf.int32), tf.TensorSpec((None, None, None), tf.float32)],
    )
    expected, _ = reference_loss_and_gradient(targets, logits)
    np.testing.assert_allclose(to_numpy(traced(indices.astype("int32"), logits)), expected, rtol=1e-5, atol=1e-6)
