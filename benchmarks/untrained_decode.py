"""How long the semi-pointer decoder takes on an untrained model, whose every position may score above 0:
the dev decode an epoch end runs (twice with `training.ema_compare`), with the caps and without them.

    python benchmarks/untrained_decode.py [--config configs/webnlg_star.yaml] [--limit 64] [--write-doc]

The config's encoder with a freshly initialised relation head (no training step), the first `--limit` dev
sentences. "capped" is the decoder as shipped (`MAX_SUBJECTS_PER_TEXT` subjects a text,
`MAX_OBJECTS_PER_SUBJECT` objects a subject, the highest-scoring); "objects uncapped" lifts the
objects' cap (the subjects' was there before), which is how the decoder ran before the cap.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _docs import REPO_ROOT, machine_line, write_section

sys.path.insert(0, str(REPO_ROOT))

SECTION = "## Decoding an untrained relation model"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/webnlg_star.yaml")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--note", default="nothing else was run meanwhile")
    args = parser.parse_args(argv)

    import keras

    from toolkit.config import load_config
    from toolkit.relations import decoder
    from toolkit.relations.pipeline import RelationPipeline

    load_start = os.getloadavg()[0]
    keras.utils.set_random_seed(args.seed)
    config = load_config(REPO_ROOT / args.config)
    pipeline = RelationPipeline(config, log=lambda message: None)
    data = pipeline.read_data()
    predictor = pipeline.build(data)
    texts = list(data.dev.texts)[: args.limit]
    predictor.span_triples(texts[:4])  # traces
    rows = []
    for name, cap in (("capped", decoder.MAX_OBJECTS_PER_SUBJECT), ("objects uncapped", None)):
        decoder.MAX_OBJECTS_PER_SUBJECT = cap
        started = time.perf_counter()
        found = predictor.span_triples(texts)
        seconds = time.perf_counter() - started
        rows.append((name, seconds, sum(map(len, found))))
        print(f"{name}: {seconds:.1f} s, {rows[-1][2]:,} triples", flush=True)
    markdown = "\n".join(
        [
            SECTION,
            "",
            f"`python benchmarks/untrained_decode.py --config {args.config} --limit {args.limit}`",
            "",
            f"The semi-pointer decoder on {len(texts)} dev sentences of `{args.config}` with its encoder and an "
            f"untrained relation head ({len(data.predicates)} predicates, model.maxlen {config.model.maxlen}): at "
            f"most {decoder.MAX_SUBJECTS_PER_TEXT} subjects a sentence either way.",
            "",
            "| decoder | seconds | triples found |",
            "|---|---:|---:|",
            *[f"| {name} | {seconds:.1f} | {count:,} |" for name, seconds, count in rows],
            "",
            machine_line(load_start, os.getloadavg()[0], args.note),
            "",
        ]
    )
    print(markdown)
    if args.write_doc:
        write_section(REPO_ROOT / "docs" / "benchmarks.md", SECTION, markdown)


if __name__ == "__main__":
    main()
