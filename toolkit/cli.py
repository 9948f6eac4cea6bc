"""Command line: `python -m toolkit train|evaluate|predict|demo ...`.

    python -m toolkit demo classification              # built-in demo, no downloads
    python -m toolkit train configs/reuters.yaml --set training.epochs=2
    python -m toolkit train configs/reuters.yaml --resume   # continue an interrupted run
    python -m toolkit evaluate runs/reuters
    python -m toolkit predict runs/reuters texts.jsonl predictions.jsonl
"""

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]

TASK_ALIASES = {"classification": "multilabel_classification", "relations": "relation_extraction"}


def _pipeline(task):
    if task == "multilabel_classification":
        from toolkit.classification import pipeline
    else:
        from toolkit.relations import pipeline
    return pipeline


def _parser():
    parser = argparse.ArgumentParser(prog="python -m toolkit", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train and evaluate from a config file")
    train.add_argument("config", help="YAML config file")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set training.epochs=3 (repeatable)")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in the same output folder")

    demo = commands.add_parser("demo", help="train on a built-in generated data set (no downloads)")
    demo.add_argument("task", choices=sorted(TASK_ALIASES), help="which pipeline")
    demo.add_argument("--output", default=None, help="run folder (default runs/demo_<task>)")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    evaluate = commands.add_parser("evaluate", help="score a run's best model on its dev and test data")
    evaluate.add_argument("run_dir")

    predict = commands.add_parser("predict", help="predict for a file of texts (JSON lines or plain lines)")
    predict.add_argument("run_dir")
    predict.add_argument("input")
    predict.add_argument("output")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("toolkit").info
    from toolkit.config import ConfigError, load_config
    from toolkit.data import DataError
    from toolkit.encoders.errors import EncoderLoadError
    from toolkit.runs import RunFolderError

    try:
        if args.command == "train":
            config = load_config(args.config, overrides=args.overrides)
            _pipeline(config.task).train(config, resume=args.resume, log=log)
        elif args.command == "demo":
            task = TASK_ALIASES[args.task]
            output = Path(args.output or f"runs/demo_{args.task}")
            config = make_demo_config(task, output, args.overrides, log=log)
            _pipeline(task).train(config, log=log)
        elif args.command == "evaluate":
            config = load_config(Path(args.run_dir) / "config.yaml")
            pipeline = _pipeline(config.task)
            pipeline.evaluate_run(args.run_dir, pipeline.read_data(config, log=log), log=log)
        elif args.command == "predict":
            config = load_config(Path(args.run_dir) / "config.yaml")
            _pipeline(config.task).predict_file(args.run_dir, args.input, args.output, log=log)
    except (ConfigError, DataError, EncoderLoadError, RunFolderError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def make_demo_config(task, output, overrides=(), log=print):
    """Write the built-in demo data into `<output>/data` and return its config."""
    from toolkit.config import default_config
    from toolkit.data import synthetic

    output = Path(output)
    data_dir = output.parent / (output.name + "_data")
    if task == "multilabel_classification":
        synthetic.write_multilabel_demo(data_dir)
    else:
        synthetic.write_relation_demo(data_dir)
    log(f"demo data written to {data_dir}")
    return default_config(task, data_dir=data_dir, output_dir=output, overrides=["output.overwrite=true", *overrides])
