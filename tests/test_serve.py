"""`python -m toolkit serve` (toolkit.serving): predict's records over HTTP for every task, the
decision-rule overrides, /health and /metrics, every bad request a 4xx of one line with the server
answering as before, a full queue's 503, the bearer token, concurrent requests sharing model calls,
and SIGTERM answering the requests in flight.

Servers run on 127.0.0.1 at a free port, in a thread of this process (`Served`) or, for the
command and its signals, in a child process; every client loop is bounded."""

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TINY_ENCODER
from toolkit.config import default_config
from toolkit.pipeline import Pipeline
from toolkit.serving.batcher import Batcher, QueueFull
from toolkit.serving.limits import ServeLimits
from toolkit.serving.model import PredictionService
from toolkit.serving.server import Server
from toolkit.serving.validation import RequestError, parse_predict_body

TRAINING = ["training.batch_size=16", "training.learning_rate=0.003", "training.early_stopping_patience=null"]
# What each task's records hold when something was found.
FOUND = {"multilabel_classification": "labels", "relation_extraction": "spo_list", "entity_recognition": "entities"}


def _quiet(message):
    pass


@dataclass
class Run:
    path: Path
    texts: list  # texts like the run's data, to predict for


# --- tiny runs, one a task (module-scoped: trained once) ----------------------------------


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory):
    from toolkit.classification.pipeline import ClassificationPipeline
    from toolkit.data.synthetic import write_multilabel_demo

    root = tmp_path_factory.mktemp("serve_classification")
    write_multilabel_demo(root / "data", n_train=120, n_dev=20, n_test=20, seed=5)
    overrides = [*TINY_ENCODER, "model.maxlen=48", "training.epochs=1", *TRAINING]
    config = default_config(
        "multilabel_classification", data_dir=root / "data", output_dir=root / "run", overrides=overrides
    )
    ClassificationPipeline(config, log=_quiet).train()
    return Run(root / "run", _texts(root / "data" / "dev.jsonl"))


@pytest.fixture(scope="module")
def entity_run(tmp_path_factory):
    from toolkit.data.synthetic import write_entity_demo
    from toolkit.entities.pipeline import EntityPipeline

    root = tmp_path_factory.mktemp("serve_entities")
    write_entity_demo(root / "data", n_train=80, n_dev=20, n_test=20, seed=2)
    overrides = [*TINY_ENCODER, "model.maxlen=48", "model.head_size=16", "training.epochs=1", *TRAINING]
    config = default_config("entity_recognition", data_dir=root / "data", output_dir=root / "run", overrides=overrides)
    EntityPipeline(config, log=_quiet).train()
    return Run(root / "run", _texts(root / "data" / "dev.jsonl"))


def _relation_run(tmp_path_factory, method):
    """SpERT-layout token data a tiny model learns in seconds, so that triples are found."""
    from tests.test_relation_layouts import _spert_records, _tiny_config
    from toolkit.relations.pipeline import RelationPipeline

    root = tmp_path_factory.mktemp(f"serve_{method}")
    train, dev = _spert_records(96, 0), _spert_records(24, 1)
    config = _tiny_config(root, "spert", train, dev, (" ".join(record["tokens"]) for record in train))
    model = {**config.to_dict()["model"], "method": method, **({"head_size": 16} if method == "gplinker" else {})}
    config = type(config).from_dict({**config.to_dict(), "model": model})
    RelationPipeline(config, log=_quiet).train()
    return Run(root / "run", [" ".join(record["tokens"]) for record in dev[:6]])


@pytest.fixture(scope="module")
def semi_pointer_run(tmp_path_factory):
    return _relation_run(tmp_path_factory, "semi_pointer")


@pytest.fixture(scope="module")
def gplinker_run(tmp_path_factory):
    return _relation_run(tmp_path_factory, "gplinker")


def _texts(path, count=6):
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()[:count]]


# --- a server in this process, and a client -----------------------------------------------


