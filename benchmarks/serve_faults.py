"""Fault runs of `python -m toolkit serve`: bad requests, a soak of 32 clients, and `kill -9` under load.

    python benchmarks/serve_faults.py RUN_DIR [RUN_DIR ...] [--per-kind 100] [--soak-seconds 60] [--write-doc]
    python benchmarks/serve_faults.py runs/demo_classification --per-kind 2 --soak-seconds 2   # a look

For each run folder, one server with its defaults (`ServeLimits`) on a free 127.0.0.1 port:

1. **Good answers first.** `--good` requests of 1 to 4 of the run's dev texts (the first with a blank
   text too), one at a time; their answers are what the later checks compare with.
2. **Bad requests.** 10 kinds (`KINDS`: malformed JSON, wrong types, missing or empty texts,
   non-string items, invalid UTF-8, a body over the limit, a text over the limit, too many texts, the
   wrong Content-Type, the wrong method or path), `--per-kind` of each, in a seeded shuffled order
   from `--fault-clients` threads, each on a connection of its own. Every answer must be the kind's
   4xx with `{"error": "one line"}` as JSON. Then the good requests again: the same answers (labels,
   spans and triples equal, scores within 1e-4; how many are bit-identical is said too).
3. **Soak.** `--soak-clients` (32) clients for `--soak-seconds` (60): nine requests in ten good (1 to
   8 texts, each answer checked for its number of records), one in ten bad (its 4xx checked). The
   server's resident memory (VmRSS of /proc/PID/status) is sampled every `--sample-seconds`: start,
   peak, end, and the slope of a linear fit over the second half. Flat when that slope, run over the
   whole soak, adds less than `--rss-bound-mib` (20 MiB; see `RSS_BOUND_WHY`).
4. **`kill -9` under load.** `--kill-clients` (32) clients sending good requests; after
   `--kill-after` seconds the server gets SIGKILL, is started again on the same port, and once
   `/health` says 200 the clients go on for `--after-restart` seconds (a client whose connection
   broke opens a new one after 0.1 s, after a 503 of a loading server 1 s, its Retry-After;
   bounded in time and count). Checks: answers before the kill and
   after the restart, then the good requests answer as in step 1. Finally SIGTERM: exit status 0.

Prints a summary; `--write-doc` replaces the section in docs/benchmarks.md. Exit status 1 when a
check failed. Loopback only; every client loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shlex
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _docs import REPO_ROOT, machine_line, write_section  # benchmarks/ is on the path
from _serving import (
    HOST,
    MIB,
    Client,
    ServerProcess,
    dev_texts,
    memory_trend,
    records_match,
    request,
    rss_bytes,
    server_metrics,
)

DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Serving under faults"
RSS_BOUND_WHY = (
    "20 MiB is about 1-2% of a MiniLM server's resident memory, above the steps in which the allocator and "
    "TensorFlow keep buffers for a new largest batch (a few MiB each), and below what a leak of one request's "
    "body, texts or records (a few hundred bytes to a few KiB) would add over a soak of tens of thousands of "
    "requests; a smaller leak needs a longer soak (`--soak-seconds`), whose growth the same slope extrapolates"
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- bad requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BadRequest:
    """A request as bytes on the wire, and the status it must get."""

    kind: str
    method: str
    path: str
    headers: dict
    body: bytes | None
    status: int
    chunked: bool = False

    def raw(self) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        body = self.body or b""
        if self.chunked:
            lines.append("Transfer-Encoding: chunked")
            pieces = [body[start : start + 65536] for start in range(0, len(body), 65536)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
        elif self.body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


JSON = {"Content-Type": "application/json"}


def _json(value) -> bytes:
    return json.dumps(value).encode("utf-8")


def _malformed(rng, text, limits):
    good = _json({"texts": [text, "another text"]})
    variants = [
        good[: rng.randrange(1, len(good) - 1)],  # cut short
        good[:-1] + b",}",
        good.replace(b'"', b"'"),
        b"{texts: [" + _json(text) + b"]}",
        b'{"texts": [' + _json(text) + b"]} trailing",
        b"{" * rng.randrange(2, 50),
    ]
    return variants[rng.randrange(len(variants))], 400


def _wrong_types(rng, text, limits):
    variants = [[text], text, 3, None, True, {"texts": text}, {"texts": {"0": text}}, {"texts": 7},
                {"texts": None}, {"texts": [text], "min_labels": "2"}, {"texts": [text], "max_labels": 1.5}]  # fmt: skip
    return _json(variants[rng.randrange(len(variants))]), 422


def _missing_or_empty(rng, text, limits):
    variants = [{}, {"texts": []}, {"text": [text]}, {"Texts": [text]}, {"min_labels": 1}, {"input": text}]
    return _json(variants[rng.randrange(len(variants))]), 422


def _non_string_items(rng, text, limits):
    texts = [text, "another text"]
    odd = [7, 2.5, None, True, [text], {"text": text}][rng.randrange(6)]
    texts.insert(rng.randrange(len(texts) + 1), odd)
    if rng.random() < 0.2:  # a lone surrogate: a JSON string that is no text
        return b'{"texts": ["a\\ud800b"]}', 422
    return _json({"texts": texts}), 422


def _invalid_utf8(rng, text, limits):
    bad = [b"\xff", b"\xc3(", b"\xe9", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc0\xaf", b"\xed\xa0\x80"][rng.randrange(7)]
    encoded = _json(text)[1:-1]
    cut = rng.randrange(len(encoded) + 1)
    return b'{"texts": ["' + encoded[:cut] + bad + encoded[cut:] + b'"]}', 400


def _oversized_body(rng, text, limits):
    size = limits.max_body_bytes + rng.randrange(1, 64 * 1024)
    prefix = b'{"texts": ["'
    return prefix + b"x" * (size - len(prefix) - 3) + b'"]}', 413


def _oversized_text(rng, text, limits):
    long_text = (text + " ") * (limits.max_text_chars // max(len(text) + 1, 1) + 1)
    long_text = long_text[: limits.max_text_chars + rng.randrange(1, 2000)]
    texts = [text] * rng.randrange(0, 3) + [long_text]
    return _json({"texts": texts}), 413


def _too_many_texts(rng, text, limits):
    return _json({"texts": [text] * (limits.max_texts + rng.randrange(1, 64))}), 413


def _wrong_content_type(rng, text, limits):
    kinds = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
             "application/xml", "application/json; charset=latin-1", "image/png"]  # fmt: skip
    return _json({"texts": [text]}), 415, {"Content-Type": kinds[rng.randrange(len(kinds))]}


def _wrong_method_or_path(rng, text, limits):
    variants = [("GET", "/predict", 405), ("PUT", "/predict", 405), ("DELETE", "/predict", 405),
                ("POST", "/health", 405), ("POST", "/metrics", 405), ("GET", "/nowhere", 404),
                ("POST", "/predict/", 404), ("POST", "/v1/predict", 404), ("GET", "/" + "x" * 300, 404)]  # fmt: skip
    method, path, status = variants[rng.randrange(len(variants))]
    return (_json({"texts": [text]}) if method in ("POST", "PUT") else None), status, JSON, method, path


# name -> a function of (rng, a good text, ServeLimits): (body, status[, headers[, method, path]])
KINDS = {
    "malformed JSON": _malformed,
    "wrong types": _wrong_types,
    "missing or empty texts": _missing_or_empty,
    "non-string items": _non_string_items,
    "invalid UTF-8": _invalid_utf8,
    "body over the limit": _oversized_body,
    "text over the limit": _oversized_text,
    "too many texts": _too_many_texts,
    "wrong Content-Type": _wrong_content_type,
    "wrong method or path": _wrong_method_or_path,
}


def bad_request(kind: str, rng: random.Random, text: str, limits) -> BadRequest:
    """One seeded request of `kind` (`KINDS`) built around a good `text`."""
    made = KINDS[kind](rng, text, limits)
    body, status = made[0], made[1]
    headers = made[2] if len(made) > 2 else JSON
    method, path = made[3:5] if len(made) > 3 else ("POST", "/predict")
    chunked = kind == "body over the limit" and rng.random() < 0.5  # half without a Content-Length
    return BadRequest(kind, method, path, dict(headers), body, status, chunked)


def send_raw(port: int, bad: BadRequest, timeout: float = 60):
    """Send `bad` on a connection of its own; its `(status, headers, body)`. A server that answers before
    reading the whole body (413) may close while it is still being sent: its answer is read anyway."""
    with socket.create_connection((HOST, port), timeout=timeout) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(bad.raw())
        response = http.client.HTTPResponse(connection, method=bad.method)
        response.begin()
        return response.status, response.headers, response.read()


def error_problem(status: int, headers, body: bytes, expected: int) -> str | None:
    """What is wrong with the answer to a bad request (None: the expected 4xx with one JSON line)."""
    if status != expected:
        return f"status {status}, expected {expected}: {body[:200]!r}"
    if not 400 <= status < 500:
        return f"status {status} is not a 4xx"
    if not (headers.get("Content-Type") or "").startswith("application/json"):
        return f"Content-Type {headers.get('Content-Type')!r}"
    if b"\n" in body.rstrip(b"\n") or b"\r" in body:
        return f"more than one line: {body[:200]!r}"
    try:
        answer = json.loads(body.decode("utf-8"))
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if not isinstance(answer, dict) or list(answer) != ["error"] or not isinstance(answer["error"], str):
        return f'not {{"error": "..."}}: {body[:200]!r}'
    if not answer["error"].strip() or "\n" in answer["error"]:
        return f"an empty or multi-line message: {answer['error']!r}"
    return None


# --- the checks ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    extra: dict = field(default_factory=dict)


def good_requests(texts: list, count: int, seed: int) -> list:
    """`count` requests of 1 to 4 texts; the first holds a blank text too."""
    rng = random.Random(seed)
    requests = [[texts[rng.randrange(len(texts))] for _ in range(rng.randint(1, 4))] for _ in range(count)]
    if requests:
        requests[0].insert(1, "")
    return requests


def good_answers(port: int, requests: list) -> list:
    """Each request's predictions, one request at a time (None for one that was not a 200)."""
    client, answers = Client(port), []
    try:
        for texts in requests:
            status, answer = client.post(texts)
            answers.append(answer["predictions"] if status == 200 and answer else None)
    finally:
        client.close()
    return answers


