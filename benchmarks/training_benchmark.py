"""Training speed: both pipelines against bert4keras 0.11.5, and the share of matmul speed reached.

Two measurements in one run, for each pipeline:

1. Throughput (samples/s, real tokens/s, padded tokens/s) of the toolkit's pipeline against a
   bert4keras 0.11.5 script of the same model on the same data.
2. FLOP utilisation: the FLOP/s a training step reaches (FLOPs counted analytically, see
   `training_flops`) as a share of the FLOP/s of a large float32 matmul (`tf.linalg.matmul`,
   2048 x 2048 by default) timed in the same process just before each round.

Same on both sides:

- model: a randomly initialised BERT from `../shared/data/chinese_bert/bert_config.json` at
  reduced size (default 4 layers, hidden 256, 4 heads, feed-forward 1024; GELU, dropout 0.1)
  with the Chinese vocabulary (21,128 tokens); the toolkit loads it with `source: random,
  path: <folder>`, bert4keras with `build_transformer_model(config_path)`;
- data: the first `--sentences` LIC2019 training sentences of `../shared/data/re/lic2019_sample`;
  for classification each sentence is labelled with the predicates of its triples (a real
  multi-label task over the 50 schema predicates), for relation extraction the triples;
- batch size 32, maxlen 128, AdamW (weight decay 0.01, none on biases and norms, gradients
  clipped to norm 1.0 tensor by tensor, learning rate decaying linearly to 0),
  the multi-label categorical crossentropy, TensorFlow 2.21 graph mode (no XLA: Keras 3 turns
  it off on a CPU-only machine and tf-keras does not turn it on).

The toolkit side is the pipelines' own steps: `toolkit.config.load_config`, then the task's
`Pipeline` (`read_data`, `build`, `training_feed`, `compile`: the length-grouped stream of
cached token ids for classification, the sampled-subject `RelationDataFeed` for relations),
then `model.fit` one epoch per round (no validation, checkpoints or logs). The
bert4keras side is written as bert4keras's own examples are: its `Tokenizer`,
`DataGenerator` + `sequence_padding`, `build_transformer_model`, `multilabel_categorical_crossentropy`
and, for relations, the semi-pointer semi-tagging model of `examples/task_relation_extraction.py`
(`LayerNormalization(conditional=True)` on the sampled subject, a `Loss` layer), with its heads
producing logits for this loss instead of sigmoids for binary crossentropy.

Each side runs in a process of its own (bert4keras needs tf-keras and cannot share a process
with Keras 3). Both processes build their model and train `--warmup-epochs` untimed epochs
(tracing, first-call costs), then they take turns (A B, B A, A B, ...): a round is one epoch
over the sentences, timed from the call to `fit` to its return, so the input pipeline is
included. A rate is the median over the rounds; a speed-up is the median of the per-round
ratios of the two sides.

    python benchmarks/training_benchmark.py --write-doc      # about 9 minutes on 2 shared cores
    python benchmarks/training_benchmark.py --sentences 64 --rounds 1 --pipelines classification  # smoke run
    python benchmarks/training_benchmark.py --configs configs/goemotions.yaml,configs/reuters.yaml,configs/webnlg_star.yaml --sentences 1024 --write-doc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _docs import cpu_model, write_section  # benchmarks/ is on the path (run as a script)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
LIC2019 = SHARED / "data" / "re" / "lic2019_sample"
CHINESE_BERT = SHARED / "data" / "chinese_bert"
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Training speed"
PIPELINES = ("classification", "relations")
SIDES = ("toolkit", "bert4keras")
MARKER = "BENCHMARK "
TARGET_SPEEDUP = 1.3
TARGET_UTILISATION = 0.5
CONFIG_TARGET_SPEEDUP = 1.5  # at the shipped configs' shapes (issue: "at least 1.5x at every shape")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated: classification, relations")
    parser.add_argument("--sentences", type=int, default=256, help="LIC2019 training sentences per epoch")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per side, taking turns")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs per side first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n @ n x n reference matmul")
    parser.add_argument("--matmul-repeats", type=int, default=5, help="reference matmuls timed per round")
    parser.add_argument(
        "--profile-steps",
        type=int,
        default=4,
        help="steps traced with TensorFlow's profiler after the rounds, per side (0: none)",
    )
    parser.add_argument(
        "--configs",
        help="comma-separated shipped configs to measure at their own shapes instead: the config's encoder "
        "(pretrained weights on the toolkit side, its shape and vocabulary on bert4keras's), data (the first "
        "--sentences training examples), batch size, maxlen and weight average; e.g. "
        "configs/goemotions.yaml,configs/reuters.yaml,configs/webnlg_star.yaml; `config@64` runs the bert4keras "
        "side at batch 64 against the config's own batch size",
    )
    parser.add_argument(
        "--bert4keras-batch-size",
        type=int,
        help="with --configs: the bert4keras script's batch size (default: the config's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-doc", action="store_true", help=f"replace {SECTION} in {DOC}")
    parser.add_argument("--json", type=Path, help="also write every round's measurements to this file")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("sentences", "rounds", "batch_size", "maxlen", "layers", "hidden", "heads", "intermediate",
                 "matmul_size", "matmul_repeats"):  # fmt: skip
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}.")
    for name in ("warmup_epochs", "profile_steps"):
        if getattr(args, name) < 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 0; got {getattr(args, name)}.")
    if args.hidden % args.heads:
        raise SystemExit(f"--hidden ({args.hidden}) must be a multiple of --heads ({args.heads}).")
    args.pipelines = [name.strip() for name in args.pipelines.split(",") if name.strip()]
    unknown = sorted(set(args.pipelines) - set(PIPELINES)) or ([] if args.pipelines else ["(none)"])
    if unknown:
        raise SystemExit(f"--pipelines takes a comma-separated list of {', '.join(PIPELINES)}; got {unknown}.")
    # A job: (name, pipeline, shipped config or None for the LIC2019 setup of the default mode).
    args.jobs = [(pipeline, pipeline, None) for pipeline in args.pipelines]
    args.job_batch = {}
    if args.configs and not args.worker:
        # `path@64`: the bert4keras script at batch 64 against the config's own batch size.
        specs = [name.strip().partition("@") for name in args.configs.split(",") if name.strip()]
        missing = [path for path, _, _ in specs if not Path(path).is_file()]
        if missing:
            raise SystemExit(f"--configs: no such file: {', '.join(missing)}")
        if any(batch and not batch.isdigit() for _, _, batch in specs):
            raise SystemExit(f"--configs: `config@batch` takes a whole number after @; got {args.configs!r}.")
        args.jobs = [
            (Path(path).stem + (f"_bert4keras_batch_{batch}" if batch else ""), config_pipeline(Path(path)), Path(path))
            for path, _, batch in specs
        ]
        args.job_batch = {name: int(batch) for (name, _, _), (_, _, batch) in zip(args.jobs, specs) if batch}
    return args


def config_pipeline(path):
    """`classification` or `relations`: the benchmark pipeline of a config's task (read without Keras)."""
    import yaml

    task = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("task")
    pipelines = {"multilabel_classification": "classification", "relation_extraction": "relations"}
    if task not in pipelines:
        raise SystemExit(f"{path}: task {task!r}; the benchmark runs {', '.join(pipelines)}.")
    return pipelines[task]


