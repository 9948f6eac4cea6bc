"""The server's counters, gauges and histograms, and `GET /metrics` in Prometheus' text format (0.0.4).

A few dozen lines suffice for the handful of series a server has, so there is
no client library to install; any Prometheus scraper reads the output.

| series | type | what |
|---|---|---|
| `zlpr_serve_requests_total{path, status}` | counter | requests answered, by path and HTTP status |
| `zlpr_serve_request_seconds{path}` | histogram | time from a request's arrival to its answer |
| `zlpr_serve_batch_texts` | histogram | texts per model call (its `_count`: the model calls) |
| `zlpr_serve_batch_requests` | histogram | requests answered by one model call |
| `zlpr_serve_model_seconds` | histogram | time of one model call |
| `zlpr_serve_queue_depth` | gauge | requests waiting for the model |
| `zlpr_serve_requests_in_progress` | gauge | `/predict` requests received and not yet answered |
| `zlpr_serve_ready` | gauge | 1 once the model is loaded |
"""

import math
import threading
from collections.abc import Callable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "Registry", "ServerMetrics", "CONTENT_TYPE"]

#: The Content-Type of the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _escaped(value) -> str:
    """A label value as the text format quotes it: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: Sequence[tuple] = ()) -> str:
    """`{path="/predict",status="200"}`, or nothing without labels."""
    pairs = [*zip(names, values), *extra]
    return "{" + ",".join(f'{name}="{_escaped(value)}"' for name, value in pairs) + "}" if pairs else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._lock = threading.Lock()

    def header(self) -> list:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """A count that only goes up, per label values."""

    kind = "counter"

    def __init__(self, name, help_text, labels=()):
        super().__init__(name, help_text, labels)
        self._values: dict = {}

    def inc(self, *label_values: str, amount: float = 1) -> None:
        with self._lock:
            self._values[label_values] = self._values.get(label_values, 0) + amount

    def value(self, *label_values: str) -> float:
        return self._values.get(label_values, 0)

    def lines(self) -> list:
        with self._lock:
            values = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, key)} {_number(v)}" for key, v in values]


class Gauge(_Metric):
    """A value read when the metrics are rendered (`read`), or set."""

    kind = "gauge"

    def __init__(self, name, help_text, read: Callable[[], float]):
        super().__init__(name, help_text)
        self.read = read

    def lines(self) -> list:
        return self.header() + [f"{self.name} {_number(self.read())}"]


class Histogram(_Metric):
    """Observations counted into cumulative buckets (upper bounds `buckets`, then +Inf), with their sum."""

    kind = "histogram"

    def __init__(self, name, help_text, buckets: Sequence[float], labels=()):
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        # A histogram without labels shows its zero buckets before the first observation.
        self._series: dict = {} if self.label_names else {(): ([0] * len(self.buckets), 0.0)}

    def observe(self, value: float, *label_values: str) -> None:
        with self._lock:
            counts, total = self._series.get(label_values, ([0] * len(self.buckets), 0.0))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[index] += 1
            self._series[label_values] = (counts, total + value)

    def count(self, *label_values: str) -> int:
        counts, _ = self._series.get(label_values, ([0], 0.0))
        return counts[-1]

    def total(self, *label_values: str) -> float:
        return self._series.get(label_values, ([0], 0.0))[1]

    def lines(self) -> list:
        with self._lock:
            series = sorted((key, (list(counts), total)) for key, (counts, total) in self._series.items())
        lines = self.header()
        for key, (counts, total) in series:
            for bound, count in zip(self.buckets, counts):
                bucket = _labels(self.label_names, key, [("le", _number(bound))])
                lines.append(f"{self.name}_bucket{bucket} {count}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {counts[-1]}")
        return lines


class Registry:
    """Metrics rendered together, in the order added."""

    def __init__(self):
        self.metrics: list = []

    def add(self, metric):
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        return "".join(line + "\n" for metric in self.metrics for line in metric.lines())


_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """The server's series (see the module docstring); `queue_depth`, `in_progress` and `ready`
    are read from the callables given when rendered."""

    def __init__(
        self,
        *,
        queue_depth: Callable[[], int] = lambda: 0,
        in_progress: Callable[[], int] = lambda: 0,
        ready: Callable[[], bool] = lambda: False,
    ):
        self.registry = Registry()
        add = self.registry.add
        self.requests = add(
            Counter("zlpr_serve_requests_total", "Requests answered, by path and status.", ("path", "status"))
        )
        self.request_seconds = add(
            Histogram("zlpr_serve_request_seconds", "Time from a request's arrival to its answer.", _SECONDS, ("path",))
        )
        self.batch_texts = add(Histogram("zlpr_serve_batch_texts", "Texts per model call.", _SIZES))
        self.batch_requests = add(
            Histogram("zlpr_serve_batch_requests", "Requests answered by one model call.", _SIZES)
        )
        self.model_seconds = add(Histogram("zlpr_serve_model_seconds", "Time of one model call.", _SECONDS))
        add(Gauge("zlpr_serve_queue_depth", "Requests waiting for the model.", queue_depth))
        add(Gauge("zlpr_serve_requests_in_progress", "Predict requests received and not yet answered.", in_progress))
        add(Gauge("zlpr_serve_ready", "1 once the model is loaded.", lambda: int(bool(ready()))))

    def render(self) -> str:
        return self.registry.render()
