"""The metrics layer in a multi-input training graph, and conditional layer norm."""

import keras
import numpy as np
import pytest
from sklearn import metrics as skm

from tests.backend_utils import to_numpy
from toolkit.layers import ConditionalLayerNormalization, MultilabelMetrics, metric_from_name
from toolkit.losses import multilabel_categorical_crossentropy


def tagging_problem(rng, rows=64, length=12, vocabulary=50):
    token_ids = rng.integers(1, vocabulary, size=(rows, length)).astype("int32")
    token_ids[:, 9:] = 0  # padding
    tags = ((token_ids % 3 == 0) & (token_ids > 0)).astype("float32")
    return token_ids, tags


def tagging_model(vocabulary=50, metrics=("micro_f1", "subset_accuracy"), loss_weight=1.0):
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    labels = keras.Input((None,), name="labels")
    logits = keras.layers.Dense(1)(keras.layers.Embedding(vocabulary, 16)(token_ids))
    logits = keras.layers.Reshape((-1,))(logits)
    logits = MultilabelMetrics(list(metrics), prefix="tag_", loss_weight=loss_weight)(logits, labels, token_ids > 0)
    return keras.Model([token_ids, labels], logits)


jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="checks the JAX error message")
not_jax = pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="JAX's stateless training step cannot carry in-layer metric updates"
)


@not_jax
def test_metrics_layer_reports_metrics_and_loss_in_fit_and_evaluate(rng):
    token_ids, tags = tagging_problem(rng)
    model = tagging_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    history = model.fit([token_ids, tags], epochs=2, batch_size=16, verbose=0)
    assert {"loss", "tag_micro_f1", "tag_subset_accuracy"} <= set(history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]

    logs = model.evaluate([token_ids, tags], batch_size=16, verbose=0, return_dict=True)
    logits = to_numpy(model.predict([token_ids, tags], verbose=0))
    mask = token_ids > 0
    expected_f1 = skm.f1_score(tags[mask].astype(int), (logits[mask] > 0).astype(int))
    np.testing.assert_allclose(logs["tag_micro_f1"], expected_f1, rtol=1e-5)
    expected_loss = np.mean(to_numpy(multilabel_categorical_crossentropy(tags, logits, mask=mask)))
    np.testing.assert_allclose(logs["loss"], expected_loss, rtol=1e-4)


@not_jax
def test_metrics_layer_passes_logits_through_and_reloads(tmp_path, rng):
    token_ids, tags = tagging_problem(rng, rows=8)
    model = tagging_model(metrics=("micro_recall",), loss_weight=None)
    before = to_numpy(model.predict([token_ids, tags], verbose=0))
    reshape = [layer for layer in model.layers if isinstance(layer, keras.layers.Reshape)][0]
    inner = keras.Model(model.inputs[0], reshape.output)
    np.testing.assert_allclose(before, to_numpy(inner.predict(token_ids, verbose=0)), rtol=1e-6)
    model.save(tmp_path / "tagger.keras")
    restored = keras.models.load_model(tmp_path / "tagger.keras")
    layer = [layer for layer in restored.layers if isinstance(layer, MultilabelMetrics)][0]
    assert layer.metric_names == ["micro_recall"] and layer.prefix == "tag_" and layer.loss_weight is None
    np.testing.assert_allclose(to_numpy(restored.predict([token_ids, tags], verbose=0)), before, rtol=1e-6)


@jax_only
def test_metrics_layer_on_jax_says_what_to_use_instead(rng):
    token_ids, tags = tagging_problem(rng, rows=16)
    model = tagging_model()
    model.compile(optimizer="adam")
    with pytest.raises(RuntimeError, match="pass toolkit.metrics objects to model.compile"):
        model.fit([token_ids, tags], epochs=1, verbose=0)


def test_per_class_metrics_need_a_known_number_of_classes():
    with pytest.raises(ValueError, match=r"MultilabelRecall\(average='macro'\) keeps one count per class"):
        tagging_model(metrics=("macro_recall",))


def test_metric_names():
    assert metric_from_name("macro_precision").average == "macro"
    assert metric_from_name("f1").average is None
    assert metric_from_name("subset_accuracy", prefix="s_").name == "s_subset_accuracy"
    with pytest.raises(ValueError, match="Unknown metric name 'micro_f2'. Expected one of: subset_accuracy, micro_f1"):
        metric_from_name("micro_f2")


def layer_norm_reference(x, condition, layer):
    weights = {w.name: to_numpy(w) for w in layer.weights}
    gamma = weights["gamma"] + condition @ weights["gamma_kernel"]
    beta = weights["beta"] + condition @ weights["beta_kernel"]
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + layer.epsilon) * gamma[:, None, :] + beta[:, None, :]


def test_conditional_layer_norm_starts_as_layer_norm_and_uses_the_condition(rng, tmp_path):
    x = rng.normal(size=(3, 5, 8)).astype(np.float32)
    condition = rng.normal(size=(3, 4)).astype(np.float32)
    layer = ConditionalLayerNormalization()
    out = to_numpy(layer(x, condition))
    plain = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    np.testing.assert_allclose(out, plain, rtol=1e-4, atol=1e-5)

    layer.gamma_kernel.assign(rng.normal(size=(4, 8)).astype(np.float32))
    layer.beta_kernel.assign(rng.normal(size=(4, 8)).astype(np.float32))
    np.testing.assert_allclose(
        to_numpy(layer(x, condition)), layer_norm_reference(x, condition, layer), rtol=1e-4, atol=1e-5
    )

    sequence, subject = keras.Input((None, 8)), keras.Input((4,))
    model = keras.Model(
        [sequence, subject], ConditionalLayerNormalization(hidden_units=3, hidden_activation="relu")(sequence, subject)
    )
    model.save(tmp_path / "cln.keras")
    restored = keras.models.load_model(tmp_path / "cln.keras")
    restored_layer = restored.layers[-1]
    assert restored_layer.hidden_units == 3 and restored_layer.epsilon == 1e-12
    np.testing.assert_allclose(to_numpy(restored([x, condition])), to_numpy(model([x, condition])), rtol=1e-6)


def test_conditional_layer_norm_rejects_unknown_widths():
    layer = ConditionalLayerNormalization()
    with pytest.raises(ValueError, match="needs known last axes"):
        layer.build((None, 5, None), (None, 4))
