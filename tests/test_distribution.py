"""`training.distribution`: two devices (or two workers) train to the one-device result.

Two logical CPU devices have to be set up before TensorFlow (or JAX) starts,
so every training run happens in a subprocess: a small launcher splits the CPU
(`tf.config.set_logical_device_configuration`, or JAX's
`--xla_force_host_platform_device_count`) and then runs the CLI's `train` for
each config it is given, one device and two devices in the same process. The
runs use the same seed, the same global batch size and no dropout, and batch
sizes that split evenly, so the two must agree up to float rounding: the loss
and metrics of every epoch, the best epoch, the scores in `metrics.json` and
the saved weights.
"""

import json
import os
import socket
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, TINY_ENCODER
from toolkit.config import ConfigError, TrainingConfig, default_config
from toolkit.data.synthetic import write_multilabel_demo, write_relation_demo
from toolkit.distribution import Replicas, _even_out, check_backend, check_batch_size

# No dropout, two epochs (so that the second epoch's order is checked too), no test split; a
# weight average, so that its comparison with the training weights runs on several devices too.
SETTINGS = [
    *TINY_ENCODER,
    "model.encoder.dropout=0",
    "training.epochs=2",
    "training.ema=0.9",
    "training.batch_size=16",
    "training.learning_rate=0.003",
    "training.early_stopping_patience=null",
    "data.test=null",
    "output.overwrite=true",
]
# 192 train and 64 dev examples in batches of 16; 105 relation sentences of which 96 have a
# usable triple at maxlen 64: every batch splits evenly over two devices. Texts cut to 8 tokens
# give JAX a single batch shape to compile.
CLASSIFICATION = [*SETTINGS, "model.dropout=0", "model.maxlen=8"]  # the head's dropout too
RELATIONS = [*SETTINGS, "model.maxlen=64"]

LAUNCHER = """
import json, os, sys
spec = json.loads(sys.argv[1])
if os.environ["KERAS_BACKEND"] == "tensorflow" and spec["devices"] > 1:
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * spec["devices"])
from toolkit.cli import main
for config, overrides in spec["runs"]:
    code = main(["train", config] + [item for override in overrides for item in ("--set", override)] + spec["flags"])
    if code:
        sys.exit(code)
"""


