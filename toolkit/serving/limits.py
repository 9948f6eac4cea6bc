"""What one server accepts and how it gathers requests: `ServeLimits`, the `serve` command's flags."""

from dataclasses import dataclass, fields

__all__ = ["ServeLimits"]


@dataclass(frozen=True)
class ServeLimits:
    """The limits of a server and its batching (the defaults are the `serve` command's).

    Attributes:
        max_body_bytes: the largest request body read (413 past it).
        max_text_chars: the most characters one text may have (413).
        max_texts: the most texts one request may hold (413).
        queue_size: requests waiting for the model at once; one more is
            answered 503 with `Retry-After` (memory stays bounded by about
            `queue_size * max_body_bytes`).
        max_batch_texts: the most texts gathered into one model call (a
            request with more is a call of its own; requests are never split).
        max_wait_ms: how long the first request of a batch waits for others
            to join it (from its arrival; none when the model was busy longer).
        retry_after_s: the `Retry-After` of a 503.
        shutdown_timeout_s: on SIGTERM, how long the requests in flight are
            given to be answered before the server stops anyway.
    """

    max_body_bytes: int = 1_048_576
    max_text_chars: int = 10_000
    max_texts: int = 256
    queue_size: int = 64
    max_batch_texts: int = 64
    max_wait_ms: float = 5.0
    retry_after_s: int = 1
    shutdown_timeout_s: float = 30.0

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            at_least = 0 if item.name in ("max_wait_ms", "shutdown_timeout_s", "retry_after_s") else 1
            if not number or value < at_least or (item.type is int and not isinstance(value, int)):
                kind = "an integer" if item.type is int else "a number"
                raise ValueError(f"{item.name} must be {kind} >= {at_least}; got {value!r}")