# --- Shared inputs, written once by the parent ---------------------------------------------------


def prepare_workdir(args, folder: Path) -> None:
    """The BERT folder (config + vocabulary) and the data files both sides read."""
    missing = [str(path) for path in (CHINESE_BERT / "bert_config.json", CHINESE_BERT / "vocab.txt",
                                      LIC2019 / "train_data.json", LIC2019 / "all_50_schemas") if not path.is_file()]  # fmt: skip
    if missing:
        raise SystemExit(f"Missing {', '.join(missing)}: the benchmark reads ../shared/data beside the checkout.")
    model = folder / "model"
    model.mkdir()
    config = json.loads((CHINESE_BERT / "bert_config.json").read_text(encoding="utf-8"))
    config.update(
        num_hidden_layers=args.layers,
        hidden_size=args.hidden,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
    )
    (model / "bert_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    shutil.copy(CHINESE_BERT / "vocab.txt", model / "vocab.txt")

    with open(LIC2019 / "train_data.json", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()][: args.sentences]
    (folder / "relations_train.json").write_text("".join(lines), encoding="utf-8")
    shutil.copy(LIC2019 / "all_50_schemas", folder / "all_50_schemas")
    with open(LIC2019 / "all_50_schemas", encoding="utf-8") as handle:
        # The schema lists some predicates twice (for different subject and object types).
        predicates = list(dict.fromkeys(json.loads(line)["predicate"] for line in handle if line.strip()))
    (folder / "labels.txt").write_text("\n".join(predicates) + "\n", encoding="utf-8")
    records = []
    for line in lines:
        item = json.loads(line)
        labels = sorted({triple["predicate"] for triple in item["spo_list"]}, key=predicates.index)
        records.append(json.dumps({"text": item["text"], "labels": labels}, ensure_ascii=False) + "\n")
    (folder / "classification_train.jsonl").write_text("".join(records), encoding="utf-8")
    # The toolkit's config wants a dev split; it is read but not used here.
    (folder / "classification_dev.jsonl").write_text("".join(records[:64]), encoding="utf-8")
    (folder / "relations_dev.json").write_text("".join(lines[:64]), encoding="utf-8")


def prepare_config_job(args, folder: Path, config_path: Path, pipeline: str, bert4keras_batch_size=None) -> dict:
    """A shipped config's job: its data (the first `--sentences` training examples, as the toolkit
    reads them) in the files the bert4keras script reads, its encoder's shape and vocabulary as a
    `bert_config.json` bert4keras builds (random weights: speed does not depend on them), and
    `shape.json` (layers, sizes, batch, maxlen, pooling, weight average) for both workers."""
    from toolkit.config import load_config
    from toolkit.tasks import pipeline_class

    config = load_config(config_path, overrides=[f"data.max_examples={args.sentences}"])
    data = pipeline_class(config.task)(config, log=lambda message: None).read_data()
    encoder = Path(config.model.encoder.path)
    hub = json.loads((encoder / "config.json").read_text(encoding="utf-8"))
    bert_config = {key: hub[key] for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                             "intermediate_size", "hidden_act", "max_position_embeddings",
                                             "type_vocab_size")}  # fmt: skip
    bert_config.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "bert_config.json").write_text(json.dumps(bert_config, indent=2), encoding="utf-8")
    shutil.copy(encoder / "vocab.txt", folder / "model" / "vocab.txt")
    if pipeline == "classification":
        names = list(data.label_names)
        records = [{"text": text, "labels": labels} for text, labels in zip(data.train.texts, data.train.labels)]
        target = folder / "classification_train.jsonl"
    else:
        names = list(data.train.predicates)
        records = [
            {"text": text, "spo_list": [{"subject": s, "predicate": p, "object": o} for s, p, o in triples]}
            for text, triples in zip(data.train.texts, data.train.triples)
        ]
        target = folder / "relations_train.json"
    (folder / "labels.txt").write_text("".join(name + "\n" for name in names), encoding="utf-8")
    target.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    shape = {
        "config": config_path.as_posix(),
        "encoder": encoder.name,
        "layers": hub["num_hidden_layers"],
        "hidden": hub["hidden_size"],
        "heads": hub["num_attention_heads"],
        "intermediate": hub["intermediate_size"],
        "vocabulary": hub["vocab_size"],
        "maxlen": config.model.maxlen,
        "batch_size": config.training.batch_size,
        "bert4keras_batch_size": bert4keras_batch_size or args.bert4keras_batch_size or config.training.batch_size,
        "pooling": getattr(config.model, "pooling", None),
        "ema": config.training.ema,
        "examples": len(records),
    }
    (folder / "shape.json").write_text(json.dumps(shape, indent=2), encoding="utf-8")
    return shape


def apply_shape(args):
    """In a worker of a config job: take the job's sizes (`shape.json`) as the arguments."""
    shape = json.loads((args.workdir / "shape.json").read_text(encoding="utf-8"))
    for key in ("layers", "hidden", "heads", "intermediate", "maxlen"):
        setattr(args, key, shape[key])
    args.batch_size = shape["batch_size"] if args.worker == "toolkit" else shape["bert4keras_batch_size"]
    return shape


# --- Workers: one side of one pipeline, in a process of its own -----------------------------------


