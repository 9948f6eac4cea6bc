"""The closest of a few names, for "did you mean" hints in config and data errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Optional


def closest(word: Any, choices: Iterable[Any], cutoff: float = 0.6) -> Optional[str]:
    """The choice closest to `word`, case ignored (`"LIC2019"` -> `"lic2019"`), or None when none is close.

    >>> closest("LIC2019", ["lic2019", "casrel"]), closest("zzz", ["lic2019"])
    ('lic2019', None)
    """
    by_lower: dict = {}
    for choice in choices:
        if isinstance(choice, str):
            by_lower.setdefault(choice.lower(), choice)
    word = str(word).lower()
    if word in by_lower:
        return by_lower[word]
    matches = difflib.get_close_matches(word, list(by_lower), n=1, cutoff=cutoff)
    return by_lower[matches[0]] if matches else None
