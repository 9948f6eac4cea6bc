"""Texts a second and latency of `python -m toolkit serve` at 1, 8 and 32 concurrent clients, beside the
same server with batching off, `predict` over a file, the exported SavedModel and the FLOP limit.

    python benchmarks/serve_load.py RUN_DIR [RUN_DIR ...] [--requests 1024] [--saved-model DIR ...]
        [--write-doc] [--write-readme]
    python benchmarks/serve_load.py runs/demo_classification --requests 64 --clients 1 4 --rounds 1   # a look

For each run folder, on the same texts (`--requests` of its dev split, seeded, or of `--texts FILE`):

- `serve` with its defaults (batching on) and `serve --max-batch-texts 1` (batching off: a model call
  a request), each in a process of its own on a free 127.0.0.1 port, one after the other. Clients
  are threads of this process, each on one kept-alive connection, each request one text: 1, 8 and
  32 clients send the `--requests` texts between them, after an untimed warm-up. A request's
  latency runs from sending it to the last byte of its answer; texts a second are the texts answered
  over the time from the first request to the last answer; p50/p95/p99 are nearest-rank.
- (b) `predict` over a file of the texts, in this process: the run pipeline's `stream_predictions`
  with its model loaded, as `python -m toolkit predict` runs once the model is loaded (best of
  `--rounds` after an untimed pass).
- (c) the exported SavedModel (`--saved-model DIR`, one a run in order, `-` for none; what
  `python -m toolkit export RUN OUT` writes): `tf.saved_model.load`, its `serving_default` called on
  batches of the texts (tokenizing included when it takes token ids), best of `--rounds`.
- (d) the FLOP limit: this machine's float32 matmul peak (`[N, N] @ [N, N]` with TensorFlow, best of
  `--matmul-rounds`, before the first server and after the last, no server running) over the
  encoder's forward matmul FLOPs a text (`_serving.encoder_flops`) at each text's own token count,
  [CLS] and [SEP] included: the texts a second the encoder alone allows at that peak when nothing is
  padded (a text longer than maxlen counted at maxlen). Beside it, the limit at maxlen (every text
  padded to it), a floor the server beats whenever it pads less.

Bounded: `--requests` requests a measurement and none started after `--max-seconds`; loopback only.
The targets (issue #30): serve at 32 clients at least 3x the texts a second of batching off at 32
clients, and at least half the FLOP limit. Exit status 1 when a request failed (a target missed is
reported, not an error).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

from _docs import REPO_ROOT, machine_line, write_block, write_section  # benchmarks/ is on the path
from _serving import (
    Client,
    ServerProcess,
    cpu_seconds,
    dev_texts,
    encoder_dims,
    encoder_flops,
    latency_summary,
    read_texts,
    server_metrics,
)

DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Serving throughput and latency"
README = REPO_ROOT / "README.md"
BLOCK = "serve_load"
# (key, how the table names it, the `serve` flags)
MODES = (
    ("on", "serve, batching on (its defaults)", []),
    ("off", "serve, batching off (`--max-batch-texts 1`)", ["--max-batch-texts", "1"]),
)
TARGET_BATCHING, TARGET_FLOPS = 3.0, 0.5


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the texts -------------------------------------------------------------------------


def pick_texts(source: list, count: int, seed: int) -> list:
    """`count` texts of `source`, seeded order, repeated when `source` has fewer."""
    if not source:
        raise SystemExit("no texts to send")
    order = list(source)
    random.Random(seed).shuffle(order)
    return [order[index % len(order)] for index in range(count)]


# --- clients against a server --------------------------------------------------------------


def measure(server: ServerProcess, texts: list, clients: int, max_seconds: float) -> dict:
    """`clients` threads, each on one kept-alive connection, sending one text a request: client `c`
    the texts `c, c + clients, ...`, none started after `max_seconds`."""
    latencies = [[] for _ in range(clients)]
    failures = []
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(number):
        connection = Client(server.port)
        start.wait()
        try:
            for text in texts[number::clients]:
                if time.perf_counter() > deadline[0]:
                    break
                began = time.perf_counter()
                try:
                    status, answer = connection.post([text])
                except OSError as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    continue
                if status != 200 or len((answer or {}).get("predictions", ())) != 1:
                    failures.append(f"status {status}: {str(answer)[:200]}")
                    continue
                latencies[number].append(time.perf_counter() - began)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(clients)]
    for thread in threads:
        thread.start()
    before = server_metrics(server.port)
    server_cpu, own_cpu = cpu_seconds(server.pid), time.process_time()
    deadline[0] = time.perf_counter() + max_seconds
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(max_seconds + 300)  # each request times out after 120 s
    seconds = time.perf_counter() - began
    server_cpu, own_cpu = cpu_seconds(server.pid) - server_cpu, time.process_time() - own_cpu
    after = server_metrics(server.port)
    answered = [value for values in latencies for value in values]
    calls = after["zlpr_serve_batch_texts_count"] - before["zlpr_serve_batch_texts_count"]
    batched = after["zlpr_serve_batch_texts_sum"] - before["zlpr_serve_batch_texts_sum"]
    return {
        "clients": clients,
        "texts": len(answered),
        "seconds": seconds,
        "rate": len(answered) / seconds,
        **(latency_summary(answered) if answered else {}),
        "failures": failures,
        "model_calls": calls,
        "texts_per_call": batched / calls if calls else 0.0,
        "server_cores": server_cpu / seconds,
        "client_cores": own_cpu / seconds,
    }


def serve_rows(run_dir: Path, texts: list, args) -> dict:
    """Every client count against the server with batching on, then off."""
    rows = {}
    for key, name, flags in MODES:
        say(f"  {name}: starting")
        with ServerProcess(run_dir, flags) as server:
            say(f"    ready in {server.ready_seconds_taken:.1f} s on port {server.port}; warming up")
            measure(server, texts[: args.warmup], max(args.clients), args.max_seconds)
            measure(server, texts[: min(8, args.warmup)], 1, args.max_seconds)
            rows[key] = {}
            for clients in args.clients:
                row = measure(server, texts, clients, args.max_seconds)
                rows[key][clients] = row
                say(
                    f"    {clients:2d} clients: {row['rate']:8.1f} texts/s, p50 {row.get('p50', 0):.1f} ms, "
                    f"p99 {row.get('p99', 0):.1f} ms, {row['texts_per_call']:.1f} texts a model call, "
                    f"{len(row['failures'])} failed"
                )
    return rows


# --- in this process -------------------------------------------------------------------------


def load_in_process(run_dir: Path):
    from toolkit.pipeline import Pipeline

    pipeline = Pipeline.from_run(run_dir, log=lambda message: None)
    return pipeline, pipeline.load_predictor()


def tokenizer_of(predictor):
    preprocessor = getattr(predictor, "preprocessor", None)
    return getattr(preprocessor, "tokenizer", None) or predictor.tokenizer


def predict_over_file(pipeline, predictor, texts: list, rounds: int, folder: Path) -> dict:
    """(b): the texts written to a file `predict` reads, predicted as `predict_file` does with the model loaded."""
    from toolkit.streaming import stream_predictions

    layout = pipeline.prediction_input()
    source, output = folder / "texts.txt", folder / "predictions.jsonl"
    field = layout.for_file(source).text_field  # a .txt file: JSON lines with this (dotted) field
    lines = []
    for text in texts:
        record = text
        for part in reversed(field.split(".")):
            record = {part: record}
        lines.append(json.dumps(record, ensure_ascii=False))
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def once():
        began = time.perf_counter()
        count = stream_predictions(
            source,
            output,
            lambda chunk: pipeline.prediction_records(predictor, chunk),
            chunk_size=pipeline.prediction_chunk_size,
            layout=layout,
        )
        seconds = time.perf_counter() - began
        if count != len(texts):
            raise SystemExit(f"predict wrote {count} lines for {len(texts)} texts")
        return seconds

    once()  # traces the model for the shapes it meets
    seconds = min(once() for _ in range(rounds))
    return {"texts": len(texts), "seconds": seconds, "rate": len(texts) / seconds,
            "chunk": pipeline.prediction_chunk_size, "batch": getattr(predictor, "batch_size", None)}  # fmt: skip


def time_saved_model(folder: Path, texts: list, tokenizer, maxlen: int, batch: int, rounds: int) -> dict:
    """(c): the SavedModel's `serving_default` on batches of the texts: strings when it takes one string
    input, else token ids from the run's tokenizer (tokenizing timed too)."""
    import tensorflow as tf

    from toolkit.batching import length_grouped_batches

    loaded = tf.saved_model.load(str(folder))
    if "serving_default" not in loaded.signatures:
        raise SystemExit(f"{folder}: no serving_default signature (it has {sorted(loaded.signatures)})")
    function = loaded.signatures["serving_default"]
    specs = function.structured_input_signature[1]
    strings = [name for name, spec in specs.items() if spec.dtype == tf.string]
    if strings and len(specs) > 1:
        raise SystemExit(f"{folder}: serving_default takes {sorted(specs)}; this script feeds one string input")

    def calls():
        if strings:
            for start in range(0, len(texts), batch):
                yield {strings[0]: tf.constant(texts[start : start + batch])}
            return
        encoded = tokenizer.encode_batch_arrays(texts, maxlen=maxlen, offsets=False)
        for rows in length_grouped_batches(encoded.lengths, batch, shuffle=False):
            inputs = encoded.model_inputs(rows)
            if not set(specs) <= set(inputs):
                raise SystemExit(f"{folder}: serving_default takes {sorted(specs)}; this script has {sorted(inputs)}")
            yield {name: tf.constant(inputs[name], dtype=spec.dtype) for name, spec in specs.items()}

    def once():
        began = time.perf_counter()
        for call in calls():
            for tensor in function(**call).values():
                tensor.numpy()
        return time.perf_counter() - began

    once()
    seconds = min(once() for _ in range(rounds))
    fed = f"texts as strings (`{strings[0]}`)" if strings else f"token ids ({', '.join(sorted(specs))})"
    return {"texts": len(texts), "seconds": seconds, "rate": len(texts) / seconds, "fed": fed, "batch": batch}