def batch_record(lengths, padded_length):
    """[rows, padded length, real tokens, sum of squared real lengths] of one batch."""
    lengths = [int(length) for length in lengths]
    return [len(lengths), int(padded_length), sum(lengths), sum(length * length for length in lengths)]


def matmul_flops_per_second(tf, rows, inner, columns, repeats):
    """FLOP/s of `repeats` float32 `[rows, inner] @ [inner, columns]` products (after one untimed)."""
    left = tf.random.normal((rows, inner), seed=1)
    right = tf.random.normal((inner, columns), seed=2)
    tf.linalg.matmul(left, right).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        product = tf.linalg.matmul(left, right)
    float(product[0, 0].numpy())
    return 2.0 * rows * inner * columns * repeats / (time.perf_counter() - start)


def reference_matmul(tf, args):
    """The machine's dense-matmul speed: the large square product."""
    size = args.matmul_size
    return matmul_flops_per_second(tf, size, size, size, args.matmul_repeats)


def model_shape_matmul(tf, args):
    """A feed-forward product at this model's shape: 64 tokens a row, `[batch * 64, hidden] @ [hidden,
    intermediate]`, repeated to about the large product's FLOPs."""
    rows = args.batch_size * 64
    repeats = max(1, round(args.matmul_repeats * args.matmul_size**3 / (rows * args.hidden * args.intermediate)))
    return matmul_flops_per_second(tf, rows, args.hidden, args.intermediate, repeats)


def toolkit_config(args, pipeline):
    from toolkit.config import load_config

    folder = args.workdir
    if args.config is not None:  # the shipped config, on the same examples as the bert4keras side
        overrides = [f"data.max_examples={args.sentences}", f"training.epochs={args.warmup_epochs + args.rounds}",
                     f"output.dir={folder / f'run_{pipeline}'}"]  # fmt: skip
        return load_config(args.config, overrides=overrides)
    encoder = {"source": "random", "path": str(folder / "model"), "dropout": 0.1}
    training = {
        "epochs": args.warmup_epochs + args.rounds,
        "batch_size": args.batch_size,
        "learning_rate": 2e-5,
        "weight_decay": 0.01,
        "decay": "linear",
        "seed": args.seed,
    }
    if pipeline == "classification":
        data = {
            "train": str(folder / "classification_train.jsonl"),
            "dev": str(folder / "classification_dev.jsonl"),
            "label_names": str(folder / "labels.txt"),
        }
        task, model = "multilabel_classification", {"pooling": "cls", "dropout": 0.1}
    else:
        data = {
            "train": str(folder / "relations_train.json"),
            "dev": str(folder / "relations_dev.json"),
            "schema": str(folder / "all_50_schemas"),
            "layout": "lic2019",
        }
        task, model = "relation_extraction", {}
    base = {
        "task": task,
        "data": data,
        "model": {"encoder": encoder, "maxlen": args.maxlen, **model},
        "training": training,
        "output": {"dir": str(folder / f"run_{pipeline}")},
    }
    return load_config(None, base=base)


def toolkit_trainer(args):
    """The toolkit's pipeline: `(epoch, some_steps, info, model)`.

    `epoch()` trains one epoch and returns the `batch_record` of every batch it trained;
    `some_steps(count)` trains `count` steps (for the profiler); `info` goes into the report.
    """
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    from toolkit.pipeline import expected_warnings_silenced
    from toolkit.tasks import pipeline_class

    config = toolkit_config(args, args.pipeline)
    keras.utils.set_random_seed(args.seed)
    quiet = lambda message: None  # noqa: E731
    pipeline = pipeline_class(config.task)(config, log=quiet)
    data = pipeline.read_data()
    predictor = pipeline.build(data)
    feed = pipeline.training_feed(predictor, data)
    pipeline.compile(predictor, feed)
    model = feed.model
    if args.pipeline == "classification":
        # Bookkeeping: note the shape of every batch the stream pads (an append per batch).
        generated = []
        preprocessor = predictor.preprocessor
        pad = preprocessor.inputs

        def recording_pad(encoded, rows=None):
            inputs = pad(encoded, rows)
            generated.append(batch_record(inputs["padding_mask"].sum(axis=1), inputs["token_ids"].shape[1]))
            return inputs

        preprocessor.inputs = recording_pad
        steps = feed.steps_per_epoch

        def epoch():
            del generated[:]
            with expected_warnings_silenced():
                model.fit(feed.train, epochs=1, steps_per_epoch=steps, verbose=0)
            # The stream pads ahead (prefetch); only the first `steps` batches were trained.
            return generated[:steps]

        def some_steps(count):
            with expected_warnings_silenced():
                model.fit(feed.train, epochs=1, steps_per_epoch=count, verbose=0)

        info = {"labels": len(data.label_names), "jit_compile": bool(model.jit_compile)}
        return epoch, some_steps, info, model

    # Bookkeeping: note the shape of every batch the feed hands out, by feed epoch and index.
    handed_out = {}
    feed = feed.train  # the RelationDataFeed, on one device

    class RecordingFeed(type(feed)):
        def __getitem__(self, index):
            batch = super().__getitem__(index)
            token_ids = batch["token_ids"] if isinstance(batch, dict) else batch[0]["token_ids"]
            record = batch_record((token_ids != self.pad_id).sum(axis=1), token_ids.shape[1])
            handed_out.setdefault(self.epoch, {})[index] = record
            return batch

    feed.__class__ = RecordingFeed

    def epoch():
        handed_out.clear()
        with expected_warnings_silenced():
            model.fit(feed, epochs=1, verbose=0)
        # `fit` first reads two batches to learn their shapes (and moves the feed to its next
        # epoch as it starts): the trained epoch is the last one whose every batch was handed out.
        trained = max(number for number, batches in handed_out.items() if len(batches) == len(feed))
        return [handed_out[trained][index] for index in range(len(feed))]

    def some_steps(count):
        with expected_warnings_silenced():
            model.fit(feed, epochs=1, steps_per_epoch=count, verbose=0)

    info = {"predicates": len(data.predicates), "jit_compile": bool(model.jit_compile)}
    return epoch, some_steps, info, model


