"""toolkit.compat.bert4keras against bert4keras 0.11.5, the Keras 3 loss and scikit-learn.

bert4keras and Keras 3 cannot share a process (see `toolkit.compat.bert4keras`),
so everything tf-keras runs in subprocesses started with the legacy setting
(`TF_KERAS=1 TF_USE_LEGACY_KERAS=1`): this file run as a script is the worker.
It writes its results to a `.npz` file; the tests compare them with the
toolkit's Keras 3 loss (computed here, on the suite's backend) and with
scikit-learn.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "bert4keras_interop.py"
TOLERANCE = 1e-6

requires_bert4keras = pytest.mark.skipif(
    importlib.util.find_spec("bert4keras") is None or importlib.util.find_spec("tf_keras") is None,
    reason='needs bert4keras and tf-keras: pip install "tf-keras==2.21.*" && pip install --no-deps bert4keras==0.11.5',
)


def legacy_environment():
    environment = dict(os.environ, TF_KERAS="1", TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    environment.pop("KERAS_BACKEND", None)
    return environment


def run_python(arguments, environment, timeout):
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, arguments))} failed ({completed.returncode}):\n"
            f"{completed.stdout[-4000:]}\n{completed.stderr[-6000:]}"
        )
    return completed


# --------------------------------------------------------------------------
# Inputs shared by the worker and the tests
# --------------------------------------------------------------------------


def make_inputs(seed=7):
    """Logits and targets for every loss variant and the metrics, float32."""
    rng = np.random.default_rng(seed)
    rows, classes = 24, 9
    logits = (rng.normal(size=(rows, classes)) * 3.0).astype(np.float32)
    hard = (rng.random((rows, classes)) < 0.3).astype(np.float32)
    soft = rng.random((rows, classes)).astype(np.float32)
    masked_logits = logits.copy()
    masked_logits[rng.random((rows, classes)) < 0.2] = -np.inf
    large_logits = (rng.normal(size=(rows, classes)) * 1000.0).astype(np.float32)

    # Sparse targets without padding (bert4keras' mask_zero=False has none):
    # three distinct classes per row.
    sparse_full = np.stack([rng.choice(classes, 3, replace=False) for _ in range(rows)]).astype(np.int32)
    # mask_zero=True: classes 1..classes-1, 0 is padding; 0 to 4 targets per row.
    sparse_padded = np.zeros((rows, 4), np.int32)
    for row in range(rows):
        count = rng.integers(0, 5)
        sparse_padded[row, :count] = rng.choice(np.arange(1, classes), count, replace=False)

    metric_targets = (rng.random((50, 6)) < 0.35).astype(np.float32)
    metric_logits = (rng.normal(size=(50, 6)) + 1.2 * (2 * metric_targets - 1)).astype(np.float32)
    return {
        "logits": logits,
        "hard": hard,
        "soft": soft,
        "masked_logits": masked_logits,
        "large_logits": large_logits,
        "sparse_full": sparse_full,
        "sparse_padded": sparse_padded,
        "metric_targets": metric_targets,
        "metric_logits": metric_logits,
    }


LOSS_CASES = {
    # name: (targets key, logits key, variant)
    "dense_hard": ("hard", "logits", "dense"),
    "dense_soft": ("soft", "logits", "dense"),
    "dense_masked": ("hard", "masked_logits", "dense"),
    "dense_large": ("hard", "large_logits", "dense"),
    "sparse": ("sparse_full", "logits", "sparse"),
    "sparse_mask_zero": ("sparse_padded", "logits", "sparse_mask_zero"),
}
METRICS = [
    ("f1", "micro"),
    ("f1", "macro"),
    ("precision", "micro"),
    ("precision", "macro"),
    ("recall", "micro"),
    ("recall", "macro"),
    ("f1", "weighted"),
    ("f1", "samples"),
]


# --------------------------------------------------------------------------
# The worker (legacy process: tf-keras and bert4keras, no Keras 3)
# --------------------------------------------------------------------------


def worker(output_path):
    from toolkit.compat import bert4keras as zlpr

    zlpr.prepare_environment()

    import tensorflow as tf
    import tf_keras
    from bert4keras import backend as b4k_backend
    from bert4keras.backend import K
    from bert4keras.models import build_transformer_model

    from tests.encoder_reference import random_bert_weights, tiny_bert_config, write_google_checkpoint

    inputs = make_inputs()
    results = {}

    def bert4keras_loss(variant, targets, logits):
        targets, logits = tf.constant(targets), tf.constant(logits)
        if variant == "dense":
            value = b4k_backend.multilabel_categorical_crossentropy(targets, logits)
        else:
            value = b4k_backend.sparse_multilabel_categorical_crossentropy(
                targets, logits, mask_zero=variant == "sparse_mask_zero"
            )
        return K.eval(value)

    def loss_object(variant):
        if variant == "dense":
            return zlpr.MultilabelCategoricalCrossentropy()
        return zlpr.SparseMultilabelCategoricalCrossentropy(mask_zero=variant == "sparse_mask_zero")

    for name, (targets_key, logits_key, variant) in LOSS_CASES.items():
        targets, logits = inputs[targets_key], inputs[logits_key]
        loss = loss_object(variant)
        graph_call = tf.function(loss.call)
        for dtype in (np.float32, np.float64):
            cast_targets = targets if variant != "dense" else targets.astype(dtype)
            suffix = np.dtype(dtype).name
            results[f"{name}/bert4keras/{suffix}"] = bert4keras_loss(variant, cast_targets, logits.astype(dtype))
            results[f"{name}/eager/{suffix}"] = loss.call(cast_targets, logits.astype(dtype)).numpy()
        results[f"{name}/graph/float32"] = graph_call(tf.constant(targets), tf.constant(logits)).numpy()
        # Through compile/evaluate: the mean over rows, as tf-keras reduces it.
        model = tf_keras.Sequential([tf_keras.layers.Activation("linear", input_shape=(logits.shape[1],))])
        model.compile(loss=loss)
        finite = np.isfinite(logits).all(axis=1)  # -inf cannot pass through the model's input
        results[f"{name}/evaluate"] = np.float64(
            model.evaluate(logits[finite], targets[finite], batch_size=len(logits), verbose=0)
        )
        results[f"{name}/evaluate_rows"] = finite
        restored = type(loss).from_config(loss.get_config())
        assert restored.get_config() == loss.get_config()
        assert tf_keras.losses.get(tf_keras.losses.serialize(loss)).get_config() == loss.get_config()

    # Gradients through the loss are finite at large logits.
    logits = tf.constant(inputs["large_logits"])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        total = tf.reduce_sum(zlpr.multilabel_categorical_crossentropy(inputs["hard"], logits))
    results["large_gradient_finite"] = np.bool_(np.isfinite(tape.gradient(total, logits).numpy()).all())

    # Metrics, accumulated over several batches in compile/evaluate.
    classes = {"f1": zlpr.MultilabelF1Score, "precision": zlpr.MultilabelPrecision, "recall": zlpr.MultilabelRecall}
    metrics = [classes[kind](average=average) for kind, average in METRICS] + [zlpr.SubsetAccuracy()]
    metric_logits, metric_targets = inputs["metric_logits"], inputs["metric_targets"]
    model = tf_keras.Sequential([tf_keras.layers.Activation("linear", input_shape=(metric_logits.shape[1],))])
    model.compile(loss=zlpr.MultilabelCategoricalCrossentropy(), metrics=metrics)
    scores = model.evaluate(metric_logits, metric_targets, batch_size=16, verbose=0, return_dict=True)
    for (kind, average), metric in zip(METRICS, metrics):
        results[f"metric/{kind}/{average}"] = np.float64(scores[metric.name])
        assert type(metric).from_config(metric.get_config()).get_config() == metric.get_config()
    results["metric/subset_accuracy"] = np.float64(scores["subset_accuracy"])

    # A bert4keras BERT built from a Google-format checkpoint written here reads its weights.
    directory = Path(output_path).parent / "tiny_bert"
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]
    config = tiny_bert_config(len(vocabulary))
    checkpoint_path = write_google_checkpoint(directory, random_bert_weights(config, seed=3), config, vocabulary)
    bert = build_transformer_model(str(directory / "bert_config.json"), checkpoint_path)
    for layer, variable in [
        ("Embedding-Token", "bert/embeddings/word_embeddings"),
        ("Transformer-1-FeedForward", "bert/encoder/layer_1/output/dense/kernel"),
    ]:
        loaded = [weight for weight in bert.get_layer(layer).get_weights() if weight.ndim == 2][-1]
        assert np.array_equal(loaded, tf.train.load_variable(checkpoint_path, variable)), layer

    # The predictor on a tf-keras model, saved in both formats.
    head = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,))])
    features = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    predictor = zlpr.TFKerasMultilabelPredictor(head, ["a", "b", "c"], batch_size=4)
    for save_format in ("keras", "tf"):
        folder = Path(output_path).parent / f"predictor_{save_format}"
        predictor.save_format = save_format
        predictor.save(folder)
        loaded = zlpr.TFKerasMultilabelPredictor.load(folder)
        assert loaded.label_names == ["a", "b", "c"] and loaded.batch_size == 4
        np.testing.assert_array_equal(loaded.decision_function(features), predictor.decision_function(features))
    # A baseline's tuned threshold is saved with it and decides after loading.
    tuned = zlpr.TFKerasMultilabelPredictor(head, ["a", "b", "c"], decision_threshold=0.3)
    tuned.save(Path(output_path).parent / "predictor_tuned")
    reloaded = zlpr.TFKerasMultilabelPredictor.load(Path(output_path).parent / "predictor_tuned")
    assert reloaded.decision_threshold == 0.3
    np.testing.assert_array_equal(reloaded.predict(features), tuned.predict(features))
    assert (tuned.predict(features) != predictor.predict(features)).any()
    results["predictor/logits"] = predictor.decision_function(features)
    results["predictor/decisions"] = predictor.predict(features)
    results["predictor/labels"] = np.array(json.dumps(predictor.predict_labels(features)))

    # The docstring examples of the tf-keras objects.
    import doctest

    from toolkit.compat import _tf_keras

    results["doctest_failures"] = np.int64(doctest.testmod(_tf_keras).failed)

    # bert4keras kept tf-keras, and Keras 3 was never imported.
    results["keras_module"] = np.array(sys.modules["keras"].__name__)
    np.savez(output_path, **results)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_results(tmp_path_factory):
    output = tmp_path_factory.mktemp("bert4keras") / "results.npz"
    run_python([__file__, "worker", str(output)], legacy_environment(), timeout=300)
    with np.load(output) as results:
        return dict(results)


def keras3_loss(variant, targets, logits):
    """The toolkit's Keras 3 loss per row, on the suite's backend."""
    import keras

    from toolkit.losses import multilabel_categorical_crossentropy, sparse_multilabel_categorical_crossentropy

    if variant == "dense":
        value = multilabel_categorical_crossentropy(targets, logits)
    else:
        value = sparse_multilabel_categorical_crossentropy(targets, logits, mask_zero=variant == "sparse_mask_zero")
    return np.asarray(keras.ops.convert_to_numpy(value), np.float64)


@requires_bert4keras
@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_loss_equals_keras3_loss(worker_results, case):
    """The tf-keras loss gives the Keras 3 loss' values, eagerly, in a graph and in evaluate()."""
    targets_key, logits_key, variant = LOSS_CASES[case]
    inputs = make_inputs()
    expected = keras3_loss(variant, inputs[targets_key], inputs[logits_key])
    for source in ("eager", "graph"):
        np.testing.assert_allclose(
            worker_results[f"{case}/{source}/float32"], expected, rtol=TOLERANCE, atol=TOLERANCE, err_msg=source
        )
    rows = worker_results[f"{case}/evaluate_rows"]
    np.testing.assert_allclose(worker_results[f"{case}/evaluate"], expected[rows].mean(), rtol=TOLERANCE)


