"""Validated YAML configs, one schema per task (see `toolkit.config.loading` for the rules).

- `load_config(path, overrides, base)`: read, merge and validate a config file;
- `default_config(task, data_dir, output_dir)`: a task's built-in demo config;
- `ConfigError`: every problem, one `<file>: <dotted.path>: <message>` line each;
- the schemas: `MultilabelConfig` (`toolkit.config.classification`),
  `RelationConfig` (`toolkit.config.relations`), `EntityConfig`
  (`toolkit.config.entities`), `TaskConfig`s built from the shared sections
  of `toolkit.config.sections`.

Importing this package imports neither Keras nor the tokenizer.

```python
from toolkit.config import load_config

config = load_config("configs/reuters.yaml", overrides=["training.epochs=1"])
type(config).__name__, config.training.monitor       # ('MultilabelConfig', 'val_micro_f1')
```
"""

from toolkit.config.classification import ClassifierModelConfig, LossConfig, MultilabelConfig, MultilabelDataConfig
from toolkit.config.entities import EntityConfig, EntityDataConfig, EntityModelConfig
from toolkit.config.errors import ConfigError
from toolkit.config.loading import default_config, load_config, validate
from toolkit.config.relations import RelationConfig, RelationDataConfig, RelationModelConfig
from toolkit.config.sections import OutputConfig, TaskConfig, TrainingConfig

__all__ = [
    "ConfigError",
    "TaskConfig",
    "MultilabelConfig",
    "MultilabelDataConfig",
    "ClassifierModelConfig",
    "LossConfig",
    "RelationConfig",
    "RelationDataConfig",
    "RelationModelConfig",
    "EntityConfig",
    "EntityDataConfig",
    "EntityModelConfig",
    "TrainingConfig",
    "OutputConfig",
    "load_config",
    "default_config",
    "validate",
]
