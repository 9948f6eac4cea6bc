"""What the serving benchmarks share (`serve_load.py`, `serve_faults.py`): a `python -m toolkit serve`
process on 127.0.0.1, a client on one kept-alive connection, latency percentiles, a process's CPU
time and resident memory, the trend of that memory over a soak, and an encoder's FLOPs a text.

The standard library only, so that the pure parts are tested without TensorFlow or a server
(tests/test_benchmarks.py). Everything here talks to 127.0.0.1 and nothing else.
"""

from __future__ import annotations

import collections
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
MIB = 1 << 20
JSON_HEADERS = {"Content-Type": "application/json"}
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


# --- numbers -------------------------------------------------------------------------


def percentile(values, share: float) -> float:
    """The nearest-rank percentile: the smallest of `values` with at least `share` percent of them
    at or below it (always a value that was measured; `share` in (0, 100]).

    >>> percentile(range(1, 101), 95), percentile([3.0, 1.0, 2.0], 50)
    (95, 2.0)
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 < share <= 100:
        raise ValueError(f"share must be in (0, 100]; got {share!r}")
    rank = math.ceil(share * len(ordered) / 100 - 1e-9)  # 95 * 100 / 100 is 95.00000000000001
    return ordered[max(rank, 1) - 1]


def latency_summary(seconds) -> dict:
    """p50, p95, p99 and the mean of request latencies given in seconds, in milliseconds."""
    seconds = list(seconds)
    summary = {f"p{share}": 1000 * percentile(seconds, share) for share in (50, 95, 99)}
    summary["mean"] = 1000 * sum(seconds) / len(seconds)
    return summary


def fitted_slope(points) -> float:
    """The least-squares slope of `(x, y)` points (0 for fewer than two distinct x)."""
    points = list(points)
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


@dataclass(frozen=True)
class MemoryTrend:
    """A process's resident memory over a soak (bytes; seconds from the first sample)."""

    start: int
    peak: int
    end: int
    seconds: float
    slope: float  # bytes a second, fitted over the second half of the samples
    bound: int  # the most `growth` may be for the memory to count as flat

    @property
    def growth(self) -> float:
        """The second half's slope over the whole soak: what a steady leak of that rate would add in it."""
        return self.slope * self.seconds

    @property
    def flat(self) -> bool:
        return self.growth < self.bound


def memory_trend(samples, bound: int) -> MemoryTrend:
    """The trend of `(seconds, bytes)` samples: start, peak and end, and the slope of a linear fit over
    the second half (the first half holds the warm-up: TensorFlow's and the allocator's buffers for
    the batch shapes met first). Flat when that slope, over the whole soak, adds less than `bound`.

    >>> trend = memory_trend([(0, 100), (1, 180), (2, 200), (3, 200), (4, 201)], bound=10)
    >>> trend.start, trend.peak, trend.end, trend.slope, trend.flat
    (100, 201, 201, 0.5, True)
    """
    samples = sorted(samples)
    if len(samples) < 3:
        raise ValueError(f"the memory trend needs at least 3 samples; got {len(samples)}")
    first, last = samples[0][0], samples[-1][0]
    middle = first + (last - first) / 2
    second_half = [(seconds, size) for seconds, size in samples if seconds >= middle]
    return MemoryTrend(
        start=samples[0][1],
        peak=max(size for _, size in samples),
        end=samples[-1][1],
        seconds=last - first,
        slope=fitted_slope(second_half),
        bound=bound,
    )


# --- an encoder's work ------------------------------------------------------------------


def encoder_dims(model_file) -> dict:
    """`layers`, `hidden`, `intermediate` and `heads` of the BERT backbone saved in a `.keras` file
    (its `config.json`, read from the zip without Keras)."""
    with zipfile.ZipFile(model_file) as archive:
        config = json.loads(archive.read("config.json"))
    pending = [config]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if {"num_layers", "hidden_dim", "intermediate_dim"} <= item.keys():
                return {
                    "layers": int(item["num_layers"]),
                    "hidden": int(item["hidden_dim"]),
                    "intermediate": int(item["intermediate_dim"]),
                    "heads": int(item.get("num_heads") or 0),
                }
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    raise ValueError(f"{model_file}: no encoder config (num_layers, hidden_dim, intermediate_dim) in it")


def encoder_flops(dims: dict, length: int) -> float:
    """Forward matmul FLOPs of the encoder over one text of `length` tokens ([CLS] and [SEP] included).

    Per token and layer, `2 * (4 h^2 + 2 h i)`: the query, key, value and output projections and the
    two feed-forward products; per text and layer, `4 * length^2 * h`: the attention scores (Q K^T)
    and their product with the values (heads split `h`, so their number does not change the count).
    Embedding lookups, layer norms, softmax, GELU and the task's head are not counted, so this is a
    floor on the work done and the texts a second it allows a ceiling.

    >>> encoder_flops({"layers": 2, "hidden": 4, "intermediate": 8}, 3)
    1824.0
    """
    layers, hidden, inner = dims["layers"], dims["hidden"], dims["intermediate"]
    return 2.0 * layers * (4 * hidden * hidden + 2 * hidden * inner) * length + 4.0 * layers * hidden * length**2


# --- a process -------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """The resident memory of process `pid` (`VmRSS` of /proc/PID/status), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process `pid` has used, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServeFailed(RuntimeError):
    """The server did not start, did not become ready, or stopped: the message ends with its stderr."""


