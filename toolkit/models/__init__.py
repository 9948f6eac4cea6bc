"""What the task models share: `TaskModel` (`task_model.py`), the base of `MultilabelTextClassifier`,
`RelationExtractor`, `GPLinkerExtractor` and `EntityRecognizer`.

The task models themselves live with their task (`classification/`, `relations/`, `entities/`).
Importing this package imports Keras.
"""

from toolkit.models.task_model import TaskModel

__all__ = ["TaskModel"]