def bert4keras_trainer(args):
    """The bert4keras 0.11.5 script, as its examples write it: `(epoch, some_steps, info, model)`."""
    from toolkit.compat import bert4keras as zlpr

    zlpr.prepare_environment()  # TF_KERAS, tf-keras, the legacy optimizer base bert4keras needs

    import numpy as np
    import tensorflow as tf
    from _bert4keras_relations import adamw  # benchmarks/ is on the path
    from bert4keras.backend import keras, multilabel_categorical_crossentropy
    from bert4keras.models import build_transformer_model
    from bert4keras.snippets import DataGenerator, sequence_padding
    from bert4keras.tokenizers import Tokenizer

    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    folder = args.workdir
    config_path, dict_path = str(folder / "model" / "bert_config.json"), str(folder / "model" / "vocab.txt")
    maxlen, batch_size = args.maxlen, args.batch_size
    tokenizer = Tokenizer(dict_path, do_lower_case=True)
    predicates = (folder / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
    predicate2id = {predicate: index for index, predicate in enumerate(predicates)}
    log = {}  # bookkeeping: the shape of every batch generated, by round

    def note(batch_token_ids):
        log.setdefault(state["round"], []).append(
            batch_record([len(ids) for ids in batch_token_ids], max(len(ids) for ids in batch_token_ids))
        )

    state = {"round": -1}

    shape = json.loads((folder / "shape.json").read_text(encoding="utf-8")) if args.config else {}

    def optimizer(steps):
        # Where the config averages the weights, so does the script, as bert4keras's AdamEMA.
        schedule = {0: 1, steps * (args.warmup_epochs + args.rounds): 0}
        return adamw(2e-5, schedule, weight_decay=0.01, clipnorm=1.0, ema=shape.get("ema"))

    if args.pipeline == "classification":
        data = []
        with open(folder / "classification_train.jsonl", encoding="utf-8") as handle:
            for line in handle:
                item = json.loads(line)
                data.append((item["text"], [predicate2id[label] for label in item["labels"]]))

        class data_generator(DataGenerator):
            def __iter__(self, random=False):
                batch_token_ids, batch_segment_ids, batch_labels = [], [], []
                for is_end, (text, labels) in self.sample(random):
                    token_ids, segment_ids = tokenizer.encode(text, maxlen=maxlen)
                    multi_hot = np.zeros(len(predicates))
                    multi_hot[labels] = 1
                    batch_token_ids.append(token_ids)
                    batch_segment_ids.append(segment_ids)
                    batch_labels.append(multi_hot)
                    if len(batch_token_ids) == self.batch_size or is_end:
                        note(batch_token_ids)
                        batch_token_ids = sequence_padding(batch_token_ids)
                        batch_segment_ids = sequence_padding(batch_segment_ids)
                        batch_labels = sequence_padding(batch_labels)
                        yield [batch_token_ids, batch_segment_ids], batch_labels
                        batch_token_ids, batch_segment_ids, batch_labels = [], [], []

        bert = build_transformer_model(config_path, return_keras_model=False)
        if shape.get("pooling") == "mean":  # masked mean over the tokens, as the config pools
            output = keras.layers.GlobalAveragePooling1D()(bert.model.output)
        else:
            output = keras.layers.Lambda(lambda x: x[:, 0])(bert.model.output)
        output = keras.layers.Dropout(0.1)(output)
        output = keras.layers.Dense(len(predicates), kernel_initializer=bert.initializer)(output)
        model = keras.models.Model(bert.model.input, output)
        generator = data_generator(data, batch_size)
        model.compile(loss=multilabel_categorical_crossentropy, optimizer=optimizer(len(generator)))
        train_model = model
    else:
        from _bert4keras_relations import relation_script  # benchmarks/ is on the path

        script = relation_script(tokenizer, predicates, maxlen, config_path, note=note)
        with open(folder / "relations_train.json", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        # Sentences with no placeable triple are skipped by the generator anyway; leaving them
        # out here makes one epoch of `len(generator)` steps one pass over the data.
        data = script.placeable(
            [
                {
                    "text": item["text"],
                    "spo_list": [(spo["subject"], spo["predicate"], spo["object"]) for spo in item["spo_list"]],
                }
                for item in records
            ]
        )
        data_generator, train_model = script.data_generator, script.train_model
        generator = data_generator(data, batch_size)
        train_model.compile(optimizer=optimizer(len(generator)))

    iterator = generator.forfit()
    steps = len(generator)

    def epoch():
        state["round"] += 1
        train_model.fit(iterator, steps_per_epoch=steps, epochs=1, verbose=0)
        # tf-keras prefetches one batch past the epoch's last step and drops it: count the trained ones.
        return log.get(state["round"], [])[:steps]

    def some_steps(count):
        train_model.fit(iterator, steps_per_epoch=count, epochs=1, verbose=0)

    return epoch, some_steps, {"samples_per_epoch": len(data)}, train_model


def run_worker(args) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    if args.config is not None:
        apply_shape(args)
    trainer = toolkit_trainer if args.worker == "toolkit" else bert4keras_trainer
    epoch, some_steps, info, model = trainer(args)
    import tensorflow as tf

    started = time.perf_counter()
    for _ in range(args.warmup_epochs):
        epoch()
    info.update(
        warmup_seconds=time.perf_counter() - started,
        parameters=int(sum(int(tf.size(weight)) for weight in model.trainable_weights)),
        tensorflow=tf.__version__,
    )
    if args.worker == "toolkit":
        import keras

        info["keras"] = keras.__version__
    print(MARKER + json.dumps({"ready": info}), flush=True)
    for command in sys.stdin:
        if command.strip() == "round":
            before = reference_matmul(tf, args)
            model_shape = model_shape_matmul(tf, args)
            start = time.perf_counter()
            batches = epoch()
            seconds = time.perf_counter() - start
            after = reference_matmul(tf, args)
            result = {
                "seconds": seconds,
                "batches": batches,
                "matmul": (before + after) / 2,  # the load can change during a round
                "matmul_before": before,
                "matmul_after": after,
                "model_shape_matmul": model_shape,
            }
            print(MARKER + json.dumps({"round": result}), flush=True)
        elif command.strip() == "profile":
            print(MARKER + json.dumps({"profile": op_time_by_type(tf, some_steps, args)}), flush=True)
        else:
            break


MATMUL_OPS = ("MatMul", "BatchMatMul", "Einsum")  # type names containing these (_MklNativeFusedMatMul, ...)


def op_time_by_type(tf, some_steps, args):
    """Self time of the ops of `--profile-steps` training steps, summed by op type (microseconds).

    From TensorFlow's profiler (`framework_op_stats`); the time of the input pipeline's dataset
    ops and idle time are left out.
    """
    import glob

    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin

    folder = tempfile.mkdtemp(prefix=f"profile_{args.pipeline}_{args.worker}_", dir=args.workdir)
    tf.profiler.experimental.start(folder)
    try:
        some_steps(args.profile_steps)
    finally:
        tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)
    data, ok = profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        return None
    types, phases = {}, {}
    for table in json.loads(data)[:1]:
        names = [column["id"] for column in table["cols"]]
        for row in table["rows"]:
            cells = dict(zip(names, [cell.get("v") if cell else None for cell in row["c"]]))
            op_type, name = cells["type"], cells["operation"].lower()
            if op_type == "IDLE" or "Dataset" in op_type or "Iterator" in op_type:
                continue
            self_time = float(cells["total_self_time"])
            types[op_type] = types.get(op_type, 0.0) + self_time
            # Phase by name scope: the optimizers' ops sit under their name ("adam_w", "AdamWLR").
            if "adam" in name:
                phase = "optimizer"
            elif "gradient_tape/" in name or "gradients/" in name:
                phase = "backward"
            else:
                phase = "forward"
            phases[phase] = phases.get(phase, 0.0) + self_time
    return {"types": types, "phases": phases}


# --- Parent ------------------------------------------------------------------------------------


class Worker:
    """One side of one pipeline in its own process; `round()` runs one timed epoch."""

    def __init__(self, args, side, pipeline, folder, config=None):
        command = [sys.executable, __file__, "--worker", side, "--pipeline", pipeline, "--workdir", str(folder)]
        if config is not None:
            command += ["--config", str(config)]
        for name in ("sentences", "rounds", "warmup_epochs", "batch_size", "maxlen", "layers", "hidden", "heads",
                     "intermediate", "matmul_size", "matmul_repeats", "profile_steps", "seed"):  # fmt: skip
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        if side == "bert4keras":
            env.update(TF_KERAS="1", TF_USE_LEGACY_KERAS="1")
            env.pop("KERAS_BACKEND", None)
        else:
            env["KERAS_BACKEND"] = "tensorflow"
        self.name = f"{folder.name}/{side}"
        self.stderr = open(folder / f"{pipeline}_{side}.log", "w+", encoding="utf-8")  # noqa: SIM115 (the worker's lifetime)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1
        )

    def receive(self, key):
        for line in self.process.stdout:
            if line.startswith(MARKER):
                message = json.loads(line[len(MARKER) :])
                if key in message:
                    return message[key]
        self.process.wait()
        self.stderr.seek(0)
        raise SystemExit(f"The {self.name} worker failed (exit status {self.process.returncode}):\n"
                         f"{self.stderr.read()[-4000:]}")  # fmt: skip

    def round(self):
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return self.receive("round")

    def profile(self):
        self.process.stdin.write("profile\n")
        self.process.stdin.flush()
        return self.receive("profile")

    def close(self, stop=False):
        """End the worker: ask it to finish, or with `stop` (after a failure) terminate it."""
        if self.process.poll() is None:
            if stop:
                self.process.terminate()
            else:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def run_all(args, folder):
    """Per job, start its two workers (their warm-up overlaps: it is not timed), alternate their timed
    rounds, and last trace a few steps of each; one job's workers at a time. In the default mode the
    jobs are the pipelines on the LIC2019 setup in `folder`; with `--configs`, one job per config, in a
    folder of its own (`prepare_config_job`)."""
    results = {}
    for name, pipeline, config in args.jobs:
        job_folder = folder
        shape = None
        if config is not None:
            job_folder = folder / name
            job_folder.mkdir()
            shape = prepare_config_job(args, job_folder, config, pipeline, args.job_batch.get(name))
        workers = {side: Worker(args, side, pipeline, job_folder, config) for side in SIDES}
        finished = False
        try:
            ready = {side: worker.receive("ready") for side, worker in workers.items()}
            rounds = {side: [] for side in SIDES}
            for index in range(args.rounds):
                order = SIDES if index % 2 == 0 else SIDES[::-1]
                for side in order:
                    rounds[side].append(workers[side].round())
                    print(f"{name} round {index + 1}, {side}: {describe_round(rounds[side][-1])}", file=sys.stderr)
            profiles = {side: workers[side].profile() if args.profile_steps else None for side in SIDES}
            results[name] = {
                "pipeline": pipeline,
                "shape": shape,
                "ready": ready,
                "rounds": rounds,
                "profiles": profiles,
            }
            finished = True
        finally:
            for worker in workers.values():
                worker.close(stop=not finished)
    return results


