"""Pipeline 1: multi-label text classification (task = backbone + preprocessor + head)."""

from toolkit.classification.model import MultilabelTextClassifier
from toolkit.classification.preprocessor import TextPreprocessor

__all__ = ["MultilabelTextClassifier", "TextPreprocessor"]