@requires_bert4keras
@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_loss_equals_bert4keras_loss(worker_results, case):
    """Same values as bert4keras.backend's losses: exactly in float64, to float32 rounding in float32."""
    targets_key, logits_key, variant = LOSS_CASES[case]
    inputs = make_inputs()
    # float64 isolates the formulas from rounding: they agree to ~1e-14.
    exact = worker_results[f"{case}/bert4keras/float64"]
    np.testing.assert_allclose(worker_results[f"{case}/eager/float64"], exact, rtol=0, atol=1e-10)
    # float32: the toolkit is within float32 rounding of the exact value...
    np.testing.assert_allclose(worker_results[f"{case}/eager/float32"], exact, rtol=TOLERANCE, atol=TOLERANCE)
    bert4keras_float32 = worker_results[f"{case}/bert4keras/float32"]
    expected = keras3_loss(variant, inputs[targets_key], inputs[logits_key])
    if variant == "dense":
        np.testing.assert_allclose(bert4keras_float32, expected, rtol=TOLERANCE, atol=TOLERANCE)
    else:
        # ...while bert4keras' sparse loss, all_loss + log(1 - exp(pos - all)),
        # loses digits to cancellation in float32 (about 8e-6 here).
        np.testing.assert_allclose(bert4keras_float32, expected, rtol=0, atol=5e-5)
        toolkit_error = np.abs(worker_results[f"{case}/eager/float32"] - exact).max()
        assert toolkit_error <= np.abs(bert4keras_float32 - exact).max()