def compare_good(port: int, requests: list, expected: list, what: str) -> Check:
    got = good_answers(port, requests)
    equal = sum(mine is not None and records_match(mine, theirs) for mine, theirs in zip(got, expected))
    identical = sum(mine is not None and mine == theirs for mine, theirs in zip(got, expected))
    detail = f"{equal} of {len(requests)} equal ({identical} bit-identical)"
    return Check(f"good answers {what}", equal == len(requests), detail)


def fault_run(server: ServerProcess, texts: list, args, limits) -> tuple:
    """Every kind `args.per_kind` times, shuffled, from `args.fault_clients` threads; a Check and the
    per-kind counts."""
    rng = random.Random(args.seed)
    plan = [(kind, rng.random()) for kind in KINDS for _ in range(args.per_kind)]
    rng.shuffle(plan)
    results = {kind: {"right": 0, "statuses": {}, "problems": [], "example": None} for kind in KINDS}
    lock = threading.Lock()
    deadline = time.monotonic() + args.fault_seconds

    def client(number):
        for index in range(number, len(plan), args.fault_clients):
            if time.monotonic() > deadline:
                return
            kind, seed = plan[index]
            bad = bad_request(kind, random.Random(seed), texts[index % len(texts)], limits)
            try:
                status, headers, body = send_raw(server.port, bad)
                problem = error_problem(status, headers, body, bad.status)
            except (OSError, http.client.HTTPException) as error:
                status, body, problem = None, b"", f"no answer: {type(error).__name__}: {error}"
            with lock:
                counts = results[kind]
                counts["statuses"][status] = counts["statuses"].get(status, 0) + 1
                if problem is None:
                    counts["right"] += 1
                    counts["example"] = counts["example"] or json.loads(body)["error"]
                elif len(counts["problems"]) < 3:
                    counts["problems"].append(problem)

    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(args.fault_clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.fault_seconds + 120)
    right = sum(counts["right"] for counts in results.values())
    statuses = {}
    for counts in results.values():
        for status, count in counts["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items(), key=str))
    detail = f"{right} of {len(plan)} the kind's 4xx with one JSON line ({shown})"
    return Check(f"{len(KINDS)} kinds of bad request x {args.per_kind}", right == len(plan), detail), results


def soak(server: ServerProcess, texts: list, args, limits) -> Check:
    """`args.soak_clients` clients for `args.soak_seconds`, the server's RSS sampled meanwhile."""
    stop = threading.Event()
    counts = {"good": 0, "bad": 0, "wrong": 0, "failed": 0}
    problems, samples = [], []
    lock = threading.Lock()
    kinds = list(KINDS)

    def client(number):
        rng, connection = random.Random(args.seed * 1000 + number), Client(server.port)
        try:
            for _ in range(args.max_requests):
                if stop.is_set():
                    return
                try:
                    if rng.random() < 0.1:
                        bad = bad_request(kinds[rng.randrange(len(kinds))], rng, rng.choice(texts), limits)
                        problem, outcome = error_problem(*send_raw(server.port, bad), bad.status), "bad"
                    else:
                        batch = [rng.choice(texts) for _ in range(rng.randint(1, 8))]
                        status, answer = connection.post(batch)
                        found = len((answer or {}).get("predictions", ())) if status == 200 else None
                        problem = None if found == len(batch) else f"status {status}, {found} records for {len(batch)}"
                        outcome = "good"
                except (OSError, http.client.HTTPException) as error:
                    problem, outcome = f"{type(error).__name__}: {error}", "failed"
                with lock:
                    counts[outcome if problem is None else ("failed" if outcome == "failed" else "wrong")] += 1
                    if problem is not None and len(problems) < 5:
                        problems.append(problem)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(args.soak_clients)]
    began = time.monotonic()
    samples.append((0.0, rss_bytes(server.pid)))
    for thread in threads:
        thread.start()
    while time.monotonic() - began < args.soak_seconds:
        time.sleep(max(0.0, began + len(samples) * args.sample_seconds - time.monotonic()))
        samples.append((time.monotonic() - began, rss_bytes(server.pid)))
    stop.set()
    for thread in threads:
        thread.join(180)
    seconds = time.monotonic() - began
    trend = memory_trend(samples, bound=args.rss_bound_mib * MIB)
    requests = sum(counts.values())
    detail = (
        f"{args.soak_clients} clients, {seconds:.0f} s, {requests:,} requests ({requests / seconds:,.0f}/s; "
        f"{counts['good']:,} good, {counts['bad']:,} bad answered as they should, {counts['wrong']} wrong, "
        f"{counts['failed']} failed); resident memory {trend.start / MIB:,.1f} MiB at the start, peak "
        f"{trend.peak / MIB:,.1f}, end {trend.end / MIB:,.1f}; second half {trend.slope * 60 / MIB:+.2f} MiB a "
        f"minute, {trend.growth / MIB:+.1f} MiB over the soak (flat: under {args.rss_bound_mib:g} MiB)"
    )
    passed = trend.flat and counts["wrong"] == 0 and counts["failed"] == 0
    extra = {"samples": samples, "problems": problems, "counts": counts}
    return Check("soak: resident memory flat, every answer right", passed, detail, extra)


