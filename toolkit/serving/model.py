"""The model side of a server: a run's best model, and `predict`'s records for a batch of texts.

Everything goes through the run's pipeline, as `predict` does: the predictor is
`pipeline.load_predictor(**settings)`, the records `pipeline.prediction_records`
(non-blank texts) or the pipeline's blank record (`toolkit.streaming.predicted_records`),
so a text gets the record `predict` writes for it, and whatever a task's
predictor learns to do (long texts, say) is served with no change here.

```python
service = PredictionService(Pipeline.from_run("runs/demo_entities"))
service.load()                                     # blocking: in the server's model thread
service.predict(service.rule_key({}), ["Ada works at the Bank of London."])
```
"""

import threading
from typing import Optional

from toolkit.serving.validation import RequestError
from toolkit.streaming import predicted_records

__all__ = ["PredictionService"]


class PredictionService:
    """A run's pipeline and its loaded best model.

    Args:
        pipeline: the run's pipeline (`Pipeline.from_run`).
        settings: the decision rule for every request (`pipeline.decision_rule`'s
            result for `serve --min-labels N`, say); a request may change it again.
    """

    def __init__(self, pipeline, *, settings: Optional[dict] = None):
        self.pipeline = pipeline
        self.settings = dict(settings or {})
        self.blank = dict(pipeline.prediction_input().blank)
        self.predictor = None
        self._loaded = threading.Event()

    @property
    def task(self) -> str:
        return self.pipeline.config.task

    @property
    def ready(self) -> bool:
        return self._loaded.is_set()

    def load(self) -> None:
        """Load the run's best model (blocking; `SavedModelError` when it is damaged)."""
        self.predictor = self.pipeline.load_predictor(**self.settings)
        self._loaded.set()

    def rule_key(self, rule: dict) -> tuple:
        """The hashable key of the decision rule a request asks for (`()`: the server's), checked:
        a `RequestError` 422 when the run's task has no such setting or the values do not fit."""
        from toolkit.config import ConfigError

        if not rule:
            return ()
        try:
            settings = self.pipeline.decision_rule({**self.settings, **rule}, spell=str)
            self._predictor(settings)  # the predictor's own checks (min_labels within the labels, ...)
        except (ConfigError, ValueError) as problem:
            raise RequestError(422, str(problem)) from None
        return tuple(sorted(settings.items()))

    def _predictor(self, settings: dict):
        if not settings:
            return self.predictor
        return self.predictor.with_settings(**settings)

    def predict(self, key: tuple, texts: list) -> list:
        """`predict`'s record for each text under the decision rule `key` (`rule_key`); blocking."""
        if not self.ready:
            raise RuntimeError("the model is not loaded")
        predictor = self._predictor(dict(key))

        def records(batch):
            return self.pipeline.prediction_records(predictor, batch)

        return predicted_records(texts, records, self.blank)

    def describe(self) -> dict:
        """What `/health` says about the run once the model is loaded."""
        described = {"task": self.task, "run": str(self.pipeline.run_folder.path)}
        if self.settings:
            described["decision_rule"] = dict(self.settings)
        return described
