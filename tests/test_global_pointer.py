"""GlobalPointer and EfficientGlobalPointer against a NumPy reference, on every backend."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from toolkit.spans import EfficientGlobalPointer, GlobalPointer, rotary_embedding  # noqa: E402


def numpy_rope(x):
    """RoPE written out pair by pair: (x[2i], x[2i+1]) rotated by p * 10000^(-2i/d), the rotated pairs
    returned even members first (the layer's order: a permutation, so inner products are RoPE's)."""
    batch, seq = x.shape[:2]
    dim = x.shape[-1]
    out = np.empty_like(x)
    for p in range(seq):
        for i in range(dim // 2):
            angle = p * 10000.0 ** (-2.0 * i / dim)
            a, b = x[:, p, ..., 2 * i], x[:, p, ..., 2 * i + 1]
            out[:, p, ..., 2 * i] = a * np.cos(angle) - b * np.sin(angle)
            out[:, p, ..., 2 * i + 1] = b * np.cos(angle) + a * np.sin(angle)
    return np.concatenate([out[..., 0::2], out[..., 1::2]], axis=-1)


def reference_scores(layer, inputs, mask):
    """The scores from the layer's own weights, computed with loops and NumPy."""
    batch, seq, _ = inputs.shape
    heads, size = layer.heads, layer.head_size
    scores = np.zeros((batch, heads, seq, seq), dtype="float64")
    if isinstance(layer, GlobalPointer):
        kernel, bias = keras.ops.convert_to_numpy(layer.kernel), keras.ops.convert_to_numpy(layer.bias)
        projected = np.einsum("bnd,dhk->bnhk", inputs, kernel) + bias
        start, end = numpy_rope(projected[..., :size]), numpy_rope(projected[..., size:])
        for h in range(heads):
            scores[:, h] = np.einsum("bmd,bnd->bmn", start[:, :, h], end[:, :, h]) / np.sqrt(size)
    else:
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.dense.weights)
        projected = inputs @ kernel + bias
        start, end = numpy_rope(projected[..., :size]), numpy_rope(projected[..., size:])
        shared = np.einsum("bmd,bnd->bmn", start, end) / np.sqrt(size)
        bias_kernel, bias_bias = (keras.ops.convert_to_numpy(w) for w in layer.bias_dense.weights)
        biases = (inputs @ bias_kernel + bias_bias) / 2  # [batch, seq, 2 * heads]
        for h in range(heads):
            scores[:, h] = shared + biases[:, :, 2 * h][:, :, None] + biases[:, :, 2 * h + 1][:, None, :]
    for b in range(batch):
        for m in range(seq):
            for n in range(seq):
                if m > n or not mask[b, m] or not mask[b, n]:
                    scores[b, :, m, n] = -np.inf
    return scores


@pytest.mark.parametrize("layer_class", [GlobalPointer, EfficientGlobalPointer])
def test_scores_match_the_numpy_reference(layer_class):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(3, 7, 16)).astype("float32")
    mask = np.ones((3, 7), dtype=bool)
    mask[1, 5:] = False
    mask[2, 2:] = False
    layer = layer_class(heads=3, head_size=8)
    scores = np.asarray(keras.ops.convert_to_numpy(layer(inputs, mask=mask)))
    expected = reference_scores(layer, inputs.astype("float64"), mask)
    assert scores.shape == (3, 3, 7, 7)
    assert np.array_equal(np.isneginf(scores), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(scores[finite], expected[finite], rtol=1e-4, atol=1e-4)


def test_rope_matches_the_pairwise_rotation():
    x = np.random.default_rng(1).normal(size=(2, 5, 3, 6)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rotary_embedding(x)), numpy_rope(x), rtol=1e-5, atol=1e-5)


def test_rope_makes_scores_depend_on_distance_only():
    """With RoPE, the same start and end vectors score the same wherever the span sits."""
    vector = np.random.default_rng(2).normal(size=(8,)).astype("float32")
    x = np.tile(vector, (1, 6, 1))
    rotated = keras.ops.convert_to_numpy(rotary_embedding(x))
    dots = rotated[0] @ rotated[0].T
    np.testing.assert_allclose(dots[0, 2], dots[3, 5], rtol=1e-5)


@pytest.mark.parametrize("layer_class", [GlobalPointer, EfficientGlobalPointer])
def test_serialisation_round_trips(layer_class, tmp_path):
    inputs = keras.Input((None, 12))
    outputs = layer_class(heads=2, head_size=4, rope=False, tril_mask=False, name="spans")(inputs)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(3).normal(size=(2, 5, 12)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    config = loaded.get_layer("spans").get_config()
    assert (config["heads"], config["head_size"], config["rope"], config["tril_mask"]) == (2, 4, False, False)


@pytest.mark.parametrize("value", [0, 3.0, True])
def test_bad_sizes_are_named(value):
    with pytest.raises(ValueError, match="heads must be a positive integer"):
        GlobalPointer(heads=value, head_size=4)
    with pytest.raises(ValueError, match="head_size must be even"):
        GlobalPointer(heads=2, head_size=5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("layer_class", [GlobalPointer, EfficientGlobalPointer])
def test_the_sparse_loss_over_every_span_stays_finite_in_half_precision(layer_class, policy):
    """`[batch, heads, L * L]` at L = 256: -inf entries (lower triangle, padding) and half precision."""
    from toolkit.losses import SparseMultilabelCategoricalCrossentropy

    length, heads = 256, 3
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        tokens = keras.Input((length, 32))
        scores = layer_class(heads=heads, head_size=16, name="spans")(tokens)
        flat = keras.layers.Reshape((heads, length * length), dtype="float32")(scores)
        model = keras.Model(tokens, flat)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SparseMultilabelCategoricalCrossentropy())
        rng = np.random.default_rng(4)
        x = (rng.normal(size=(2, length, 32)) * 30).astype("float32")  # large activations: big half-precision scores
        starts = rng.integers(0, length, size=(2, heads, 4))
        ends = np.minimum(starts + rng.integers(0, 5, size=starts.shape), length - 1)
        y = (starts * length + ends).astype("int32")
        y[:, :, -1] = -1  # padding
        history = model.fit(x, y, epochs=3, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in model.weights)
    assert str(model.get_layer("spans").compute_dtype) == policy.split("_")[1]
