"""Reading a saved model folder back: a missing, truncated or corrupt file is one error naming it.

A run's `best/` folder (a `MultilabelPredictor` or `RelationPredictor`) is
written atomically, so the toolkit itself never leaves half a file; a copy
cut short, a full disk or a hand edit can. Loading then raises
`SavedModelError` (`path: what is wrong; what to do`) instead of Keras'
"File not found" for a file that exists, or a `JSONDecodeError` naming no file.

```python
meta = read_saved_json(folder / "predictor.json", writer="MultilabelPredictor.save()")
model = load_saved_model(folder / "model.keras")
```

This module imports Keras only when a model is loaded.
"""

import json
import zipfile
from pathlib import Path

__all__ = ["SavedModelError", "read_saved_json", "load_saved_model"]

_WHAT_TO_DO = "the folder is damaged; train the run again, or copy the folder again from where it was made."


class SavedModelError(ValueError):
    """A file of a saved model folder is missing, truncated or not what it should be."""


def read_saved_json(path, *, writer):
    """The JSON object in `path`, a file `writer` wrote; SavedModelError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise SavedModelError(f"{path} not found: {path.parent} is not a folder written by {writer}.")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SavedModelError(f"{path}:{error.lineno}: not valid JSON ({error.msg}); {_WHAT_TO_DO}") from None
    except UnicodeDecodeError:
        raise SavedModelError(f"{path}: not UTF-8 text; {_WHAT_TO_DO}") from None
    if not isinstance(value, dict):
        raise SavedModelError(f"{path}: expected a JSON object, got {type(value).__name__}; {_WHAT_TO_DO}")
    return value


def load_saved_model(path, **kwargs):
    """`keras.models.load_model(path, **kwargs)`, with SavedModelError naming the file when it cannot be read."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise SavedModelError(f"{path} not found; {_WHAT_TO_DO}")
    if not zipfile.is_zipfile(path):
        raise SavedModelError(
            f"{path}: not a complete .keras file ({path.stat().st_size:,} bytes, truncated or damaged); {_WHAT_TO_DO}"
        )
    try:
        return keras.models.load_model(path, **kwargs)
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise SavedModelError(f"{path}: cannot be loaded ({reason}); {_WHAT_TO_DO}") from None
