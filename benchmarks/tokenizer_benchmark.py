"""Tokenizer benchmark: sentences per second, encoding with character offsets.

Compares `toolkit.encoders.WordPieceTokenizer` (Rust `tokenizers`, offsets
included) with bert4keras 0.11.5's `Tokenizer`, used as its relation extraction
example does: `tokenize` + `tokens_to_ids` (what `encode` does) and `rematch` for
the offsets. Ours is timed as `encode_batch_arrays` (padded NumPy arrays of ids,
segment ids and offsets: the target row; without offsets, the classification
pipeline's form) and as `encode_batch` (Python lists, per sentence). Data: the
LIC2019 sample texts (train + dev) and the Chinese BERT vocabulary from
`../shared/data`.

Each side runs in its own subprocess: bert4keras imports Keras at import time
and needs tf-keras (`TF_KERAS=1 TF_USE_LEGACY_KERAS=1`). Setup:

    pip install --no-deps bert4keras==0.11.5
    pip install "tf-keras==2.21.*"

Run (prints a markdown table; `--write-doc` puts it in the "## Tokenizer"
section of docs/benchmarks.md, leaving the other sections alone):

    python benchmarks/tokenizer_benchmark.py --write-doc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _docs import cpu_model, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
DEFAULT_DATA = [
    SHARED / "data" / "re" / "lic2019_sample" / "train_data.json",
    SHARED / "data" / "re" / "lic2019_sample" / "dev_data.json",
]
DEFAULT_VOCAB = SHARED / "data" / "chinese_bert" / "vocab.txt"
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Tokenizer"
TARGET_SPEEDUP = 4.0  # encode_batch_arrays, offsets included, against bert4keras (issue #17)


def read_texts(paths: list[Path]) -> list[str]:
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            texts.extend(json.loads(line)["text"] for line in handle if line.strip())
    return texts


def best_time(function, repeats: int) -> tuple[float, float]:
    """The fastest wall-clock and CPU (all threads) times of `repeats` runs,
    after one warm-up run."""
    function()
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    return min(wall), min(cpu)


# --- Workers: each runs in its own process and writes JSON ------------------------


def run_ours(texts, vocab, maxlen, repeats, mode):
    from toolkit.encoders import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(vocab, lowercase=True)
    if mode == "rust":
        # The Rust work alone: `tokenizers`' own batch call, results left as Rust objects (no
        # Python lists of ids and offsets). The ceiling for any Python wrapper of it.
        rust = tokenizer._tokenizer
        tokenizer._set_truncation(maxlen, pair=False)
        seconds, cpu_seconds = best_time(lambda: rust.encode_batch(texts), repeats)
    elif mode.startswith("arrays"):
        offsets = mode != "arrays-ids"

        def encode_arrays():
            # The padded arrays, as the pipelines read them (they are made on first use).
            batch = tokenizer.encode_batch_arrays(texts, maxlen=maxlen, offsets=offsets)
            return batch.token_ids, batch.segment_ids, batch.offsets if offsets else None

        seconds, cpu_seconds = best_time(encode_arrays, repeats)
    elif mode == "batch":
        seconds, cpu_seconds = best_time(lambda: tokenizer.encode_batch(texts, maxlen=maxlen), repeats)
    else:
        seconds, cpu_seconds = best_time(lambda: [tokenizer.encode(text, maxlen=maxlen) for text in texts], repeats)
    encodings = tokenizer.encode_batch(texts, maxlen=maxlen)
    token_ids = [encoding.token_ids for encoding in encodings]
    offsets = [[list(offset) for offset in encoding.offsets] for encoding in encodings]
    if mode.startswith("arrays"):
        # What the arrays hold, row by row, must be what the lists hold.
        batch = tokenizer.encode_batch_arrays(texts, maxlen=maxlen)
        rows = list(zip(batch.token_ids.tolist(), batch.offsets.tolist(), batch.lengths.tolist()))
        if [ids[:length] for ids, _, length in rows] != token_ids or [
            spans[:length] for _, spans, length in rows
        ] != offsets:
            raise SystemExit("encode_batch_arrays and encode_batch disagree")
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "token_ids": token_ids, "offsets": offsets}


def run_bert4keras(texts, vocab, maxlen, repeats, mode):
    from bert4keras.tokenizers import Tokenizer

    tokenizer = Tokenizer(str(vocab), do_lower_case=True)

    def encode_all():
        results = []
        for text in texts:
            tokens = tokenizer.tokenize(text, maxlen=maxlen)
            mapping = tokenizer.rematch(text, tokens)
            token_ids = tokenizer.tokens_to_ids(tokens)
            results.append((token_ids, [0] * len(token_ids), mapping))
        return results

    seconds, cpu_seconds = best_time(encode_all, repeats)
    results = encode_all()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "token_ids": [token_ids for token_ids, _, _ in results],
        # Character index lists -> (start, end) like ours; (0, 0) for specials.
        "offsets": [[[chars[0], chars[-1] + 1] if chars else [0, 0] for chars in mapping] for _, _, mapping in results],
    }


def worker(args) -> None:
    texts = read_texts(args.data)
    runner = run_ours if args.worker == "ours" else run_bert4keras
    result = runner(texts, args.vocab, args.maxlen, args.repeats, args.mode)
    result["sentences"] = len(texts)
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


# --- Driver ---------------------------------------------------------------------------


def launch(args, side: str, mode: str, extra_env: dict, result: Path) -> dict:
    env = {**os.environ, **extra_env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, __file__, "--worker", side, "--mode", mode, "--result", str(result),
        "--vocab", str(args.vocab), "--maxlen", str(args.maxlen), "--repeats", str(args.repeats),
        "--data", *map(str, args.data),
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        hint = ""
        if side == "bert4keras":
            hint = (
                "\nInstall it with: pip install --no-deps bert4keras==0.11.5 && "
                'pip install "tf-keras==2.21.*"  (or pass --skip-bert4keras)'
            )
        raise SystemExit(f"The {side} worker failed:\n{completed.stderr[-3000:]}{hint}")
    return json.loads(result.read_text(encoding="utf-8"))


def agreement(ours: dict, theirs: dict) -> tuple[float, float]:
    """Share of sentences with identical token ids, and with identical offsets."""
    same_ids = sum(a == b for a, b in zip(ours["token_ids"], theirs["token_ids"]))
    same_offsets = sum(a == b for a, b in zip(ours["offsets"], theirs["offsets"]))
    count = len(ours["token_ids"])
    return same_ids / count, same_offsets / count


def render(rows, sentences, args, agree, load) -> str:
    import tokenizers

    lines = [
        SECTION,
        "",
        f"Encoding {sentences:,} LIC2019 sentences (train + dev sample) into token ids, "
        "segment ids and character offsets with the Chinese BERT vocabulary (21,128 "
        f"WordPiece tokens), maxlen {args.maxlen}. Each side runs in its own process; "
        f"{args.rounds} rounds, the sides taking turns, {args.repeats} timed runs each "
        "after a warm-up; the best run counts. CPU time sums all threads.",
        "",
        "| tokenizer | call | sentences / s | vs bert4keras | CPU µs / sentence |",
        "|---|---|---:|---:|---:|",
    ]
    baseline = next((row["rate"] for row in rows if row["side"] == "bert4keras"), None)
    for row in rows:
        ratio = f"{row['rate'] / baseline:.1f}x" if baseline else "n/a"
        lines.append(f"| {row['name']} | {row['call']} | {row['rate']:,.0f} | {ratio} | {row['cpu_us']:.0f} |")
    lines += [
        "",
        "Wall-clock rates move with how busy the cores are (load average below); the "
        "CPU column is steadier. The Rust work is spread over the cores; reading its "
        "results into Python stays on one. `encode_batch` builds a list of ids and a "
        "list of `(start, end)` tuples per sentence; `encode_batch_arrays` reads them "
        "into flat NumPy arrays and pads those to the longest sentence (the timed call "
        "reads the padded ids, segment ids and offsets). The classification pipeline "
        "encodes without offsets (`offsets=False`); the relation and entity pipelines "
        "align spans on `encode_batch`'s lists.",
        "",
    ]
    ours = next((row for row in rows if row["mode"] == "arrays"), None)
    rust = next((row for row in rows if row["mode"] == "rust"), None)
    if baseline and ours:
        ratio = ours["rate"] / baseline
        met = "met" if ratio >= TARGET_SPEEDUP else "not met"
        lines.append(
            f"**Target: `encode_batch_arrays`, offsets included, at least {TARGET_SPEEDUP:g}x bert4keras: "
            f"{met}** ({ratio:.1f}x)."
        )
        if rust and ratio < TARGET_SPEEDUP:
            wrapper_us = 1e6 / ours["rate"]
            rust_us = 1e6 / rust["rate"]
            lines[-1] += (
                f" `tokenizers`' Rust batch call alone runs at {rust['rate'] / baseline:.1f}x bert4keras "
                f"({rust_us:.0f} µs a sentence, wall clock); reading its results into arrays adds "
                f"{wrapper_us - rust_us:.0f} µs a sentence, most of it `tokenizers` making a Python tuple "
                "per token offset (it hands offsets over no other way)."
            )
        lines.append("")

    if agree is not None:
        lines.append(f"Same token ids as bert4keras for {agree[0]:.1%} of sentences, same offsets for {agree[1]:.1%}.")
        lines.append("")
    lines += [
        f"Command: `{args.command}`",
        "",
        f"Machine: `nproc` = {len(os.sched_getaffinity(0))}, {cpu_model()}, load average "
        f"{load[0]:.1f} at the start and {load[1]:.1f} at the end (a shared machine); "
        f"Python {platform.python_version()}, tokenizers {tokenizers.__version__}, "
        "bert4keras 0.11.5.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA)
    parser.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB)
    parser.add_argument("--maxlen", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns each side takes")
    parser.add_argument("--write-doc", action="store_true", help=f"update {SECTION} in {DOC}")
    parser.add_argument("--skip-bert4keras", action="store_true")
    parser.add_argument("--worker", choices=["ours", "bert4keras"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="batch", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    args.command = " ".join(
        ["python benchmarks/tokenizer_benchmark.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
    )
    missing = [str(path) for path in [*args.data, args.vocab] if not path.is_file()]
    if missing:
        raise SystemExit(
            f"Missing {', '.join(missing)}: the benchmark reads ../shared/data beside the "
            "checkout (or $TOOLKIT_SHARED_DIR)."
        )

    threads = len(os.sched_getaffinity(0))
    runs = [
        ("toolkit WordPieceTokenizer", f"`encode_batch_arrays` ({threads} threads)", "ours", "arrays", {}),
        ("toolkit WordPieceTokenizer", "`encode_batch_arrays`, 1 thread", "ours", "arrays",
         {"TOKENIZERS_PARALLELISM": "false"}),
        ("toolkit WordPieceTokenizer", "`encode_batch_arrays(offsets=False)`", "ours", "arrays-ids", {}),
        ("toolkit WordPieceTokenizer", f"`encode_batch` ({threads} threads)", "ours", "batch", {}),
        ("toolkit WordPieceTokenizer", "`encode_batch`, 1 thread", "ours", "batch",
         {"TOKENIZERS_PARALLELISM": "false"}),
        ("toolkit WordPieceTokenizer", "`encode` per sentence", "ours", "single", {}),
        ("tokenizers (Rust) alone", f"`Tokenizer.encode_batch` ({threads} threads), no Python lists", "ours",
         "rust", {}),
    ]  # fmt: skip
    if not args.skip_bert4keras:
        runs.append(
            ("bert4keras 0.11.5 Tokenizer", "`tokenize` + `tokens_to_ids` + `rematch`",
             "bert4keras", "single",
             {"TF_KERAS": "1", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
        )  # fmt: skip
    load_start = os.getloadavg()[0]
    best: dict[int, dict] = {}
    outputs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.rounds):
            for index, (name, call, side, mode, env) in enumerate(runs):
                result = launch(args, side, mode, env, Path(folder) / f"{index}.json")
                outputs.setdefault(side, result)
                if index not in best or result["seconds"] < best[index]["seconds"]:
                    best[index] = result
                print(
                    f"round {round_index + 1}: {name}, {call}: "
                    f"{result['sentences'] / result['seconds']:,.0f} sentences/s",
                    file=sys.stderr,
                )
    rows = [
        {
            "name": name,
            "call": call,
            "side": side,
            "mode": mode,
            "rate": best[index]["sentences"] / best[index]["seconds"],
            "cpu_us": best[index]["cpu_seconds"] / best[index]["sentences"] * 1e6,
        }
        for index, (name, call, side, mode, _) in enumerate(runs)
    ]
    agree = agreement(outputs["ours"], outputs["bert4keras"]) if "bert4keras" in outputs else None
    load = (load_start, os.getloadavg()[0])
    markdown = render(rows, outputs["ours"]["sentences"], args, agree, load)
    print(markdown)
    if args.write_doc:
        write_section(DOC, SECTION, markdown)
        print(f"Wrote the {SECTION!r} section of {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