def describe_round(result):
    samples = sum(batch[0] for batch in result["batches"])
    return (
        f"{samples} samples in {result['seconds']:.1f} s, {samples / result['seconds']:.1f} samples/s; "
        f"matmul {result['matmul'] / 1e9:.0f} GFLOP/s"
    )


def training_flops(batches, dims, pipeline, padded=True):
    """FLOPs of the training steps on `batches`, counted from the model's shapes.

    A training step costs 3 forward passes (the backward pass computes two products per forward
    product: the gradients of the input and of the weights), and a forward product of a
    `[tokens, n] @ [n, m]` matmul costs 2 * tokens * n * m FLOPs, so:

        6 * matmul weights per token * tokens + 12 * layers * hidden * sum(length^2) + heads

    where the weights per token are those of each layer's query, key, value and output projections
    (4 h^2) and feed-forward (2 h i), and the attention term covers the scores (Q K^T) and their
    product with the values, both `length x length x hidden` per row and layer. Heads: a
    `hidden x labels` dense per sentence (classification); a `hidden x 2` subject and a
    `hidden x 2 * predicates` object dense per token, and the conditional layer norm's two
    `2 hidden x hidden` denses per sentence (relations). Embedding lookups, layer norms, softmax,
    GELU, dropout, the loss and the optimizer update are not counted: they are not matmuls.
    With `padded`, tokens and lengths are the padded ones (the work the step does); otherwise the
    real ones (the work a step without padding would do).
    """
    layers, hidden, intermediate = dims["layers"], dims["hidden"], dims["intermediate"]
    per_token = layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    total = 0.0
    for rows, length, real_tokens, real_squares in batches:
        tokens = rows * length if padded else real_tokens
        squares = rows * length * length if padded else real_squares
        total += 6.0 * per_token * tokens + 12.0 * layers * hidden * squares
        if pipeline == "classification":
            total += 6.0 * hidden * dims["labels"] * rows
        else:
            total += 6.0 * hidden * (2 + 2 * dims["predicates"]) * tokens + 6.0 * 2 * (2 * hidden * hidden) * rows
    return total


