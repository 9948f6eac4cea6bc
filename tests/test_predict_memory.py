"""`predict` streams any size of input in bounded memory (issue #8): memory is flat from 10k to 100k lines.

Each pipeline's `predict_file` reads a 10,000-line and a 100,000-line file, each
in a fresh process, and the two peak resident set sizes (what a user sees) must
be about the same. The Python heap of the streaming loop is measured more
finely with tracemalloc, and the same measurement is shown to catch writers
that keep every text or every record.
"""

import json
import os
import random
import subprocess
import sys
import tracemalloc

import pytest

from tests.conftest import REPO_ROOT, TINY_ENCODER
from toolkit.config import default_config
from toolkit.data.synthetic import write_multilabel_demo, write_relation_demo
from toolkit.streaming import iter_texts, stream_predictions
from toolkit.tasks import pipeline_class

MiB = 2**20
SIZES = (10_000, 100_000)
# Measured: streaming, the peak RSS of the 100k-line run is within 5 MiB of the
# 10k-line run's (about 1 GiB, mostly TensorFlow); keeping every output record
# instead adds 32 MiB (relations) and 79 MiB (classification).
RSS_GROWTH_LIMIT = 20 * MiB
# Measured: streaming, the heap peak does not grow (0.57 MiB for both: a chunk is
# the most ever held); keeping every text adds 8.5 MiB, every record 46 MiB.
HEAP_GROWTH_LIMIT = 1 * MiB

# One step at a high learning rate: the relation extractor then finds few spans
# (after a step at the default rate it finds several per text, and decoding
# them would take most of this file's time). Batches of 256 at prediction too.
TINY = [*TINY_ENCODER, "model.maxlen=16", "training.epochs=1", "training.batch_size=256", "training.learning_rate=0.01"]
TASKS = {
    "classification": ("multilabel_classification", write_multilabel_demo),
    "relations": ("relation_extraction", write_relation_demo),
}

# Run in a fresh interpreter so that its peak RSS is this prediction's alone. The
# peak is VmHWM, the high-water mark of the process's own memory map: ru_maxrss
# would carry over the parent's RSS (this test process, with TensorFlow loaded)
# across fork and exec.
_CHILD = """
import json, sys
from toolkit.pipeline import Pipeline
module, run_dir, input_path, output_path = sys.argv[1:]
count = Pipeline.from_run(run_dir, log=lambda message: None).predict_file(input_path, output_path)
with open("/proc/self/status", encoding="ascii") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(json.dumps({"count": count, "peak_rss": peak}))
"""


def _write_inputs(directory, words, json_lines, seed=0):
    """The 100k-line input, and its first 10k lines as the small one: texts of 3-8 words."""
    rng = random.Random(seed)
    paths = {size: directory / f"in_{size}.{'jsonl' if json_lines else 'txt'}" for size in SIZES}
    handles = {size: open(path, "w", encoding="utf-8") for size, path in paths.items()}  # noqa: SIM115 (closed below)
    with handles[SIZES[0]], handles[SIZES[1]]:
        for number in range(SIZES[1]):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
            line = json.dumps({"text": text}, ensure_ascii=False) if json_lines else text
            for size, handle in handles.items():
                if number < size:
                    handle.write(line + "\n")
    return paths


@pytest.fixture(scope="module", params=sorted(TASKS))
def tiny_run(request, tmp_path_factory):
    """`(module, run_dir, inputs)`: a one-epoch tiny run and its 10k/100k-line inputs."""
    module = request.param
    task, write_demo = TASKS[module]
    root = tmp_path_factory.mktemp(f"memory_{module}")
    write_demo(root / "data", n_train=64, n_dev=16, n_test=16, seed=3)
    config = default_config(task, data_dir=root / "data", output_dir=root / "run", overrides=TINY)
    pipeline_class(task)(config, log=lambda message: None).train()
    with open(config.data.train, encoding="utf-8") as handle:
        words = sorted({word for line in handle for word in json.loads(line)["text"].split()})
    # Plain text for one pipeline, JSON lines for the other: both input kinds stream.
    inputs = _write_inputs(root, words, json_lines=module == "relations")
    return module, root / "run", inputs


def _predict_in_child(module, run_dir, input_path, output_path):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, module, str(run_dir), str(input_path), str(output_path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_predict_file_peak_memory_is_flat_from_10k_to_100k_lines(tiny_run, tmp_path):
    module, run_dir, inputs = tiny_run
    peaks = {}
    for size in SIZES:
        output_path = tmp_path / f"out_{size}.jsonl"
        result = _predict_in_child(module, run_dir, inputs[size], output_path)
        assert result["count"] == size
        with open(output_path, encoding="utf-8") as handle:
            first = json.loads(handle.readline())
            assert 1 + sum(1 for _ in handle) == size
        assert first["text"] == next(iter_texts(inputs[size]))[1]
        peaks[size] = result["peak_rss"]
    small, large = (peaks[size] / MiB for size in SIZES)
    assert peaks[SIZES[1]] - peaks[SIZES[0]] < RSS_GROWTH_LIMIT, (
        f"{module}: peak RSS {small:.1f} MiB for {SIZES[0]} lines, {large:.1f} MiB for {SIZES[1]}"
    )


def _records(texts):
    # The shape of pipeline 1's output, without a model.
    return [{"text": text, "labels": ["a", "b"], "scores": {"a": 1.5, "b": 0.25}} for text in texts]


def _keep_every_text(input_path, output_path, predict_records, *, text_field="text", chunk_size=1024):
    texts = [text for _, text in iter_texts(input_path, text_field)]
    with open(output_path, "w", encoding="utf-8") as output:
        for start in range(0, len(texts), chunk_size):
            output.writelines(
                json.dumps(record) + "\n" for record in predict_records(texts[start : start + chunk_size])
            )
    return len(texts)


@pytest.fixture(scope="module")
def plain_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory_streaming")
    return _write_inputs(root, [f"word{i}" for i in range(500)], json_lines=False)


def _heap_growth(stream, inputs, tmp_path):
    """Python heap peak of `stream` on the 100k-line input minus that on the 10k-line one."""
    peaks = {}
    for size in SIZES:
        tracemalloc.start()
        try:
            count = stream(inputs[size], tmp_path / f"out_{size}.jsonl", _records, chunk_size=1024)
            peaks[size] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert count == size
    return peaks[SIZES[1]] - peaks[SIZES[0]]


def test_streaming_python_heap_is_flat_from_10k_to_100k_lines(plain_inputs, tmp_path):
    growth = _heap_growth(stream_predictions, plain_inputs, tmp_path)
    assert growth < HEAP_GROWTH_LIMIT, f"the heap peak grew by {growth / MiB:.2f} MiB"


def test_the_heap_bound_catches_a_writer_that_keeps_every_text(plain_inputs, tmp_path):
    # The subtler of the two non-streaming writers (keeping every record grows ~5x more).
    assert _heap_growth(_keep_every_text, plain_inputs, tmp_path) > HEAP_GROWTH_LIMIT
