"""Throughput of `python -m toolkit serve` under concurrent clients, against one batched `predict` call.

    python benchmarks/serve_throughput.py runs/demo_classification [--clients 16] [--texts 1024]

Starts the server on 127.0.0.1 at a free port twice (with its defaults, then with
`--max-batch-texts 1`: one request a model call), sends every text twice from `--clients` threads
(each on one kept-alive connection), each request holding `--per-request` texts (1 and 8 by
default), and prints the second pass's texts a second and model calls (from `/metrics`) beside
one `prediction_records` call over all the texts in this process (the best of three after a
first). Bounded: `--texts` texts, two passes each; loopback only.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def post(connection, texts):
    """One request on a kept-alive connection; its status."""
    body = json.dumps({"texts": texts}).encode("utf-8")
    connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status


def model_calls(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode("utf-8")
    finally:
        connection.close()
    return int(float(re.search(r"^zlpr_serve_batch_requests_count (\S+)$", text, re.MULTILINE).group(1)))


def start_server(run_dir, flags):
    environment = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "toolkit", "serve", str(run_dir), "--port", "0", *flags]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    for line in child.stderr:
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
            break
    else:
        raise SystemExit(f"the server did not start: {child.wait()}")
    threading.Thread(target=lambda: [None for _ in child.stderr], daemon=True).start()  # keep the pipe drained
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return child, port
        except OSError:
            pass
        time.sleep(0.1)
    child.kill()
    raise SystemExit("the model did not load within 300 s")


def measure(port, texts, clients, per_request):
    """Every text sent once from `clients` threads, each on one kept-alive connection, twice (the
    first pass traces the model for the batch shapes it meets); the second pass's texts a second,
    model calls and requests."""
    requests = [texts[start : start + per_request] for start in range(0, len(texts), per_request)]
    failures = []

    def client(number):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for request in requests[number::clients]:
                if post(connection, request) != 200:
                    failures.append(request)
        finally:
            connection.close()

    for _ in range(2):
        before = model_calls(port)
        threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed")
    return len(texts) / seconds, model_calls(port) - before, len(requests)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--texts", type=int, default=1024, help="texts sent in each measurement")
    parser.add_argument("--per-request", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--input", help="a file of texts (the run's dev split's `text` field by default)")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from toolkit.pipeline import Pipeline

    pipeline = Pipeline.from_run(args.run_dir, log=lambda message: None)
    source = Path(args.input or pipeline.config.data.dev)
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [json.loads(line)["text"] if line.lstrip().startswith("{") else line for line in lines]
    texts = (texts * (args.texts // len(texts) + 1))[: args.texts]
    predictor = pipeline.load_predictor()
    seconds = []
    for _ in range(4):  # the first calls trace the model; the best of the rest
        started = time.perf_counter()
        pipeline.prediction_records(predictor, texts)
        seconds.append(time.perf_counter() - started)
    print("| how | texts a second | model calls |\n|---|---|---|")
    print(f"| one predict call over the {len(texts)} texts | {len(texts) / min(seconds[1:]):,.0f} | 1 |")
    for name, flags in (
        ("batching (defaults)", []),
        ("one request a model call (--max-batch-texts 1)", ["--max-batch-texts", "1"]),
    ):
        child, port = start_server(args.run_dir, flags)
        try:
            for per_request in args.per_request:
                rate, calls, requests = measure(port, texts, args.clients, per_request)
                print(
                    f"| serve, {name}: {args.clients} clients, {per_request} text(s) a request | {rate:,.0f} "
                    f"| {calls} for {requests} requests |"
                )
        finally:
            child.terminate()
            child.wait(60)


if __name__ == "__main__":
    main()