@dataclass
class Answer:
    status: int
    headers: object
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def call(port, method, path, body=None, headers=None, timeout=60):
    """One request on a connection of its own. A dict or list body is sent as JSON."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def predict(port, texts, headers=None, **rule):
    return call(port, "POST", "/predict", {"texts": texts, **rule}, headers)


def wait_until(condition, seconds=60, what="the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} did not come within {seconds} s")


class Served:
    """A `Server` on 127.0.0.1 at a free port, its event loop in a thread of its own; ready (its
    model loaded) when made."""

    def __init__(self, service, **options):
        self.lines = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="serve-test-loop", daemon=True)
        self.thread.start()
        self.server = Server(service, log=self.lines.append, **options)
        url = self.run(self.server.start("127.0.0.1", 0))
        self.port = int(url.rsplit(":", 1)[1])
        wait_until(lambda: call(self.port, "GET", "/health").status == 200, what="the model")

    def run(self, coroutine, timeout=120):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def metrics(self) -> dict:
        return parse_metrics(call(self.port, "GET", "/metrics").body.decode("utf-8"))

    def close(self):
        try:
            self.run(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


class Gate:
    """Holds every model call until `release` is set; `entered` tells that one has begun."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, predict):
        def held(key, texts):
            self.entered.set()
            if not self.release.wait(60):
                raise TimeoutError("the test never released the model")
            return predict(key, texts)

        return held


@contextmanager
def served(run_dir, *, settings=None, wrap=None, **options):
    service = PredictionService(Pipeline.from_run(run_dir, log=_quiet), settings=settings)
    if wrap is not None:
        service.predict = wrap(service.predict)
    server = Served(service, **options)
    try:
        yield server
    finally:
        if isinstance(wrap, Gate):
            wrap.release.set()
        server.close()


class Client(threading.Thread):
    """A request sent from a thread of its own; `answer` once joined."""

    def __init__(self, port, texts, headers=None):
        super().__init__(daemon=True)
        self.port, self.texts, self.headers, self.answer = port, texts, headers, None

    def run(self):
        self.answer = predict(self.port, self.texts, self.headers)

    def result(self):
        self.join(90)
        assert self.answer is not None, "the request was not answered"
        return self.answer


