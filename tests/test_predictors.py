"""The scikit-learn style predictor: decisions at 0, labels, probabilities, saving."""

import keras
import numpy as np
import pytest

from toolkit.predictors import MultilabelPredictor
from toolkit.saved import SavedModelError

LABELS = ["sports", "politics", "tech", "health"]


def fixed_logits_model(logits_per_row):
    """A model mapping row index i (as a float input) to the given logits."""
    table = np.asarray(logits_per_row, np.float32)
    inputs = keras.Input((len(table),))
    outputs = keras.layers.Dense(table.shape[1], use_bias=False, kernel_initializer=keras.initializers.Constant(0.0))(
        inputs
    )
    model = keras.Model(inputs, outputs)
    model.layers[-1].kernel.assign(table)
    return model, np.eye(len(table), dtype=np.float32)


LOGITS = [[2.0, -1.0, 0.5, -3.0], [-1.0, -2.0, -0.5, -4.0], [0.0, 1e4, -1e4, 3.0]]


def test_decisions_are_logits_above_zero():
    model, x = fixed_logits_model(LOGITS)
    predictor = MultilabelPredictor(model, LABELS, batch_size=2)
    np.testing.assert_allclose(predictor.decision_function(x), LOGITS, rtol=1e-6)
    np.testing.assert_array_equal(predictor.predict(x), np.array(LOGITS) > 0)
    assert predictor.predict_labels(x) == [["sports", "tech"], [], ["politics", "health"]]
    assert list(predictor.classes_) == LABELS
    scored = predictor.predict_scored(x)
    assert [label for label, _ in scored[2]] == ["politics", "health"]


def test_at_least_one_falls_back_to_the_top_label():
    model, x = fixed_logits_model(LOGITS)
    predictor = MultilabelPredictor(model, LABELS, at_least_one=True)
    assert predictor.predict_labels(x)[1] == ["tech"]
    assert predictor.predict_labels(x)[0] == ["sports", "tech"]


def test_min_and_max_labels_add_the_highest_missing_and_drop_the_lowest_extra(rng):
    model, x = fixed_logits_model(LOGITS)
    two = MultilabelPredictor(model, LABELS, min_labels=2)
    assert two.predict_labels(x) == [["sports", "tech"], ["sports", "tech"], ["politics", "health"]]
    one = MultilabelPredictor(model, LABELS, max_labels=1)
    assert one.predict_labels(x) == [["sports"], [], ["politics"]]
    both = MultilabelPredictor(model, LABELS, min_labels=1, max_labels=1)
    assert both.predict_labels(x) == [["sports"], ["tech"], ["politics"]]
    # Against a row-by-row reference on random logits: above 0, then topped up or cut by rank.
    logits = rng.normal(size=(300, 4)).astype(np.float32) - 0.8
    for least, most in ((0, None), (2, None), (0, 2), (1, 3), (3, 3)):
        decided = MultilabelPredictor(model, LABELS, min_labels=least, max_labels=most).predict_from_logits(logits)
        for row, chosen in zip(logits, decided):
            order = list(np.argsort(-row, kind="stable"))
            count = int((row > 0).sum())
            keep = min(max(count, least), most if most is not None else 4)
            assert sorted(np.flatnonzero(chosen)) == sorted(order[:keep])


def test_decision_rule_settings_are_checked():
    model, _ = fixed_logits_model(LOGITS)
    with pytest.raises(ValueError, match="min_labels must be an integer >= 0; got -1"):
        MultilabelPredictor(model, LABELS, min_labels=-1)
    with pytest.raises(ValueError, match="max_labels must be an integer >= 1 or None; got 0"):
        MultilabelPredictor(model, LABELS, max_labels=0)
    with pytest.raises(ValueError, match=r"min_labels \(5\) is more than the 4 labels"):
        MultilabelPredictor(model, LABELS, min_labels=5)
    with pytest.raises(ValueError, match=r"min_labels \(3\) is more than max_labels \(2\)"):
        MultilabelPredictor(model, LABELS, min_labels=3, max_labels=2)


def test_probabilities_are_sigmoid_of_twice_the_logit_and_agree_with_predict():
    model, x = fixed_logits_model(LOGITS)
    predictor = MultilabelPredictor(model, LABELS)
    probabilities = predictor.predict_proba(x)
    expected = 1.0 / (1.0 + np.exp(-2.0 * np.clip(np.array(LOGITS), -50, 50)))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6, atol=1e-30)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_array_equal(probabilities > 0.5, predictor.predict(x) == 1)


def test_soft_label_loss_is_minimised_at_sigmoid_two_s():
    """The docstring's claim, checked numerically on the one-label loss."""
    for target in (0.1, 0.5, 0.83):
        grid = np.linspace(-6, 6, 200001)
        loss = np.log1p((1 - target) * np.exp(grid)) + np.log1p(target * np.exp(-grid))
        best = grid[np.argmin(loss)]
        assert 1.0 / (1.0 + np.exp(-2 * best)) == pytest.approx(target, abs=1e-4)


def test_batching_covers_large_inputs(rng):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    x = rng.normal(size=(1003, 3)).astype(np.float32)
    predictor = MultilabelPredictor(model, LABELS, batch_size=100)
    np.testing.assert_allclose(
        predictor.decision_function(x), keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )


def test_save_and_load_keep_labels_and_settings(tmp_path):
    model, x = fixed_logits_model(LOGITS)
    predictor = MultilabelPredictor(model, LABELS, batch_size=7, at_least_one=True, max_labels=3)
    predictor.save(tmp_path / "predictor")
    assert sorted(p.name for p in (tmp_path / "predictor").iterdir()) == ["model.keras", "predictor.json"]
    restored = MultilabelPredictor.load(tmp_path / "predictor")
    assert restored.label_names == LABELS and restored.batch_size == 7 and restored.at_least_one
    assert (restored.min_labels, restored.max_labels) == (0, 3)
    assert restored.predict_labels(x) == predictor.predict_labels(x)
    assert MultilabelPredictor.load(tmp_path / "predictor", at_least_one=False).predict_labels(x)[1] == []


def test_errors_say_what_is_wrong(tmp_path):
    model, _ = fixed_logits_model(LOGITS)
    with pytest.raises(ValueError, match="outputs 4 logits per row but 3 label names"):
        MultilabelPredictor(model, LABELS[:3])
    with pytest.raises(ValueError, match=r"label_names must be unique; repeated: \['tech'\]"):
        MultilabelPredictor(model, ["tech", "a", "tech", "b"])
    with pytest.raises(ValueError, match="batch_size must be a positive integer. Got 0"):
        MultilabelPredictor(model, LABELS, batch_size=0)
    with pytest.raises(SavedModelError, match="not a folder written by MultilabelPredictor.save"):
        MultilabelPredictor.load(tmp_path)
