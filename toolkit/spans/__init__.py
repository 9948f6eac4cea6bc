"""Span scoring on the sparse loss: GlobalPointer layers, their targets and batched decoding.

Importing this package imports Keras.
"""

from toolkit.spans.common import FlattenSpans, rotary_embedding
from toolkit.spans.efficient_global_pointer import EfficientGlobalPointer
from toolkit.spans.global_pointer import GlobalPointer
from toolkit.spans.targets import decode_spans, span_targets

__all__ = [
    "EfficientGlobalPointer",
    "FlattenSpans",
    "GlobalPointer",
    "decode_spans",
    "rotary_embedding",
    "span_targets",
]
