"""The task registry: what a config's `task:` names, and where its schema and pipeline live.

One entry a task. The schema (a `toolkit.config.TaskConfig` subclass) is
imported when a config is loaded, the pipeline (a `toolkit.pipeline.Pipeline`
subclass) only when one runs, so `python -m toolkit --help` and loading a
config never import Keras. Adding a task is one entry here (see
`docs/architecture.md`, "How to add a task").

```python
from toolkit.tasks import pipeline_class, task_names

task_names()    # ('multilabel_classification', 'relation_extraction', 'entity_recognition')
Pipeline = pipeline_class(config.task)          # toolkit.classification.pipeline.ClassificationPipeline
results = Pipeline(config).train()
```
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

__all__ = ["Task", "TASKS", "task_names", "get_task", "config_class", "pipeline_class"]


@dataclass(frozen=True)
class Task:
    """A registered task.

    Attributes:
        name: the value of `task:` in a config.
        short_name: the name the CLI's `demo` command takes.
        config: `"module:Class"` of its config schema.
        pipeline: `"module:Class"` of its pipeline.
        summary: one line for `--help`.
    """

    name: str
    short_name: str
    config: str
    pipeline: str
    summary: str


TASKS = (
    Task(
        "multilabel_classification",
        "classification",
        "toolkit.config.classification:MultilabelConfig",
        "toolkit.classification.pipeline:ClassificationPipeline",
        "multi-label text classification",
    ),
    Task(
        "relation_extraction",
        "relations",
        "toolkit.config.relations:RelationConfig",
        "toolkit.relations.pipeline:RelationPipeline",
        "(subject, predicate, object) extraction, semi-pointer semi-tagging",
    ),
    Task(
        "entity_recognition",
        "entities",
        "toolkit.config.entities:EntityConfig",
        "toolkit.entities.pipeline:EntityPipeline",
        "entity recognition with GlobalPointer (nested and overlapping spans)",
    ),
)


def task_names() -> tuple:
    """The names a config's `task:` may take, in registry order."""
    return tuple(task.name for task in TASKS)


def get_task(name: str) -> Task:
    """The registered task called `name` (its `task:` name or its short name); KeyError if none."""
    for task in TASKS:
        if name in (task.name, task.short_name):
            return task
    raise KeyError(name)


def _load(reference: str):
    module, _, attribute = reference.partition(":")
    return getattr(import_module(module), attribute)


def config_class(name: str) -> type:
    """The config schema of task `name`."""
    return _load(get_task(name).config)


def pipeline_class(name: str) -> type:
    """The pipeline class of task `name` (imports Keras)."""
    return _load(get_task(name).pipeline)