def kill_under_load(server: ServerProcess, requests: list, expected: list, texts: list, args):
    """SIGKILL the server with clients sending, start it again on the same port; (Check, the new server)."""
    stop = threading.Event()
    answered, failed, problems = [], [0], []
    lock = threading.Lock()
    hard_stop = time.monotonic() + args.kill_after + args.ready_seconds + args.after_restart + 60

    def client(number):
        rng, connection = random.Random(number), Client(server.port, timeout=30)
        try:
            for _ in range(args.max_requests):
                if stop.is_set() or time.monotonic() > hard_stop:
                    return
                batch = [rng.choice(texts) for _ in range(rng.randint(1, 4))]
                try:
                    status, answer = connection.post(batch)
                    ok = status == 200 and len((answer or {}).get("predictions", ())) == len(batch)
                except (OSError, http.client.HTTPException) as error:
                    status, ok = f"{type(error).__name__}", False
                with lock:
                    if ok:
                        answered.append(time.monotonic())
                    else:
                        failed[0] += 1
                        if len(problems) < 3:
                            problems.append(str(status))
                if not ok:  # down (try again shortly, on a new connection) or loading (503: as Retry-After says)
                    time.sleep(1.0 if status == 503 else 0.1)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(args.kill_clients)]
    for thread in threads:
        thread.start()
    time.sleep(args.kill_after)
    killed_at = time.monotonic()
    code = server.kill()
    restarted = ServerProcess(server.run_dir, server.flags, port=server.port, ready_seconds=args.ready_seconds)
    try:
        restarted.start()
    except Exception:
        stop.set()
        raise
    ready_at = time.monotonic()
    time.sleep(args.after_restart)
    stop.set()
    for thread in threads:
        thread.join(60)
    before = sum(moment < killed_at for moment in answered)
    after = sum(moment >= ready_at for moment in answered)
    same = compare_good(restarted.port, requests, expected, "after the restart")
    detail = (
        f"{args.kill_clients} clients; SIGKILL after {args.kill_after:g} s (exit status {code}) with {before:,} "
        f"answers before it; listening again on port {restarted.port} in {restarted.listening_seconds:.1f} s, ready "
        f"in {restarted.ready_seconds_taken:.1f} s; {after:,} answers in the {args.after_restart:g} s after; "
        f"{failed[0]:,} requests refused or cut meanwhile; good answers after the restart: {same.detail}"
    )
    passed = code == -9 and before > 0 and after > 0 and same.passed
    return Check("kill -9 under load, restart on the same port, served again", passed, detail), restarted


