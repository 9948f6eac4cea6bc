"""Both pipelines train under the mixed precision policies with a finite loss, a weight average compared too."""

import csv
import math

import keras
import pytest

from tests.conftest import TINY_ENCODER
from toolkit.config import default_config
from toolkit.data.synthetic import write_multilabel_demo, write_relation_demo

TINY = [
    *TINY_ENCODER,
    "training.epochs=1",
    "training.batch_size=32",
    "training.ema=0.9",  # under mixed_float16 the average sits in the LossScaleOptimizer's inner optimizer
]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("task", ["multilabel_classification", "relation_extraction"])
def test_pipeline_trains_with_finite_loss(tmp_path, task, policy):
    if task == "multilabel_classification":
        from toolkit.classification.pipeline import ClassificationPipeline as Pipeline

        write_multilabel_demo(tmp_path / "data", n_train=200, n_dev=40, n_test=40, seed=1)
    else:
        from toolkit.relations.pipeline import RelationPipeline as Pipeline

        write_relation_demo(tmp_path / "data", n_train=200, n_dev=40, n_test=40, seed=1)
    config = default_config(
        task,
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "run",
        overrides=[*TINY, f"training.mixed_precision={policy}"],
    )
    results = Pipeline(config, log=lambda message: None).train()
    with open(tmp_path / "run" / "history.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(row["loss"]) for row in rows]
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert all(row["average_kept"] in ("0.0", "1.0") for row in rows)
    assert results["best_epoch"] == 1
    # The policy applies inside the run only.
    assert keras.config.dtype_policy().name == "float32"