@requires_bert4keras
def test_gradient_is_finite_at_large_logits(worker_results):
    assert worker_results["large_gradient_finite"]


@requires_bert4keras
def test_docstring_examples(worker_results):
    assert worker_results["doctest_failures"] == 0


@requires_bert4keras
def test_metrics_in_tf_keras_evaluate_equal_sklearn(worker_results):
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    inputs = make_inputs()
    targets = inputs["metric_targets"].astype(int)
    decisions = (inputs["metric_logits"] > 0).astype(int)
    scorers = {"f1": f1_score, "precision": precision_score, "recall": recall_score}
    for kind, average in METRICS:
        expected = scorers[kind](targets, decisions, average=average, zero_division=0.0)
        assert worker_results[f"metric/{kind}/{average}"] == pytest.approx(expected, abs=1e-6), (kind, average)
    assert worker_results["metric/subset_accuracy"] == pytest.approx(accuracy_score(targets, decisions), abs=1e-6)


@requires_bert4keras
def test_predictor_over_a_tf_keras_model(worker_results):
    logits = worker_results["predictor/logits"]
    np.testing.assert_array_equal(worker_results["predictor/decisions"], (logits > 0).astype(np.int8))
    labels = json.loads(str(worker_results["predictor/labels"]))
    assert labels == [[name for name, on in zip("abc", row) if on] for row in logits > 0]
    assert str(worker_results["keras_module"]).startswith("tf_keras")