def fault_checks(run_dir: Path, args) -> dict:
    """Every check on one run: `{"checks": [Check], "kinds": per-kind counts}`."""
    from toolkit.serving.limits import ServeLimits

    limits = ServeLimits()
    texts = dev_texts(run_dir)[: args.texts]
    requests = good_requests(texts, args.good, args.seed)
    say(f"{run_dir}: starting the server")
    server = ServerProcess(run_dir, ready_seconds=args.ready_seconds).start()
    checks = []
    try:
        say(f"  ready in {server.ready_seconds_taken:.1f} s on port {server.port}")
        expected = good_answers(server.port, requests)
        checks.append(Check("good answers before", None not in expected, f"{len(requests)} requests answered"))
        say(f"  {len(KINDS)} kinds of bad request x {args.per_kind}")
        check, kinds = fault_run(server, texts, args, limits)
        checks += [check, compare_good(server.port, requests, expected, "after the bad requests")]
        health = request(server.port, "GET", "/health")[0]
        in_progress = server_metrics(server.port)["zlpr_serve_requests_in_progress"]
        checks.append(Check("health after the bad requests", health == 200 and in_progress == 0,
                            f"/health {health}, {in_progress:.0f} requests in progress"))  # fmt: skip
        say(f"  soak: {args.soak_clients} clients for {args.soak_seconds:g} s")
        checks.append(soak(server, texts, args, limits))
        say(f"  kill -9 under load ({args.kill_clients} clients)")
        check, server = kill_under_load(server, requests, expected, texts, args)
        checks.append(check)
    finally:
        code = server.stop()
    checks.append(Check("SIGTERM at the end", code == 0, f"exit status {code}"))
    return {"run": run_dir, "checks": checks, "kinds": kinds}