class ServerProcess:
    """`python -m toolkit serve RUN_DIR --host 127.0.0.1 --port PORT FLAGS` in a process of its own.

    `start()` returns once it listens and `/health` says its model is loaded (at most
    `ready_seconds`); `stop()` sends SIGTERM, `kill()` SIGKILL. Port 0: a free one, read from its
    `listening on` line. Its stderr is drained in a thread; the last lines are kept for errors.
    """

    def __init__(self, run_dir, flags=(), *, port: int = 0, ready_seconds: float = 600.0):
        self.run_dir, self.flags, self.port = Path(run_dir), list(flags), port
        self.ready_seconds = ready_seconds
        self.process: subprocess.Popen | None = None
        self.lines: collections.deque = collections.deque(maxlen=40)
        self.listening_seconds = self.ready_seconds_taken = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self) -> str:
        return "\n".join(self.lines)

    def start(self) -> ServerProcess:
        environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, "-m", "toolkit", "serve", str(self.run_dir), "--host", HOST]
        command += ["--port", str(self.port), *self.flags]
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=environment, cwd=REPO_ROOT,
        )  # fmt: skip
        listening = threading.Event()

        def drain():
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))
                found = _LISTENING.search(line)
                if found and not listening.is_set():
                    self.port = int(found.group(1))
                    listening.set()

        threading.Thread(target=drain, daemon=True, name="serve-stderr").start()
        deadline = started + self.ready_seconds
        while not listening.wait(0.05):
            if self.process.poll() is not None or time.perf_counter() > deadline:
                self._give_up("did not start listening")
        self.listening_seconds = time.perf_counter() - started
        while True:
            try:
                if request(self.port, "GET", "/health", timeout=10)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if self.process.poll() is not None or time.perf_counter() > deadline:
                self._give_up("did not become ready")
            time.sleep(0.05)
        self.ready_seconds_taken = time.perf_counter() - started
        return self

    def _give_up(self, what: str):
        code = self.process.poll()
        if code is None:
            self.process.kill()
            self.process.wait()
            what += f" within {self.ready_seconds:.0f} s"
        else:
            what += f" (exit status {code})"
        time.sleep(0.2)  # the last lines of its stderr
        raise ServeFailed(f"the server of {self.run_dir} {what}; its stderr ends:\n{self.tail()}")

    def stop(self, seconds: float = 60.0) -> int:
        """SIGTERM, then wait (SIGKILL after `seconds`); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> int:
        """SIGKILL (`kill -9`) and wait; its exit status (-9)."""
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            self.stop()


# --- HTTP ----------------------------------------------------------------------------------


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 60):
    """One request on a connection of its own: `(status, headers, body bytes)`."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def server_metrics(port: int) -> dict:
    """The unlabelled samples of the server's `/metrics` (`{"zlpr_serve_batch_texts_count": 12.0, ...}`)."""
    status, _, body = request(port, "GET", "/metrics", timeout=30)
    if status != 200:
        raise ServeFailed(f"GET /metrics answered {status}")
    samples = {}
    for line in body.decode("utf-8").splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            samples[name] = float(value)
    return samples


class Client:
    """One kept-alive HTTP/1.1 connection to the server (opened again after an error or a close)."""

    def __init__(self, port: int, timeout: float = 120):
        self.port, self.timeout = port, timeout
        self._connection: http.client.HTTPConnection | None = None

    def post(self, texts, **rule):
        """`POST /predict` of `{"texts": texts, **rule}`: `(status, parsed answer or None)`.
        A broken connection raises (OSError, http.client.HTTPException) and is opened again next time."""
        body = json.dumps({"texts": list(texts), **rule}).encode("utf-8")
        if self._connection is None:
            self._connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            self._connection.request("POST", "/predict", body=body, headers=JSON_HEADERS)
            response = self._connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def records_match(got, expected, *, rel: float = 1e-4, absolute: float = 1e-5) -> bool:
    """Whether two answers hold the same records: every string, number of labels, span... equal,
    floats (scores) to `rel`/`absolute` (a text batched with others is padded to another length, and
    TensorFlow rounds a little differently there, as `predict` does between chunk sizes)."""
    if isinstance(got, float) or isinstance(expected, float):
        both_numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (got, expected))
        return both_numbers and math.isclose(got, expected, rel_tol=rel, abs_tol=absolute)
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(
            records_match(got[key], expected[key], rel=rel, absolute=absolute) for key in got
        )
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(
            records_match(mine, theirs, rel=rel, absolute=absolute) for mine, theirs in zip(got, expected)
        )
    return type(got) is type(expected) and got == expected


def read_texts(path) -> list:
    """The texts of a file: a line starting with `{` is a JSON object with a `text`, any other line the
    text itself; blank lines are left out."""
    texts = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts.append(json.loads(line)["text"] if line.lstrip().startswith("{") else line)
    return texts


def dev_texts(run_dir) -> list:
    """The non-blank texts of a run's dev split, as the run read them (`Pipeline.read_data`)."""
    sys.path.insert(0, str(REPO_ROOT))
    from toolkit.pipeline import Pipeline

    data = Pipeline.from_run(run_dir, log=lambda message: None).read_data()
    return [text for text in data.dev.texts if text.strip()]
