"""Entity recognition with GlobalPointer: `task: entity_recognition`.

`model.py` (`EntityRecognizer`: encoder + GlobalPointer head), `feed.py`
(gold character spans to token-span targets, training batches), `pipeline.py`
(`EntityPipeline`, `EntityPredictor`, batched decoding).
"""