def summarise(args, results):
    """Per pipeline and side: medians over rounds, and the paired speed-ups."""
    rows = []
    for name, result in results.items():
        pipeline, shape = result["pipeline"], result["shape"] or {}
        dims = {"layers": shape.get("layers", args.layers), "hidden": shape.get("hidden", args.hidden),
                "intermediate": shape.get("intermediate", args.intermediate),
                "labels": result["ready"]["toolkit"].get("labels", 0),
                "predicates": result["ready"]["toolkit"].get("predicates", 0)}  # fmt: skip
        per_side = {}
        for side in SIDES:
            measured = []
            for round_result in result["rounds"][side]:
                batches, seconds = round_result["batches"], round_result["seconds"]
                samples = sum(batch[0] for batch in batches)
                real = sum(batch[2] for batch in batches)
                padded = sum(batch[0] * batch[1] for batch in batches)
                flops = training_flops(batches, dims, pipeline, padded=True)
                useful = training_flops(batches, dims, pipeline, padded=False)
                measured.append({
                    "seconds": seconds, "samples": samples, "steps": len(batches),
                    "samples_per_second": samples / seconds, "real_per_second": real / seconds,
                    "padded_per_second": padded / seconds, "padding": 1.0 - real / padded,
                    "flops_per_second": flops / seconds, "useful_per_second": useful / seconds,
                    "matmul": round_result["matmul"],
                    "model_shape_matmul": round_result["model_shape_matmul"],
                    "model_shape_share": round_result["model_shape_matmul"] / round_result["matmul_before"],
                    "utilisation": flops / seconds / round_result["matmul"],
                    "useful_utilisation": useful / seconds / round_result["matmul"],
                })  # fmt: skip
            per_side[side] = measured
        speedups = [
            toolkit["samples_per_second"] / theirs["samples_per_second"]
            for toolkit, theirs in zip(per_side["toolkit"], per_side["bert4keras"])
        ]
        token_speedups = [
            toolkit["real_per_second"] / theirs["real_per_second"]
            for toolkit, theirs in zip(per_side["toolkit"], per_side["bert4keras"])
        ]
        for side in SIDES:
            measured = per_side[side]
            row = {"pipeline": pipeline, "job": name, "shape": result["shape"], "side": side,
                   "ready": result["ready"][side], "profile": result["profiles"][side]}  # fmt: skip
            for key in measured[0]:
                row[key] = statistics.median(item[key] for item in measured)
            if side == "toolkit":
                row["speedup"] = statistics.median(speedups)
                row["speedup_range"] = (min(speedups), max(speedups))
                row["token_speedup"] = statistics.median(token_speedups)
            rows.append(row)
    return rows


def is_matmul(op_type):
    return any(name in op_type for name in MATMUL_OPS)


def matmul_share(profile):
    total = sum(profile["types"].values())
    return sum(time for op_type, time in profile["types"].items() if is_matmul(op_type)) / total if total else 0.0


def phase_shares(profile):
    total = sum(profile["phases"].values())
    return ", ".join(
        f"{phase} {profile['phases'].get(phase, 0.0) / total:.0%}" for phase in ("forward", "backward", "optimizer")
    )


OP_NOTES = {
    "PyFunc": "PyFunc (Python batch generator)",
    "AssignSubVariableOp": "AssignSubVariableOp (optimizer)",
    "AssignAddVariableOp": "AssignAddVariableOp (optimizer, metrics)",
    "StatelessRandomUniformV2": "StatelessRandomUniformV2 (dropout)",
    "RandomUniform": "RandomUniform (dropout)",
}


def top_other_ops(profile, count=5):
    total = sum(profile["types"].values())
    others = sorted(
        ((time, op_type) for op_type, time in profile["types"].items() if not is_matmul(op_type)), reverse=True
    )
    return ", ".join(f"{OP_NOTES.get(op_type, op_type)} {time / total:.0%}" for time, op_type in others[:count])


TITLES = {"classification": "classification", "relations": "relation extraction"}
SIDE_NAMES = {"toolkit": "toolkit", "bert4keras": "bert4keras 0.11.5"}


def why_utilisation(rows, hidden) -> list:
    """The paragraph that explains a missed utilisation target from this run's own measurements."""
    profiled = [row for row in rows if row["side"] == "toolkit" and row["profile"]]
    if not profiled or all(row["utilisation"] >= TARGET_UTILISATION for row in profiled):
        return []
    products = "; ".join(
        f"{TITLES[row['pipeline']]} {matmul_share(row['profile']):.0%} x {row['model_shape_share']:.0%} = "
        f"{matmul_share(row['profile']) * row['model_shape_share']:.0%} (measured {row['utilisation']:.0%})"
        for row in profiled
    )
    others = sorted(1.0 - matmul_share(row["profile"]) for row in profiled)
    rest = f"{others[0]:.0%}" if f"{others[0]:.0%}" == f"{others[-1]:.0%}" else f"{others[0]:.0%}-{others[-1]:.0%}"
    paragraph = [
        "",
        f"Why the toolkit's steps miss {TARGET_UTILISATION:.0%}: a step's utilisation is roughly the product of "
        "two shares measured above, the share of its op time spent in matmuls and the speed of a matmul at "
        f"this model's shapes against the large reference: {products}. Both are far from 1 here. The rest "
        f"of the op time ({rest}) goes mostly to elementwise work (the multiplications of GELU, layer norm and "
        "the attention scale, dropout's masks, `SelectV2` of the masking), which runs op by op and "
        f"memory-bound on a CPU without XLA's fusion; and a hidden size of {hidden} gives matmuls too "
        "small to reach the speed of the large square one. Reaching the target would take both a wider encoder (more of each step in "
        "larger matmuls) and fused elementwise work (XLA, which Keras 3 leaves off without a GPU): "
        "conditions of a GPU run, not of this machine.",
    ]
    theirs = {row["pipeline"]: row for row in rows if row["side"] == "bert4keras"}
    ratios = [
        f"{TITLES[row['pipeline']]} {row['useful_utilisation'] / theirs[row['pipeline']]['useful_utilisation']:.1f}x"
        for row in rows
        if row["side"] == "toolkit" and row["pipeline"] in theirs
    ]
    if ratios:
        paragraph[-1] += (
            " The comparison with bert4keras does not depend on them: counting real tokens only, the "
            f"toolkit's useful utilisation is {', '.join(ratios)} bert4keras's, which spends more of its "
            "matmuls on padding."
        )
    return paragraph


