"""Serving and export: a trained run put to use outside `train`, `evaluate` and `predict`.

Serving a run over HTTP: `python -m toolkit serve RUN_DIR [--host 127.0.0.1] [--port 8000]`.

`POST /predict` with `{"texts": [...]}` answers `{"predictions": [...]}`, one
record per text, the records `predict` writes for those texts (the run's
pipeline makes them: `pipeline.prediction_records`), under the run's decision
rule or the one a request gives. One module a concern:

- `limits.py`: `ServeLimits`, what a server accepts and how it batches (the flags' defaults);
- `validation.py`: a `/predict` body checked, every fault a `RequestError` (status, one line);
- `model.py`: `PredictionService`, the run's pipeline and loaded model, records for a batch;
- `batcher.py`: `Batcher`, concurrent requests gathered into model calls in one worker thread,
  behind a bounded queue (`QueueFull`: 503);
- `metrics.py`: counters, gauges and histograms in Prometheus' text format;
- `server.py`: the aiohttp application (routes, token, errors, graceful SIGTERM) and `serve`.

Export (`python -m toolkit export RUN_DIR OUT_DIR`, a SavedModel that reads raw texts): `export.py`,
`graph_tokenizer.py`, `graph_decoders.py`.
It builds on `toolkit.models.TaskModel` (a task model's saving and loading)
and `toolkit.saved` (a saved folder read back, with `SavedModelError`).
Only `server.py` imports aiohttp (the `serve` extra: `pip install "zlpr-toolkit[serve]"`); the
rest is the standard library and the toolkit.
"""

__all__ = ["ServeError"]


class ServeError(RuntimeError):
    """A server that cannot start (its address in use, say); the command says so in one line."""