def test_imports_have_no_side_effects():
    """toolkit.compat.bert4keras imports no TensorFlow; toolkit.losses no tf-keras."""
    script = (
        "import os, sys\n"
        "from toolkit.compat import bert4keras\n"
        "assert not {'tensorflow', 'tf_keras', 'keras', 'bert4keras'} & set(sys.modules), sorted(sys.modules)\n"
        "assert 'TF_KERAS' not in os.environ and 'TF_USE_LEGACY_KERAS' not in os.environ\n"
        "import toolkit, toolkit.losses, toolkit.metrics, toolkit.predictors\n"
        "assert 'tf_keras' not in sys.modules and 'bert4keras' not in sys.modules\n"
        "try:\n"
        "    bert4keras.prepare_environment()\n"
        "except RuntimeError as error:\n"
        "    assert 'Keras 3 is already imported' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('prepare_environment() accepted a process with Keras 3 imported')\n"
        "assert 'TF_KERAS' not in os.environ\n"
    )
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    for variable in ("TF_KERAS", "TF_USE_LEGACY_KERAS"):
        environment.pop(variable, None)
    run_python(["-c", script], environment, timeout=120)


def test_predictor_module_imports_no_keras():
    """`toolkit.compat._tf_keras` subclasses `MultilabelPredictor` when it is imported.

    That is safe in a bert4keras process only while `toolkit.predictors`
    imports neither Keras 3 nor TensorFlow at its top.
    """
    script = (
        "import sys\n"
        "import toolkit.predictors\n"
        "loaded = {'keras', 'tensorflow', 'tf_keras'} & set(sys.modules)\n"
        "assert not loaded, sorted(loaded)\n"
    )
    run_python(["-c", script], dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=120)


@requires_bert4keras
def test_example_runs_end_to_end(tmp_path):
    completed = run_python([str(EXAMPLE), "--output-dir", str(tmp_path)], legacy_environment(), timeout=900)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["validation"]["micro_f1"] >= 0.9, completed.stdout[-3000:]
    assert (tmp_path / "predictor" / "predictor.json").is_file()
    # the scores its header states (docs/demo_scores.json), epoch by epoch; imported here: this file
    # is also the tf-keras worker, which must not import Keras 3 (tests.conftest does)
    from tests.conftest import RERUN_DEMOS, demo_scores_script, recorded_demo

    script = demo_scores_script()
    recorded, tolerance = recorded_demo("bert4keras_interop")
    measured = script.example_scores(summary["epochs"])
    assert script.differences("bert4keras_interop", measured, recorded["scores"], tolerance) == [], RERUN_DEMOS
    best = measured["best_epoch"] - 1
    assert summary["validation"] == summary["epochs"][best]  # the best epoch's weights were put back


@requires_bert4keras
def test_example_runs_end_to_end_and_deletes_its_temporary_folder(tmp_path):
    """Without --output-dir the example works in a temporary folder, which is gone when it ends."""
    (tmp_path / "tmp").mkdir()
    environment = dict(legacy_environment(), TMPDIR=str(tmp_path / "tmp"))
    completed = run_python([str(EXAMPLE)], environment, timeout=900)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("Validation (best epoch): "))
    assert json.loads(line.split(": ", 1)[1])["micro_f1"] >= 0.9, completed.stdout[-3000:]
    assert "Predictor saved to " in completed.stdout and "the coach said" in completed.stdout  # loaded back
    assert [path.name for path in (tmp_path / "tmp").iterdir() if path.name.startswith("bert4keras_interop")] == []


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "worker":
        raise SystemExit(f"usage: TF_KERAS=1 TF_USE_LEGACY_KERAS=1 python {sys.argv[0]} worker OUTPUT.npz")
    worker(sys.argv[2])