def render(args, rows, load, command) -> str:
    toolkit_rows = [row for row in rows if row["side"] == "toolkit"]
    first = rows[0]["ready"]
    parameters = ", ".join(
        f"{TITLES[row['pipeline']]} {row['ready']['parameters'] / 1e6:.1f} M" for row in toolkit_rows
    )
    lines = [
        SECTION,
        "",
        f"Training throughput of both pipelines against a bert4keras 0.11.5 script of the same model on the "
        f"same data, and the share of the machine's dense-matmul speed that a training step reaches. "
        f"Model: a randomly initialised BERT made from `../shared/data/chinese_bert/bert_config.json` at "
        f"{args.layers} layers, hidden {args.hidden}, {args.heads} heads, feed-forward {args.intermediate} "
        f"(GELU, dropout 0.1), Chinese vocabulary of 21,128 tokens; trainable parameters: {parameters} "
        "(toolkit side; bert4keras has no unused pooler). Data: the first "
        f"{args.sentences} LIC2019 training sentences (`../shared/data/re/lic2019_sample`); for "
        "classification each is labelled with the predicates of its triples (50 schema predicates), for "
        "relation extraction with its triples (sentences with no triple that can be placed are left out, "
        f"on both sides). Batch size {args.batch_size}, maxlen {args.maxlen}, AdamW with linear decay, "
        "the multi-label categorical crossentropy, TensorFlow graph mode without XLA on both sides "
        "(Keras 3 turns XLA off on a machine without a GPU; tf-keras does not turn it on).",
        "",
        "The toolkit side runs the pipelines' own steps (`load_config`, then the task pipeline's "
        "`read_data`, `build`, `training_feed` and `compile`) and `fit`; the bert4keras side is written as its examples are (`Tokenizer`, "
        "`DataGenerator` with `sequence_padding`, `build_transformer_model`, its "
        "`multilabel_categorical_crossentropy`, and for relations `LayerNormalization(conditional=True)` "
        "and a `Loss` layer as in `examples/task_relation_extraction.py`). Each side runs in a process of "
        f"its own; after {args.warmup_epochs} untimed warm-up epoch(s) each, the sides take turns, "
        f"{args.rounds} rounds of one epoch each (A B, B A, ...), timed from the call to `fit` to its "
        "return (input pipeline included). Rates are medians over the rounds; the speed-up is the median "
        "of the per-round ratios, with its range in brackets. Padding is the share of padded tokens that "
        "are not real tokens.",
        "",
        "| pipeline | side | samples/s | real tokens/s | padded tokens/s | padding | epoch s "
        "| speed-up (samples/s) | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row["side"] == "toolkit":
            low, high = row["speedup_range"]
            met = "met" if row["speedup"] >= TARGET_SPEEDUP else "not met"
            speedup = f"{row['speedup']:.2f}x ({low:.2f}-{high:.2f})"
            target = f">= {TARGET_SPEEDUP}x: {met}"
        else:
            speedup, target = "1.00x", ""
        lines.append(
            f"| {TITLES[row['pipeline']]} | {SIDE_NAMES[row['side']]} | {row['samples_per_second']:.1f} "
            f"| {row['real_per_second']:,.0f} | {row['padded_per_second']:,.0f} | {row['padding']:.0%} "
            f"| {row['seconds']:.1f} | {speedup} | {target} |"
        )
    lines += [
        "",
        "FLOP utilisation: the FLOPs of each training step are counted analytically from the shapes, "
        "`6 * N * T + 12 * L * h * sum(length^2)` plus the heads, where `N = L * (4 h^2 + 2 h i)` is the "
        "number of matmul weights a token goes through in the encoder, `T` the tokens of the batch and "
        "the second term the attention scores and their product with the values (3 forward passes per "
        "training step); embeddings, norms, softmax, GELU, dropout, the loss and the optimizer update are "
        'not counted (see `training_flops` in the script). "Step" counts the padded tokens (the work '
        'done), "useful" the real ones. The reference is a float32 '
        f"`[{args.matmul_size}, {args.matmul_size}] @ [{args.matmul_size}, {args.matmul_size}]` "
        f"`tf.linalg.matmul`, timed {args.matmul_repeats} times in the same process just before and just "
        "after each round; the utilisation of a round is its FLOP/s over the mean of those two (medians "
        'over rounds). "Model-shape matmul" is a product at this model\'s size, '
        f"`[{args.batch_size * 64}, {args.hidden}] @ [{args.hidden}, {args.intermediate}]` (a batch of "
        f"{args.batch_size} rows of 64 tokens through the feed-forward layer), timed before each round, as a "
        "share of the reference: the most a step made only of such matmuls could reach.",
        "",
        "| pipeline | side | matmul GFLOP/s | model-shape matmul | step GFLOP/s | utilisation | useful GFLOP/s "
        "| useful utilisation | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        target = ""
        if row["side"] == "toolkit":
            met = "met" if row["utilisation"] >= TARGET_UTILISATION else "not met"
            target = f">= {TARGET_UTILISATION:.0%}: {met}"
        lines.append(
            f"| {TITLES[row['pipeline']]} | {SIDE_NAMES[row['side']]} | {row['matmul'] / 1e9:.1f} "
            f"| {row['model_shape_share']:.0%} | {row['flops_per_second'] / 1e9:.1f} | {row['utilisation']:.0%} | {row['useful_per_second'] / 1e9:.1f} "
            f"| {row['useful_utilisation']:.0%} | {target} |"
        )
    if any(row["profile"] for row in rows):
        lines += [
            "",
            f"Where the op time of a training step goes: {args.profile_steps} steps of each side traced with "
            "TensorFlow's profiler after the rounds (`framework_op_stats`: the self time of each op; the input "
            "pipeline's dataset ops and idle time left out). Matmuls are the op types named `*MatMul*`, "
            "`*BatchMatMul*` or `*Einsum*` (oneDNN's fused versions included); the phases go by name scope "
            "(the optimizer's ops sit under its name, the backward pass under `gradient_tape/`).",
            "",
            "| pipeline | side | op time in matmuls | by phase | largest other op types (share of op time) |",
            "|---|---|---:|---|---|",
        ]
        for row in rows:
            if row["profile"]:
                lines.append(
                    f"| {TITLES[row['pipeline']]} | {SIDE_NAMES[row['side']]} | {matmul_share(row['profile']):.0%} "
                    f"| {phase_shares(row['profile'])} | {top_other_ops(row['profile'])} |"
                )
    lines += why_utilisation(rows, args.hidden)
    lines += [
        "",
        "Untimed warm-up (building, tracing, first epoch), seconds: "
        + "; ".join(
            f"{TITLES[row['pipeline']]} {SIDE_NAMES[row['side']]} {row['ready']['warmup_seconds']:.0f}" for row in rows
        )
        + ". XLA (`jit_compile`) on the toolkit's models: "
        + ", ".join(f"{TITLES[row['pipeline']]} {row['ready']['jit_compile']}" for row in toolkit_rows)
        + ".",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: `nproc` = {len(os.sched_getaffinity(0))}, {cpu_model()}, no GPU; 1-minute load average "
        f"{load[0]:.1f} at the start and {load[1]:.1f} at the end (a shared machine; other jobs may have run "
        f"on it); Python {platform.python_version()}, TensorFlow {first['tensorflow']}, Keras "
        f"{next(row['ready'].get('keras') for row in toolkit_rows)} (toolkit), tf-keras with bert4keras 0.11.5.",
        "",
    ]
    return "\n".join(lines)


CONFIG_SECTION = "## Training speed at the shipped configs' shapes"


def render_configs(args, rows, load, command) -> str:
    """The section of a `--configs` run: one pair of rows per config, and the worst speed-up."""
    toolkit_rows = [row for row in rows if row["side"] == "toolkit"]
    worst = min(toolkit_rows, key=lambda row: row["speedup"])
    lines = [
        CONFIG_SECTION,
        "",
        "Training throughput at the shapes users train: each shipped config's own encoder, data, batch size, "
        "maxlen and weight average, against a bert4keras 0.11.5 script of the same encoder shape and "
        "vocabulary on the same examples (the first "
        f"{args.sentences:,} training examples of the config's data, as the toolkit reads them). The toolkit "
        "side is the config's pipeline (`load_config`, `read_data`, `build`, `training_feed`, `compile`) with "
        "the pretrained weights; the bert4keras side builds the encoder from the same shape with random "
        "weights (speed does not depend on the values), pools as the config does (mean or `[CLS]`) and, where "
        "the config averages the weights, uses bert4keras's `extend_with_exponential_moving_average`. "
        "Both: AdamW with weight decay and gradient clipping, linear decay, the multi-label categorical "
        "crossentropy, TensorFlow graph mode without XLA. Rounds, warm-up and timing as in "
        "[Training speed](#training-speed): "
        f"{args.warmup_epochs} untimed warm-up epoch(s), then {args.rounds} rounds taking turns; rates are "
        "medians, the speed-up the median of the per-round ratios (range in brackets).",
        "",
        "| config | encoder | side | batch | maxlen | samples/s | real tokens/s | padding | epoch s "
        "| speed-up (samples/s) | target |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        shape = row["shape"]
        batch = shape["batch_size"] if row["side"] == "toolkit" else shape["bert4keras_batch_size"]
        if row["side"] == "toolkit":
            low, high = row["speedup_range"]
            met = "met" if row["speedup"] >= CONFIG_TARGET_SPEEDUP else "not met"
            speedup, target = f"{row['speedup']:.2f}x ({low:.2f}-{high:.2f})", f">= {CONFIG_TARGET_SPEEDUP}x: {met}"
        else:
            speedup, target = "1.00x", ""
        lines.append(
            f"| `{shape['config']}` | {shape['encoder']} ({shape['layers']} layers, hidden {shape['hidden']}) "
            f"| {SIDE_NAMES[row['side']]} | {batch} | {shape['maxlen']} | {row['samples_per_second']:.1f} "
            f"| {row['real_per_second']:,.0f} | {row['padding']:.0%} | {row['seconds']:.1f} | {speedup} | {target} |"
        )
    lines += [
        "",
        f"Worst shape: `{worst['shape']['config']}`, {worst['speedup']:.2f}x bert4keras's samples/s.",
    ]
    if any(row["profile"] for row in rows):
        lines += [
            "",
            f"Op time by phase ({args.profile_steps} traced steps a side, as in [Training speed](#training-speed)):",
            "",
            "| config | side | op time in matmuls | by phase |",
            "|---|---|---:|---|",
        ]
        for row in rows:
            if row["profile"]:
                lines.append(
                    f"| `{row['shape']['config']}` | {SIDE_NAMES[row['side']]} | {matmul_share(row['profile']):.0%} "
                    f"| {phase_shares(row['profile'])} |"
                )
    lines += [
        "",
        f"Command: `{command}`",
        "",
        f"Machine: `nproc` = {len(os.sched_getaffinity(0))}, {cpu_model()}, no GPU; 1-minute load average "
        f"{load[0]:.1f} at the start and {load[1]:.1f} at the end; Python "
        f"{platform.python_version()}, TensorFlow {rows[0]['ready']['tensorflow']}, Keras "
        f"{toolkit_rows[0]['ready'].get('keras')} (toolkit), tf-keras with bert4keras 0.11.5.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    command = " ".join(
        ["python benchmarks/training_benchmark.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
    )
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="training_benchmark_") as name:
        folder = Path(name)
        if not args.configs:
            prepare_workdir(args, folder)
        results = run_all(args, folder)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    rows = summarise(args, results)
    load = (load_start, os.getloadavg()[0])
    if args.configs:
        markdown, section = render_configs(args, rows, load, command), CONFIG_SECTION
    else:
        markdown, section = render(args, rows, load, command), SECTION
    print(markdown)
    if args.write_doc:
        write_section(DOC, section, markdown)
        print(f"Wrote the {section!r} section of {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