def launch(folder, runs, *, backend="tensorflow", devices=2, extra_env=None, flags=()):
    """Start the launcher on `runs` (`[config, overrides]` pairs, trained with the CLI `flags`); returns the process."""
    launcher = folder / "launcher.py"
    launcher.write_text(LAUNCHER)
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    environment.pop("TF_CONFIG", None)
    if backend == "jax":
        environment["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    environment.update(extra_env or {})
    command = [sys.executable, str(launcher), json.dumps({"devices": devices, "runs": runs, "flags": list(flags)})]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def weights(run):
    """Every array of the saved best model, by its path in the weights file."""
    import h5py

    arrays = {}
    with (
        zipfile.ZipFile(run / "best" / "model.keras") as archive,
        archive.open("model.weights.h5") as raw,
        h5py.File(raw, "r") as weights_file,
    ):
        weights_file.visititems(
            lambda name, item: arrays.__setitem__(name, np.asarray(item)) if isinstance(item, h5py.Dataset) else None
        )
    return arrays


def history(run):
    rows = (run / "history.csv").read_text().strip().splitlines()
    names = rows[0].split(",")
    return {name: np.array([float(row.split(",")[i]) for row in rows[1:]]) for i, name in enumerate(names)}


def scores(run):
    """The dev scores of `metrics.json`, as `{"dev.micro_f1": value, ...}`."""
    metrics = json.loads((run / "metrics.json").read_text())
    flat = {}

    def walk(value, name):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{name}.{key}")
        elif isinstance(value, (int, float)):
            flat[name] = value

    walk(metrics["dev"], "dev")
    return flat


def assert_same_run(one_device, several, label):
    """The two runs agree up to float rounding; prints the largest differences."""
    first, second = history(one_device), history(several)
    assert first.keys() == second.keys()
    history_gap = max(float(np.max(np.abs(first[name] - second[name]))) for name in first)
    first_weights, second_weights = weights(one_device), weights(several)
    assert first_weights.keys() == second_weights.keys() and first_weights
    weight_gap = max(float(np.max(np.abs(first_weights[name] - second_weights[name]))) for name in first_weights)
    print(f"{label}: largest difference in history.csv {history_gap:.2e}, in the saved weights {weight_gap:.2e}")
    for name in first:
        np.testing.assert_allclose(second[name], first[name], rtol=1e-4, atol=1e-5, err_msg=f"{label}: {name}")
    for name in first_weights:
        np.testing.assert_allclose(second_weights[name], first_weights[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert (
        json.loads((several / "best.json").read_text())["epoch"]
        == json.loads((one_device / "best.json").read_text())["epoch"]
    )
    assert scores(several) == pytest.approx(scores(one_device), rel=1e-4, abs=1e-6)


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distribution")
    write_multilabel_demo(root / "multilabel", n_train=192, n_dev=64, n_test=32, seed=3)
    write_relation_demo(root / "relations", n_train=105, n_dev=32, n_test=16, seed=2)
    classification = default_config(
        "multilabel_classification", data_dir=root / "multilabel", output_dir=root / "unused", overrides=CLASSIFICATION
    )
    relations = default_config(
        "relation_extraction", data_dir=root / "relations", output_dir=root / "unused", overrides=RELATIONS
    )
    classification.save(root / "classification.yaml")
    relations.save(root / "relations.yaml")
    return root


@pytest.fixture(scope="module")
def runs(configs):
    """Every training run of this module, the groups side by side (each mostly uses one core).

    - `tensorflow`: one device and MirroredStrategy on two logical CPUs, both pipelines;
    - `jax`: one device and DataParallel on two XLA CPU devices (classification);
    - `worker0`, `worker1`: MultiWorkerMirroredStrategy, two processes on localhost
      (TF_CONFIG), one CPU each (classification).

    Returns `{group: (exit code, output)}` and the run folders.
    """
    folders = {}
    tensorflow_runs = []
    for task in ("classification", "relations"):
        for name in ("none", "mirrored"):
            folders["tensorflow", task, name] = configs / f"tf_{task}_{name}"
            tensorflow_runs.append(
                [
                    str(configs / f"{task}.yaml"),
                    [f"output.dir={folders['tensorflow', task, name]}", f"training.distribution={name}"],
                ]
            )
    jax_runs = []
    for name in ("none", "data_parallel"):
        folders["jax", name] = configs / f"jax_{name}"
        jax_runs.append(
            [
                str(configs / "classification.yaml"),
                [f"output.dir={folders['jax', name]}", f"training.distribution={name}"],
            ]
        )
    folders["multi_worker"] = configs / "multi_worker"
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    processes = {"tensorflow": launch(configs, tensorflow_runs), "jax": launch(configs, jax_runs, backend="jax")}
    for index in range(2):
        scratch = configs / f"tmp_worker{index}"
        scratch.mkdir()
        environment = {
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TMPDIR": str(scratch),
        }
        overrides = [f"output.dir={folders['multi_worker']}", "training.distribution=multi_worker_mirrored"]
        processes[f"worker{index}"] = launch(
            configs, [[str(configs / "classification.yaml"), overrides]], devices=1, extra_env=environment
        )
    results = {}
    try:
        for group, process in processes.items():
            output, _ = process.communicate(timeout=1200)
            results[group] = (process.returncode, output)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    return results, folders


def finished(runs, *groups):
    results, folders = runs
    for group in groups:
        code, output = results[group]
        assert code == 0, f"{group}:\n{output[-4000:]}"
    return folders


def test_mirrored_classification_matches_one_device(runs):
    folders = finished(runs, "tensorflow")
    assert_same_run(
        folders["tensorflow", "classification", "none"], folders["tensorflow", "classification", "mirrored"], "mirrored"
    )


def test_mirrored_relation_extraction_matches_one_device(runs):
    folders = finished(runs, "tensorflow")
    assert_same_run(
        folders["tensorflow", "relations", "none"], folders["tensorflow", "relations", "mirrored"], "mirrored relations"
    )


def test_multi_worker_mirrored_matches_one_device(runs, configs):
    """Only the chief writes the run folder; the other worker deletes its temporary one."""
    folders = finished(runs, "tensorflow", "worker0", "worker1")
    assert "the chief writes the run folder" in runs[0]["worker1"][1]
    assert not list((configs / "tmp_worker1").iterdir()), "the second worker left its temporary run folder behind"
    assert_same_run(folders["tensorflow", "classification", "none"], folders["multi_worker"], "multi_worker_mirrored")


def _workers(configs, folder, *flags):
    """Two `multi_worker_mirrored` workers on localhost training the classification config into `folder`."""
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    processes = []
    for index in range(2):
        scratch = configs / f"tmp_{folder.name}_{index}"
        scratch.mkdir(exist_ok=True)
        environment = {
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TMPDIR": str(scratch),
        }
        overrides = [f"output.dir={folder}", "training.distribution=multi_worker_mirrored"]
        processes.append(
            launch(
                configs,
                [[str(configs / "classification.yaml"), overrides]],
                devices=1,
                extra_env=environment,
                flags=flags,
            )
        )
    return processes


def test_multi_worker_mirrored_resumes_a_killed_run_to_the_one_device_result(runs, configs):
    """Both workers killed after the first epoch's backup; started again with --resume, they continue
    from the chief's backup together and end where the one-device run ends."""
    import signal
    import time

    folders = finished(runs, "tensorflow")
    folder = configs / "multi_worker_resumed"
    for _ in range(3):  # a tiny second epoch can finish before the kill lands: then try again
        processes = _workers(configs, folder)
        state = folder / "backup" / "state.json"
        deadline = time.monotonic() + 600
        while not (state.is_file() and json.loads(state.read_text())["epoch"] >= 1):
            assert all(process.poll() is None for process in processes), processes[0].communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no backup after 10 minutes"
            time.sleep(0.02)
        for process in processes:
            process.send_signal(signal.SIGKILL)
            process.wait()
        if not (folder / "metrics.json").exists():
            break
    assert not (folder / "metrics.json").exists(), "the run finished three times before it could be killed"
    resumed = _workers(configs, folder, "--resume")
    outputs = []
    for process in resumed:
        outputs.append(process.communicate(timeout=1200)[0])
    codes = [process.returncode for process in resumed]
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert_same_run(folders["tensorflow", "classification", "none"], folder, "multi_worker_mirrored, resumed")


def test_a_worker_whose_chief_never_comes_up_stops_after_the_timeout(configs):
    import time

    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}  # nobody listens
    environment = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    overrides = [
        f"output.dir={configs / 'orphan_worker'}",
        "training.distribution=multi_worker_mirrored",
        "training.cluster_timeout=3",
    ]
    started = time.monotonic()
    process = launch(configs, [[str(configs / "classification.yaml"), overrides]], devices=1, extra_env=environment)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 2, output[-3000:]
    assert (
        f"error: training.distribution: multi_worker_mirrored: the chief ({cluster['worker'][0]} in TF_CONFIG) did "
        "not come up within 3 s (training.cluster_timeout)." in output
    )
    assert time.monotonic() - started < 120


def test_data_parallel_on_jax_matches_one_device(runs):
    folders = finished(runs, "jax")
    assert_same_run(folders["jax", "none"], folders["jax", "data_parallel"], "data_parallel")


# ----------------------------------------------------------------------------- checks without training


def test_unknown_distribution_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"training\.distribution: expected one of .*; did you mean 'mirrored'\?"):
        default_config("multilabel_classification", overrides=["training.distribution=mirored"])


@pytest.mark.parametrize(
    "name, backend, expected",
    [
        ("mirrored", "jax", r"'mirrored' needs the tensorflow backend .* on jax use 'data_parallel'"),
        (
            "multi_worker_mirrored",
            "torch",
            r"'multi_worker_mirrored' needs the tensorflow backend .*the torch backend "
            r"trains on one device",
        ),
        ("data_parallel", "tensorflow", r"'data_parallel' needs the jax backend .* use 'mirrored' or"),
    ],
)
def test_strategy_that_does_not_fit_the_backend_is_refused(name, backend, expected):
    with pytest.raises(ConfigError, match=rf"^run\.yaml: training\.distribution: {expected}"):
        check_backend(TrainingConfig(distribution=name), source="run.yaml", backend=backend)
    check_backend(TrainingConfig(distribution="none"), backend=backend)


def test_train_refuses_the_wrong_backend_before_writing_anything(tmp_path):
    import keras

    from toolkit.classification.pipeline import ClassificationPipeline

    wrong = "data_parallel" if keras.backend.backend() != "jax" else "mirrored"
    write_multilabel_demo(tmp_path / "data", n_train=40, n_dev=10, n_test=10, seed=1)
    config = default_config(
        "multilabel_classification",
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "run",
        overrides=[f"training.distribution={wrong}"],
    )
    with pytest.raises(ConfigError, match=r"training\.distribution: .*needs the"):
        ClassificationPipeline(config, log=lambda message: None).train()
    assert not (tmp_path / "run").exists()


def test_data_parallel_batch_size_must_split_over_the_devices():
    with pytest.raises(ConfigError, match=r"training\.batch_size: 15 cannot be split evenly over the 2 devices"):
        check_batch_size(TrainingConfig(batch_size=15), Replicas("data_parallel", count=2))
    check_batch_size(TrainingConfig(batch_size=15), Replicas("mirrored", count=2))


def test_jax_batches_are_evened_out_over_the_devices():
    rng = np.random.default_rng(0)
    batch = ({"ids": np.arange(7)[:, None] * np.ones((1, 3))}, np.arange(7.0))
    inputs, targets = _even_out(batch, 4, False, rng)
    assert len(targets) == 4 and set(targets) <= set(range(7)) and np.all(inputs["ids"][:, 0] == targets)
    inputs, targets = _even_out(({"ids": np.arange(3)}, np.arange(3.0)), 4, False, rng)
    assert sorted(targets.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]  # every row the same number of times
    inputs, targets, weights = _even_out(batch, 4, True, rng)
    assert len(targets) == 8 and weights.tolist() == [1] * 7 + [0]
    assert _even_out(batch, 7, False, rng) is batch
