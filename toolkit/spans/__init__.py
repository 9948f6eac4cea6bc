"""Span scoring on the sparse loss: GlobalPointer layers (and, next, their targets and decoding).

Importing this package imports Keras.
"""

from toolkit.spans.efficient_global_pointer import EfficientGlobalPointer
from toolkit.spans.global_pointer import GlobalPointer
from toolkit.spans.rotary import rotary_embedding

__all__ = ["EfficientGlobalPointer", "GlobalPointer", "rotary_embedding"]