def predict_file_records(run_dir, texts, folder, **settings):
    """What `predict` writes for `texts` (one a line in a .txt file), as a list of records."""
    folder.mkdir(parents=True, exist_ok=True)
    source, output = folder / "texts.txt", folder / "predicted.jsonl"
    source.write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    Pipeline.from_run(run_dir, log=_quiet).predict_file(source, output, settings=settings)
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def assert_same_records(got, expected):
    """Equal records, scores to float rounding: a request that shared a model call with others was
    padded to another length (predict's scores vary the same way between chunk sizes)."""
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected):
        assert {key: value for key, value in mine.items() if key != "scores"} == {
            key: value for key, value in theirs.items() if key != "scores"
        }
        assert mine.get("scores", {}) == pytest.approx(theirs.get("scores", {}), rel=1e-4, abs=1e-5)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def parse_metrics(text):
    """`{(name, (("label", "value"), ...)): value}` of Prometheus' text format; every line checked."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.group(1), match.group(2) or "", match.group(3)
        assert re.sub(r"_(bucket|sum|count)$", "", name) in typed, f"{name} has no # TYPE line"
        pairs = tuple(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        samples[(name, pairs)] = float(value)
    return samples


# --- every task: predict's records ---------------------------------------------------------


@pytest.mark.parametrize("run_name", ["classification_run", "semi_pointer_run", "gplinker_run", "entity_run"])
def test_serve_answers_with_the_records_predict_writes(run_name, request, tmp_path):
    run = request.getfixturevalue(run_name)
    pipeline = Pipeline.from_run(run.path, log=_quiet)
    texts = [*run.texts, "", "   ", "naïve 文本 ✓"]
    expected = predict_file_records(run.path, texts, tmp_path)
    alone = predict_file_records(run.path, texts[:1], tmp_path / "alone")
    with served(run.path) as server:
        health = call(server.port, "GET", "/health")
        assert health.json() == {"status": "ok", "task": pipeline.config.task, "run": str(run.path)}
        answer = predict(server.port, texts)
        assert answer.status == 200 and answer.headers["Content-Type"] == "application/json; charset=utf-8"
        assert answer.json() == {"predictions": expected}
        # A later call on the same server: TensorFlow traced the model for the shapes before, and a
        # trace for other shapes can round a score's last digits differently (so can predict's).
        assert_same_records(predict(server.port, texts[:1]).json()["predictions"], alone)
    assert expected[: len(run.texts)] == pipeline.prediction_records(pipeline.load_predictor(), run.texts)
    assert expected[len(run.texts)] == {"text": "", **pipeline.prediction_input().blank}
    # Something was found, so that the records compared hold more than the texts.
    assert any(record[FOUND[pipeline.config.task]] for record in expected)


def test_a_request_changes_the_decision_rule_as_predict_s_flags_do(classification_run, semi_pointer_run, tmp_path):
    run = classification_run
    pipeline = Pipeline.from_run(run.path, log=_quiet)
    with served(run.path) as server:
        plain = predict(server.port, run.texts).json()["predictions"]
        for number, rule in enumerate(({"min_labels": 3}, {"max_labels": 1}, {"min_labels": 2, "max_labels": 2})):
            expected = predict_file_records(run.path, run.texts, tmp_path / str(number), **pipeline.decision_rule(rule))
            assert_same_records(predict(server.port, run.texts, **rule).json()["predictions"], expected)
            assert expected != plain, rule  # the rule reached the predictor
        for rule, message in [
            ({"min_labels": 3, "max_labels": 2}, "min_labels (3) is more than max_labels (2)"),
            ({"min_labels": -1}, "min_labels must be >= 0 and max_labels >= 1; got min_labels -1"),
            ({"min_labels": 11}, "min_labels (11) is more than the 10 labels."),
            ({"max_labels": True}, "'max_labels' must be an integer or null; got a boolean"),
            ({"min_labels": "2"}, "'min_labels' must be an integer or null; got a string"),
        ]:
            answer = predict(server.port, run.texts, **rule)
            assert (answer.status, answer.json()) == (422, {"error": message}), rule
        assert_same_records(predict(server.port, run.texts, min_labels=None).json()["predictions"], plain)
    # The server's own rule (`serve --max-labels 1`), which a request may change again.
    settings = pipeline.decision_rule({"max_labels": 1})
    expected = predict_file_records(run.path, run.texts, tmp_path / "server", **settings)
    with served(run.path, settings=settings) as server:
        assert predict(server.port, run.texts).json() == {"predictions": expected}
        assert call(server.port, "GET", "/health").json()["decision_rule"] == {"min_labels": 0, "max_labels": 1}
        assert_same_records(predict(server.port, run.texts, max_labels=10).json()["predictions"], plain)
    with served(semi_pointer_run.path) as server:
        answer = predict(server.port, semi_pointer_run.texts, min_labels=1)
        assert answer.status == 422
        assert answer.json()["error"].startswith("min_labels: relation_extraction runs have no decision rule to change")


# --- bad requests: a 4xx of one line each, and the next good request answered as before -----

LIMITS = ServeLimits(max_body_bytes=2048, max_text_chars=200, max_texts=4)
JSON = {"Content-Type": "application/json"}
BAD_REQUESTS = [
    ("malformed JSON", b'{"texts": ["a",', JSON, 400, "malformed JSON: Expecting value (line 1, column 16)"),
    ("invalid UTF-8", b'{"texts": ["caf\xe9"]}', JSON, 400, "the body is not valid UTF-8 (byte 0xe9 at offset 15)"),
    ("an empty body", b"", JSON, 400, 'empty body; expected a JSON object {"texts": ["a text", ...]}'),
    ("not an object", b'["a"]', JSON, 422, 'expected a JSON object {"texts": ["a text", ...]}; got a list'),
    ("no texts", b"{}", JSON, 422, "missing 'texts'; expected a JSON object"),
    ("a misspelt key", b'{"text": ["a"]}', JSON, 422, "unknown key 'text'; did you mean 'texts'?"),
    ("texts a string", b'{"texts": "a"}', JSON, 422, "'texts' must be a list of strings; got a string"),
    ("texts null", b'{"texts": null}', JSON, 422, "'texts' must be a list of strings; got null"),
    ("texts empty", b'{"texts": []}', JSON, 422, "'texts' is empty: give at least one text"),
    ("a number among the texts", b'{"texts": ["a", 7]}', JSON, 422, "texts[1] must be a string; got a number"),
    ("an object among the texts", b'{"texts": [{"text": "a"}]}', JSON, 422, "texts[0] must be a string; got an object"),
    (
        "a lone surrogate",
        b'{"texts": ["a\\ud800"]}',
        JSON,
        422,
        "texts[0] holds a lone surrogate (\\ud800 at character 1)",
    ),
    ("too many texts", b'{"texts": ["a", "b", "c", "d", "e"]}', JSON, 413, "5 texts in one request; at most 4"),
    ("a text too long", b'{"texts": ["' + b"x" * 201 + b'"]}', JSON, 413, "texts[0] has 201 characters; at most 200"),
    ("a body too large", b'{"texts": ["' + b" " * 3000 + b'"]}', JSON, 413, "the body has 3015 bytes; at most 2048"),
    ("a form", b"texts=a", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "expected Content-Type"),
    (
        "another charset",
        b'{"texts": ["a"]}',
        {"Content-Type": "application/json; charset=latin-1"},
        415,
        "charset=latin-1",
    ),
]


@pytest.fixture(scope="module")
def limited(classification_run):
    """One server with small limits for every bad request, and its answer to a good one."""
    with served(classification_run.path, limits=LIMITS) as server:
        yield server, predict(server.port, classification_run.texts[:2]).json()["predictions"]


def _one_line_error(answer, status, message):
    assert answer.status == status, answer.body
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    error = answer.json()
    assert list(error) == ["error"] and "\n" not in error["error"]
    assert message in error["error"]


@pytest.mark.parametrize("what, body, headers, status, message", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_each_bad_request_is_a_4xx_of_one_line_and_the_server_answers_on(
    limited, classification_run, what, body, headers, status, message
):
    server, good = limited
    _one_line_error(call(server.port, "POST", "/predict", body, headers), status, message)
    assert_same_records(predict(server.port, classification_run.texts[:2]).json()["predictions"], good)


def test_json_nested_past_the_recursion_limit_is_a_400():
    with pytest.raises(RequestError) as raised:
        parse_predict_body(b"[" * 100_000, "application/json", ServeLimits())
    assert (raised.value.status, raised.value.message) == (400, "malformed JSON: nested too deeply")


def test_wrong_paths_methods_and_broken_connections_leave_it_answering(limited, classification_run):
    server, good = limited
    _one_line_error(
        call(server.port, "GET", "/nowhere"), 404, "no such path '/nowhere'; the server answers POST /predict"
    )
    answer = call(server.port, "GET", "/predict")
    _one_line_error(answer, 405, "GET is not allowed on /predict; use POST")
    assert answer.headers["Allow"] == "POST"
    _one_line_error(call(server.port, "POST", "/health", b"{}", JSON), 405, "POST is not allowed on /health; use GET")
    # A body too large sent in chunks, without a Content-Length.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunks = iter([b'{"texts": ["', b" " * 1500, b" " * 1500, b'"]}'])
    connection.request("POST", "/predict", body=chunks, headers=JSON, encode_chunked=True)
    response = connection.getresponse()
    _one_line_error(Answer(response.status, response.headers, response.read()), 413, "more than 2048 bytes")
    connection.close()
    # Not HTTP at all; a body cut short by a client that leaves; a client that leaves before its answer.
    for raw in (
        b"NOT HTTP AT ALL\r\n\r\n",
        b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"te',
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
        b'{"texts": ["a"]}',
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw_socket:
            raw_socket.sendall(raw)
    wait_until(lambda: server.metrics()[("zlpr_serve_requests_in_progress", ())] == 0, what="no request in progress")
    assert_same_records(predict(server.port, classification_run.texts[:2]).json()["predictions"], good)


def _fault(rng):
    """One request body of a seeded random kind: bytes, JSON of any shape, odd texts, or good."""
    kind = rng.integers(6)
    if kind == 0:
        return bytes(rng.integers(0, 256, rng.integers(0, 300)).astype("uint8"))
    if kind == 1:
        shapes = [None, 1, 2.5, "texts", [], {}, {"texts": {}}, {"texts": [[]]}, {"texts": ["a"], "x": 1}]
        return json.dumps(shapes[rng.integers(len(shapes))]).encode()
    if kind == 2:
        odd = ["\x00", "\u200b", "\U0001f600" * 50, "\r\n\t", "[CLS] [SEP] [MASK]", "\ufeff", "a" * 200]
        return json.dumps({"texts": [odd[rng.integers(len(odd))] for _ in range(rng.integers(1, 5))]}).encode()
    if kind == 3:
        return b'{"texts": ["' + b"\\ud83d" * int(rng.integers(1, 4)) + b'"]}'
    return None  # a good request


def test_a_fault_run_of_random_bad_requests_among_good_ones_never_takes_it_down(limited, classification_run):
    import numpy as np

    server, good = limited
    statuses, wrong = [], []

    def client(seed):
        rng = np.random.default_rng(seed)
        for _ in range(25):
            body = _fault(rng)
            if body is None:
                answer = predict(server.port, classification_run.texts[:2])
                try:
                    assert_same_records(answer.json()["predictions"], good)
                except (AssertionError, KeyError, ValueError) as problem:
                    wrong.append(problem)
            else:
                answer = call(server.port, "POST", "/predict", body, JSON)
                if answer.status >= 400 and set(answer.json()) != {"error"}:
                    wrong.append(answer.body)
            statuses.append(answer.status)

    threads = [threading.Thread(target=client, args=(seed,), daemon=True) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(statuses) == 200 and not wrong, wrong[:3]
    assert set(statuses) <= {200, 400, 413, 422} and statuses.count(200) >= 40
    wait_until(lambda: server.metrics()[("zlpr_serve_requests_in_progress", ())] == 0, what="no request in progress")


def test_a_failed_model_call_is_a_500_and_the_next_request_is_answered(classification_run):
    def failing(predict_records):
        def maybe(key, texts):
            if "boom" in texts:
                raise RuntimeError("the model fell over")
            return predict_records(key, texts)

        return maybe

    with served(classification_run.path, wrap=failing) as server:
        _one_line_error(predict(server.port, ["boom"]), 500, "the model call failed: RuntimeError: the model fell over")
        assert predict(server.port, classification_run.texts[:1]).status == 200


# --- /metrics, the queue, the token, batching ----------------------------------------------


def test_metrics_count_requests_latency_and_batch_sizes_in_prometheus_text(classification_run):
    with served(classification_run.path) as server:
        assert predict(server.port, classification_run.texts[:1]).status == 200
        assert predict(server.port, classification_run.texts[:3]).status == 200
        assert predict(server.port, []).status == 422
        assert call(server.port, "GET", "/nowhere").status == 404
        answer = call(server.port, "GET", "/metrics")
        assert answer.status == 200 and answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse_metrics(answer.body.decode("utf-8"))
    requests = "zlpr_serve_requests_total"
    assert samples[(requests, (("path", "/predict"), ("status", "200")))] == 2
    assert samples[(requests, (("path", "/predict"), ("status", "422")))] == 1
    assert samples[(requests, (("path", "other"), ("status", "404")))] == 1
    assert samples[(requests, (("path", "/health"), ("status", "200")))] >= 1
    assert samples[("zlpr_serve_request_seconds_count", (("path", "/predict"),))] == 3
    assert samples[("zlpr_serve_batch_texts_count", ())] == 2 and samples[("zlpr_serve_batch_texts_sum", ())] == 4
    assert samples[("zlpr_serve_batch_texts_bucket", (("le", "2"),))] == 1
    assert samples[("zlpr_serve_batch_requests_sum", ())] == 2
    assert samples[("zlpr_serve_model_seconds_count", ())] == 2
    for name, labels in [("zlpr_serve_batch_texts", ()), ("zlpr_serve_request_seconds", (("path", "/predict"),))]:
        buckets = [
            value for (sample, pairs), value in samples.items() if sample == name + "_bucket" and pairs[:-1] == labels
        ]
        assert buckets == sorted(buckets) and buckets[-1] == samples[(name + "_count", labels)]
    assert samples[("zlpr_serve_ready", ())] == 1 and samples[("zlpr_serve_queue_depth", ())] == 0


def test_a_full_queue_answers_503_with_retry_after(classification_run):
    run, gate = classification_run, Gate()
    with served(run.path, wrap=gate, limits=ServeLimits(queue_size=1, max_wait_ms=0)) as server:
        in_the_model = Client(server.port, run.texts[:1])
        in_the_model.start()
        assert gate.entered.wait(60)
        queued = Client(server.port, run.texts[1:2])
        queued.start()
        wait_until(lambda: server.server.batcher.depth == 1, what="a queued request")
        refused = predict(server.port, run.texts[2:3])
        _one_line_error(
            refused, 503, "overloaded: the queue is full (1 request(s) waiting for the model); retry after 1 s"
        )
        assert refused.headers["Retry-After"] == "1"
        gate.release.set()
        assert in_the_model.result().status == 200 and queued.result().status == 200
        assert predict(server.port, run.texts[2:3]).status == 200
        assert server.metrics()[("zlpr_serve_requests_total", (("path", "/predict"), ("status", "503")))] == 1


def test_a_bearer_token_guards_predict_and_metrics(classification_run):
    with served(classification_run.path, token="s3cret token") as server:
        missing = predict(server.port, ["a text"])
        _one_line_error(missing, 401, "missing Authorization: Bearer <token>")
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="zlpr"'
        for given in ("Bearer wrong", "Basic s3cret token", "Bearer s3cret"):
            _one_line_error(predict(server.port, ["a text"], {"Authorization": given}), 401, "wrong token")
        assert predict(server.port, ["a text"], {"Authorization": "Bearer s3cret token"}).status == 200
        assert call(server.port, "GET", "/metrics").status == 401
        assert call(server.port, "GET", "/metrics", headers={"Authorization": "Bearer s3cret token"}).status == 200
        assert call(server.port, "GET", "/health").status == 200  # probes need no token


def test_requests_waiting_together_share_one_model_call(classification_run, tmp_path):
    run, gate = classification_run, Gate()
    texts = run.texts[:5] + [text.upper() for text in run.texts[:4]]
    expected = predict_file_records(run.path, texts, tmp_path)
    with served(run.path, wrap=gate, limits=ServeLimits(max_wait_ms=0)) as server:
        first = Client(server.port, texts[:1])
        first.start()
        assert gate.entered.wait(60)
        others = [Client(server.port, [text]) for text in texts[1:]]
        for client in others:
            client.start()
        wait_until(lambda: server.server.batcher.depth == len(others), what="the waiting requests")
        gate.release.set()
        for client, record in zip([first, *others], expected):
            answer = client.result()
            assert answer.status == 200
            assert_same_records(answer.json()["predictions"], [record])
        samples = server.metrics()
    # Nine requests, two model calls: the first alone, the eight that waited behind it together.
    assert samples[("zlpr_serve_batch_requests_count", ())] == 2
    assert samples[("zlpr_serve_batch_requests_bucket", (("le", "4"),))] == 1
    assert samples[("zlpr_serve_batch_requests_bucket", (("le", "8"),))] == 2
    assert samples[("zlpr_serve_batch_texts_sum", ())] == 9


def test_concurrent_clients_are_answered_in_fewer_model_calls(classification_run):
    clients, rounds = 12, 4
    with served(classification_run.path, limits=ServeLimits(max_wait_ms=20)) as server:

        def client(number, answers):
            for step in range(rounds):
                answers.append(predict(server.port, [classification_run.texts[(number + step) % 6]]).status)

        answers = []
        threads = [threading.Thread(target=client, args=(number, answers), daemon=True) for number in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        samples = server.metrics()
    assert answers == [200] * clients * rounds
    calls = samples[("zlpr_serve_batch_requests_count", ())]
    assert samples[("zlpr_serve_batch_requests_sum", ())] == clients * rounds
    assert calls < clients * rounds, calls


# --- the batcher alone -----------------------------------------------------------------------


def test_the_batcher_gathers_whole_requests_up_to_max_batch_texts_one_call_per_rule():
    calls, release = [], threading.Event()

    def upper(key, texts):
        calls.append((key, list(texts)))
        assert release.wait(30)
        if "bad" in texts:
            raise ValueError("a bad text")
        return [text.upper() for text in texts]

    async def scenario():
        batcher = Batcher(upper, max_batch_texts=4, max_wait_ms=0, queue_size=5)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(["a"]))
        while not calls:
            await asyncio.sleep(0.01)
        requests = [(["b", "c"], ()), (["d"], ()), (["e", "f"], ()), (["g"], ("rule",)), (["h"] * 5, ())]
        waiting = [asyncio.create_task(batcher.submit(texts, key)) for texts, key in requests]
        while batcher.depth < 5:
            await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match=r"the queue is full \(5 request\(s\) waiting for the model\)"):
            await batcher.submit(["refused"])
        release.set()
        results = await asyncio.gather(first, *waiting)
        with pytest.raises(ValueError, match="a bad text"):
            await batcher.submit(["bad"])
        results.append(await batcher.submit(["after"]))
        last = [asyncio.create_task(batcher.submit([text])) for text in "xyz"]
        await asyncio.sleep(0)
        await batcher.close()  # what was queued is answered first
        return results + [task.result() for task in last]

    results = asyncio.run(scenario())
    assert results == [["A"], ["B", "C"], ["D"], ["E", "F"], ["G"], ["H"] * 5, ["AFTER"], ["X"], ["Y"], ["Z"]]
    assert calls[:5] == [
        ((), ["a"]),
        ((), ["b", "c", "d"]),  # e, f would make 5 texts: they start the next call
        ((), ["e", "f"]),
        (("rule",), ["g"]),  # another decision rule: a call of its own
        ((), ["h"] * 5),  # more than max_batch_texts: alone, never split
    ]


# --- the command: SIGTERM, and what stops it from starting -----------------------------------

CHILD = """
import sys, time
from pathlib import Path
from toolkit.serving.model import PredictionService

