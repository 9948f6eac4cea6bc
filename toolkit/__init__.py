"""Keras 3 toolkit for multi-label categorical crossentropy (ZLPR).

Importing the package has no side effects: it does not set a Keras backend,
touch the global dtype policy or load any data.
"""

__version__ = "0.1.0"