# --- the report --------------------------------------------------------------------------------


def summary_lines(result: dict) -> list:
    lines = [f"{result['run']}:"]
    for check in result["checks"]:
        lines.append(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
        lines += [f"         {problem}" for problem in check.extra.get("problems", [])]
    for kind, counts in result["kinds"].items():
        for problem in counts["problems"]:
            lines.append(f"  FAIL {kind}: {problem}")
    return lines


def section(args, argv, results: list, load_start: float, load_end: float) -> str:
    lines = [
        SECTION,
        "",
        "What bad requests, a soak and `kill -9` under load do to `python -m toolkit serve` "
        "(`benchmarks/serve_faults.py`; its docstring says what each step sends). One server a run, with its "
        "default limits, on 127.0.0.1; clients are threads of the benchmark's process. A bad request is sent on a "
        'connection of its own and passes when its answer is the kind\'s 4xx with `{"error": "one line"}`; good '
        "answers are compared with those the same requests got before (labels, spans and triples equal, scores "
        f"within 1e-4). Memory is flat when the slope of the second half of the soak, over the whole soak, adds "
        f"less than {args.rss_bound_mib:g} MiB: {RSS_BOUND_WHY}.",
        "",
        "| run | check | result | passed |",
        "|---|---|---|---|",
    ]
    for result in results:
        for check in result["checks"]:
            lines.append(
                f"| {result['run'].name} | {check.name} | {check.detail} | {'yes' if check.passed else 'NO'} |"
            )
    lines += ["", "Each kind of bad request, the status it must get and an error line it got (first run):", ""]
    lines += ["| kind | status | answered as it should | an error line |", "|---|---|---:|---|"]
    first = results[0]["kinds"]
    for kind, counts in first.items():
        statuses = "/".join(str(status) for status in sorted(counts["statuses"], key=str))
        example = (counts["example"] or "").replace("|", "\\|")
        example = example if len(example) <= 100 else example[:97] + "..."
        lines.append(f"| {kind} | {statuses} | {counts['right']} of {sum(counts['statuses'].values())} | {example} |")
    given = list(argv) + ([] if "--write-doc" in argv else ["--write-doc"])
    lines += ["", f"Command: `{shlex.join(['python', 'benchmarks/serve_faults.py', *given])}`", ""]
    lines += [machine_line(load_start, load_end) + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by train")
    parser.add_argument("--per-kind", type=int, default=100, help="bad requests of each kind (default 100)")
    parser.add_argument("--fault-clients", type=int, default=8, help="threads sending the bad requests")
    parser.add_argument("--fault-seconds", type=float, default=300, help="no bad request sent after this")
    parser.add_argument("--good", type=int, default=16, help="good requests compared before and after")
    parser.add_argument("--texts", type=int, default=2000, help="dev texts the requests draw from")
    parser.add_argument("--soak-seconds", type=float, default=60)
    parser.add_argument("--soak-clients", type=int, default=32)
    parser.add_argument("--sample-seconds", type=float, default=1.0, help="between two RSS samples")
    parser.add_argument("--rss-bound-mib", type=float, default=20.0, help="the most growth that counts as flat")
    parser.add_argument("--kill-clients", type=int, default=32)
    parser.add_argument("--kill-after", type=float, default=5.0, help="seconds of load before the SIGKILL")
    parser.add_argument("--after-restart", type=float, default=5.0, help="seconds of load once served again")
    parser.add_argument("--max-requests", type=int, default=100_000, help="the most requests one client sends")
    parser.add_argument("--ready-seconds", type=float, default=600, help="the longest a server may take to load")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-doc", action="store_true", help=f"replace the section in {DOC.relative_to(REPO_ROOT)}")
    args = parser.parse_args(argv)
    if args.soak_seconds < 3 * args.sample_seconds:
        parser.error("--soak-seconds must be at least 3 --sample-seconds (the memory trend needs 3 samples)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO_ROOT))

    load_start = os.getloadavg()[0]
    results = [fault_checks(run_dir, args) for run_dir in args.run_dirs]
    for result in results:
        print("\n".join(summary_lines(result)))
    passed = all(check.passed for result in results for check in result["checks"])
    print("every check passed" if passed else "SOME CHECKS FAILED")
    if args.write_doc:
        given = sys.argv[1:] if argv is None else argv
        write_section(DOC, SECTION, section(args, given, results, load_start, os.getloadavg()[0]))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