hold, predict = Path(sys.argv[1]), PredictionService.predict

def held(self, key, texts):  # every model call waits while the file exists
    while hold.exists():
        time.sleep(0.01)
    return predict(self, key, texts)

PredictionService.predict = held
sys.argv = ["zlpr", *sys.argv[2:]]
from toolkit.cli import main
raise SystemExit(main())
"""


def test_the_command_serves_and_sigterm_answers_the_requests_in_flight(classification_run, tmp_path):
    run, hold = classification_run, tmp_path / "hold"
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    environment["ZLPR_SERVE_TOKEN"] = "t0ken"
    command = [sys.executable, "-c", CHILD, str(hold), "serve", str(run.path), "--port", "0", "--max-labels", "1"]
    child = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    lines, listening = [], threading.Event()

    def read():
        for line in child.stderr:
            lines.append(line)
            if "listening on http://" in line:
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert listening.wait(180), "".join(lines)
        port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+) ", "".join(lines)).group(1))
        wait_until(lambda: call(port, "GET", "/health").status == 200, 120, "the model")
        token = {"Authorization": "Bearer t0ken"}
        assert predict(port, run.texts).status == 401  # the token from ZLPR_SERVE_TOKEN
        settings = Pipeline.from_run(run.path, log=_quiet).decision_rule({"max_labels": 1})
        expected = predict_file_records(run.path, run.texts, tmp_path / "expected", **settings)
        assert predict(port, run.texts, token).json() == {"predictions": expected}
        hold.touch()
        clients = [Client(port, [text], token) for text in run.texts[:3]]
        for client in clients:
            client.start()
        in_progress = ("zlpr_serve_requests_in_progress", ())

        def all_received():
            return parse_metrics(call(port, "GET", "/metrics", headers=token).body.decode())[in_progress] == 3

        wait_until(all_received, what="three requests in flight")
        child.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_until(refused, what="the listening socket closed")
        hold.unlink()
        for client, record in zip(clients, expected):
            answer = client.result()
            assert answer.status == 200
            assert_same_records(answer.json()["predictions"], [record])
        assert child.wait(60) == 0
    finally:
        hold.unlink(missing_ok=True)
        if child.poll() is None:
            child.kill()
            child.wait(30)
    reader.join(30)
    log = "".join(lines)
    assert "SIGTERM: answering the 3 request(s) in flight, then stopping" in log
    assert re.search(r"^\S+ stopped$", log, re.MULTILINE), log


def test_what_keeps_the_command_from_serving_is_one_line_and_exit_2(
    classification_run, semi_pointer_run, tmp_path, capsys
):
    import shutil

    from toolkit.cli import main

    def error(*arguments):
        """The last line the command wrote (the log's lines come before it)."""
        assert main(["serve", *map(str, arguments)]) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert error(classification_run.path, "--queue-size", "0") == "error: --queue-size must be an integer >= 1; got 0"
    assert error(semi_pointer_run.path, "--min-labels", "1").startswith(
        "error: --min-labels: relation_extraction runs have no decision rule to change"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert error(classification_run.path, "--port", port).startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    damaged = Path(shutil.copytree(classification_run.path, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))
    model = damaged / "best" / "model.keras"
    with open(model, "r+b") as handle:
        handle.truncate(model.stat().st_size // 2)
    assert re.fullmatch(r"error: .*best/model\.keras: not a complete \.keras file \(.*", error(damaged, "--port", 0))
    assert error(tmp_path / "nowhere", "--port", 0).startswith("error: ")