def text_work(run_dir: Path, tokenizer, maxlen: int, texts: list) -> dict:
    """(d)'s count: the encoder's shape (from the saved model) and its FLOPs a text, unpadded and at maxlen."""
    model_file = next(iter(sorted((run_dir / "best").glob("*.keras"))), None)
    if model_file is None:
        raise SystemExit(f"{run_dir}/best holds no .keras model")
    dims = encoder_dims(model_file)
    lengths = [int(length) for length in tokenizer.encode_batch_arrays(texts, offsets=False).lengths]
    counted = [min(length, maxlen) for length in lengths]
    return {
        "dims": dims,
        "maxlen": maxlen,
        "mean_tokens": sum(counted) / len(counted),
        "over_maxlen": sum(length > maxlen for length in lengths),
        "flops": sum(encoder_flops(dims, length) for length in counted) / len(counted),
        "flops_at_maxlen": encoder_flops(dims, maxlen),
    }


def matmul_peak(size: int, rounds: int, repeats: int = 3) -> float:
    """The best float32 `[size, size] @ [size, size]` GFLOP/s of `rounds` timings of `repeats` products."""
    import tensorflow as tf

    left, right = tf.random.normal((size, size), seed=1), tf.random.normal((size, size), seed=2)
    tf.linalg.matmul(left, right).numpy()
    best = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(repeats):
            product = tf.linalg.matmul(left, right)
        float(product[0, 0].numpy())
        best = max(best, 2.0 * size**3 * repeats / (time.perf_counter() - began) / 1e9)
    return best


