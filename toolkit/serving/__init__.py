"""Serving and export: a trained model put to use outside `train`, `evaluate` and `predict`.

This is the place for serving predictions from a run's saved `best/` folder
(`server.py`, under way) and for exporting a task model for other runtimes.
Export: `export.py`, `graph_tokenizer.py`, `graph_decoders.py` (`python -m toolkit export`).
It builds on `toolkit.models.TaskModel` (a task model's saving and loading)
and `toolkit.saved` (a saved folder read back, with `SavedModelError`).
Nothing else lives here yet.
"""
