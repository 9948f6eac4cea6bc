"""`GlobalPointer`: a score for every (start, end) span, per type (Su, 2021).

A span of type `t` from position `m` to `n` scores the inner product of a
start vector `q_m` and an end vector `k_n`, projections of the encoder output
for that type, with rotary position embedding (RoPE) so that the score knows
how far apart the ends are: `s_t(m, n) = (R_m q_m) . (R_n k_n) /
sqrt(head_size)`. The output is `[batch, heads, seq, seq]`; entries with
`start > end` (the lower triangle) and those touching a padding position are
-inf, so they never score above 0 and drop out of the sparse loss. Train it
with `toolkit.losses.sparse_multilabel_categorical_crossentropy` over the
flattened `seq * seq` pairs of each head (`toolkit.spans.span_targets`); a
span is predicted when its score is > 0.

Example:

```python
import keras
from toolkit.spans import GlobalPointer

sequence = keras.Input((None, 384))
mask = keras.Input((None,), dtype="bool")
scores = GlobalPointer(heads=4, head_size=64)(sequence, mask=mask)   # [batch, 4, seq, seq]
```
"""

from __future__ import annotations

import math

import keras
from keras import ops

from toolkit.spans.common import SpanScorer, span_mask

__all__ = ["GlobalPointer"]


@keras.saving.register_keras_serializable(package="toolkit")
class GlobalPointer(SpanScorer):
    """Span scores per type: `[batch, heads, seq, seq]` (see the module docstring).

    Args:
        heads: the number of span types (entity types, or GPLinker's matrices).
        head_size: the size of each start and end vector (even with `rope`).
        rope: apply rotary position embedding to the start and end vectors.
        tril_mask: set the scores of spans with `start > end` to -inf.
        kernel_initializer: of the projection.
    """

    def build(self, input_shape):
        # One [hidden, heads, 2 * head_size] projection, applied with einsum (no reshape).
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.heads, 2 * self.head_size),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(name="bias", shape=(self.heads, 2 * self.head_size), initializer="zeros")
        self.built = True

    def call(self, inputs, mask=None):
        x = ops.einsum("bnd,dhk->bnhk", inputs, ops.cast(self.kernel, inputs.dtype)) + ops.cast(self.bias, inputs.dtype)
        start, end = self._ends(x)  # [batch, seq, heads, head_size]
        scores = ops.einsum("bmhd,bnhd->bhmn", start, end) / ops.cast(math.sqrt(self.head_size), start.dtype)
        return span_mask(scores, mask, self.tril_mask)