def measure_run(run_dir: Path, saved_model, args) -> dict:
    say(f"{run_dir}:")
    source = read_texts(args.texts) if args.texts else dev_texts(run_dir)
    texts = pick_texts(source, args.requests, args.seed)
    result = {"run": str(run_dir), "name": run_dir.name, "texts": len(texts), "distinct_texts": len(set(texts))}
    result["serve"] = serve_rows(run_dir, texts, args)
    say("  in this process: predict over a file, the SavedModel, the encoder's FLOPs")
    pipeline, predictor = load_in_process(run_dir)
    result["task"] = pipeline.config.task
    tokenizer, maxlen = tokenizer_of(predictor), int(pipeline.config.model.maxlen)
    with tempfile.TemporaryDirectory(prefix="serve_load_") as folder:
        result["predict_file"] = predict_over_file(pipeline, predictor, texts, args.rounds, Path(folder))
    if saved_model:
        result["saved_model"] = time_saved_model(
            Path(saved_model), texts, tokenizer, maxlen, args.saved_model_batch, args.rounds
        )
        result["saved_model"]["folder"] = str(saved_model)
    else:
        result["saved_model"] = None
    result["work"] = text_work(run_dir, tokenizer, maxlen, texts)
    return result


# --- the tables ------------------------------------------------------------------------------


def targets(result: dict, peak: float, clients: int) -> dict:
    """Serve at `clients` against batching off at `clients`, and against the FLOP limit."""
    on, off = result["serve"]["on"][clients], result["serve"]["off"][clients]
    limit = peak * 1e9 / result["work"]["flops"]
    return {"clients": clients, "batching": on["rate"] / off["rate"], "flops": on["rate"] / limit, "limit": limit,
            "limit_at_maxlen": peak * 1e9 / result["work"]["flops_at_maxlen"]}  # fmt: skip


def _met(value: float, target: float) -> str:
    return "met" if value >= target else "not met"


def _ms(row: dict, key: str) -> str:
    return f"{row[key]:.1f}" if key in row else "-"


def run_table(result: dict, peak: float, top: int) -> list:
    work, dims = result["work"], result["work"]["dims"]
    reached, on_top = targets(result, peak, top), result["serve"]["on"][top]
    lines = [
        f"**{result['name']}** ({result['task']}; encoder {dims['layers']} layer(s), hidden {dims['hidden']}, "
        f"feed-forward {dims['intermediate']}, {dims['heads']} heads; maxlen {work['maxlen']}; {result['texts']:,} "
        f"requests of one text, {result['distinct_texts']:,} distinct, {work['mean_tokens']:.1f} tokens a text on "
        f"average, {work['over_maxlen']} over maxlen)",
        "",
        "| how | clients | texts | texts/s | p50 ms | p95 ms | p99 ms | texts a model call | CPU cores: server + clients |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, name, _ in MODES:
        for clients, row in result["serve"][key].items():
            lines.append(
                f"| {name} | {clients} | {row['texts']:,} | {row['rate']:,.1f} | {_ms(row, 'p50')} | {_ms(row, 'p95')} "
                f"| {_ms(row, 'p99')} | {row['texts_per_call']:.1f} | {row['server_cores']:.2f} + "
                f"{row['client_cores']:.2f} |"
            )
    predicted = result["predict_file"]
    lines.append(
        f"| `predict` over a file of the texts, model loaded (chunks of {predicted['chunk']:,}, batches of "
        f"{predicted['batch']}) | | {predicted['texts']:,} | {predicted['rate']:,.1f} | | | | {predicted['batch']} | |"
    )
    saved = result["saved_model"]
    if saved:
        lines.append(
            f"| exported SavedModel, `serving_default` in this process ({saved['fed']}, {saved['batch']} a call) "
            f"| | {saved['texts']:,} | {saved['rate']:,.1f} | | | | {saved['batch']} | |"
        )
    else:
        lines.append(
            "| exported SavedModel, `serving_default` in this process | | | not measured (no --saved-model) | | | | | |"
        )
    lines += [
        f"| FLOP limit: {peak:,.1f} GFLOP/s over {work['flops'] / 1e9:.3f} GFLOP a text (each text's own tokens, "
        f"nothing padded) | | | {reached['limit']:,.1f} | | | | | |",
        f"| FLOP limit at maxlen {work['maxlen']} (every text padded to it; {work['flops_at_maxlen'] / 1e9:.3f} GFLOP "
        f"a text) | | | {reached['limit_at_maxlen']:,.1f} | | | | | |",
        "",
        f"Serve at {top} clients: {reached['batching']:.2f}x batching off at {top} clients (target >= "
        f"{TARGET_BATCHING:.0f}x: {_met(reached['batching'], TARGET_BATCHING)}); {reached['flops']:.0%} of the FLOP "
        f"limit (target >= {TARGET_FLOPS:.0%}: {_met(reached['flops'], TARGET_FLOPS)}; "
        f"{on_top['rate'] / reached['limit_at_maxlen']:.0%} of the limit at maxlen).",
        "",
    ]
    return lines


def command_line(argv) -> str:
    """The command as it was given (`--write-doc` and `--write-readme` added when missing)."""
    given = list(argv)
    given += [flag for flag in ("--write-doc", "--write-readme") if flag not in given]
    return shlex.join(["python", "benchmarks/serve_load.py", *given])


def section(args, argv, results: list, peaks: tuple, load_start: float, load_end: float) -> str:
    top, peak = max(args.clients), max(peaks)
    lines = [
        SECTION,
        "",
        "`python -m toolkit serve` under concurrent clients, beside the same server with batching off, `predict` over "
        "a file, the exported SavedModel and the FLOP limit (`benchmarks/serve_load.py`; its docstring says how each "
        "is measured). Each server runs in a process of its own on 127.0.0.1; the clients are threads of the "
        "benchmark's process on the same cores, each on one kept-alive connection, each request one text, the "
        f"{args.requests:,} requests of a measurement split evenly between them after an untimed warm-up. Latency: "
        "from sending a request to the last byte of its answer (nearest-rank percentiles); texts/s: texts answered "
        "over the time from the first request to the last answer. Texts a model call: from the server's `/metrics`. "
        "CPU cores: CPU seconds over wall seconds of the server process and of the clients' process. "
        "The FLOP limit counts the encoder's forward matmuls only (`encoder_flops`: "
        "`2 L (4 h^2 + 2 h i)` a token and `4 L n^2 h` a text of n tokens), at "
        f"the best float32 `[{args.matmul_size}, {args.matmul_size}]` matmul speed measured here ({peaks[0]:,.1f} "
        f"GFLOP/s before the servers, {peaks[1]:,.1f} after; the higher is used).",
        "",
    ]
    for result in results:
        lines += run_table(result, peak, top)
    lines += [f"Command: `{command_line(argv)}`", "", machine_line(load_start, load_end) + ".", ""]
    return "\n".join(lines)


def readme_block(args, results: list, peaks: tuple) -> str:
    top, peak = max(args.clients), max(peaks)
    shown = ", ".join(str(clients) for clients in args.clients)
    lines = [
        f"Measured by `python benchmarks/serve_load.py` (one text a request; {args.requests:,} requests a "
        f"measurement; clients and server on the same {os.cpu_count()} cores; the full tables and how each figure "
        "is measured: [docs/benchmarks.md](docs/benchmarks.md#serving-throughput-and-latency)):",
        "",
        f"| run | serve texts/s at {shown} clients | p50 / p99 ms at {top} | batching off at {top} | `predict` over a file "
        f"| SavedModel | FLOP limit | serve at {top} / batching off | serve at {top} / FLOP limit |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        on, off = result["serve"]["on"], result["serve"]["off"]
        reached = targets(result, peak, top)
        saved = f"{result['saved_model']['rate']:,.0f}" if result["saved_model"] else "not measured"
        rates = " / ".join(f"{on[clients]['rate']:,.0f}" for clients in args.clients)
        lines.append(
            f"| {result['name']} ({result['task']}) | {rates} "
            f"| {_ms(on[top], 'p50')} / {_ms(on[top], 'p99')} | {off[top]['rate']:,.0f} "
            f"| {result['predict_file']['rate']:,.0f} | {saved} | {reached['limit']:,.0f} "
            f"| {reached['batching']:.1f}x ({_met(reached['batching'], TARGET_BATCHING)}: >= {TARGET_BATCHING:.0f}x) "
            f"| {reached['flops']:.0%} ({_met(reached['flops'], TARGET_FLOPS)}: >= {TARGET_FLOPS:.0%}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by train")
    parser.add_argument("--requests", type=int, default=1024, help="requests (of one text) a measurement")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients")
    parser.add_argument("--warmup", type=int, default=128, help="untimed requests before each server's measurements")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="no request started after this, a measurement")
    parser.add_argument("--texts", help="a file of texts (one a line, or JSON lines with `text`); default: dev")
    parser.add_argument(
        "--saved-model", nargs="+", default=[], help="exported SavedModel folders, one a run ('-': none)"
    )
    parser.add_argument("--saved-model-batch", type=int, default=32, help="texts a serving_default call")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes of (b) and (c); the best is kept")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the texts' order")
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
    parser.add_argument("--write-doc", action="store_true", help=f"replace the section in {DOC.relative_to(REPO_ROOT)}")
    parser.add_argument("--write-readme", action="store_true", help="replace the summary table in README.md")
    args = parser.parse_args(argv)
    if len(args.saved_model) > len(args.run_dirs):
        parser.error("--saved-model: at most one folder a run")
    if min(args.clients) < 1 or args.requests < max(args.clients):
        parser.error("--clients must be >= 1 and --requests at least the most clients")
    args.saved_model = [None if folder == "-" else folder for folder in args.saved_model]
    args.saved_model += [None] * (len(args.run_dirs) - len(args.saved_model))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO_ROOT))

    load_start = os.getloadavg()[0]
    peak_before = matmul_peak(args.matmul_size, args.matmul_rounds)
    say(f"matmul peak before: {peak_before:,.1f} GFLOP/s")
    results = [measure_run(run_dir, saved, args) for run_dir, saved in zip(args.run_dirs, args.saved_model)]
    peak_after = matmul_peak(args.matmul_size, args.matmul_rounds)
    say(f"matmul peak after: {peak_after:,.1f} GFLOP/s")
    peaks = (peak_before, peak_after)
    given = sys.argv[1:] if argv is None else argv
    markdown = section(args, given, results, peaks, load_start, os.getloadavg()[0])
    print(markdown)
    print(readme_block(args, results, peaks))
    if args.json:
        args.json.write_text(json.dumps({"peaks": peaks, "results": results}, indent=1, default=str), encoding="utf-8")
    if args.write_doc:
        write_section(DOC, SECTION, markdown)
    if args.write_readme:
        write_block(README, BLOCK, readme_block(args, results, peaks))
    failed = [
        (result["name"], key, clients, row["failures"][:3])
        for result in results
        for key, rows in result["serve"].items()
        for clients, row in rows.items()
        if row["failures"]
    ]
    for name, key, clients, examples in failed:
        say(f"FAILED requests: {name}, batching {key}, {clients} clients: {examples}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
