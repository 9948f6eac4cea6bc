"""`EfficientGlobalPointer`: GlobalPointer with one projection shared by every type (Su, 2022).

`s_t(m, n) = (R_m q_m) . (R_n k_n) / sqrt(head_size) + b_t(m) + c_t(n)`: the
start and end vectors are the same for every type, and each type adds a bias
from the encoder output at each end. Its parameters grow by `4 * hidden` a
type instead of GlobalPointer's `2 * head_size * hidden`, which is what makes
GPLinker's per-predicate matrices affordable. Same output and masking as
`GlobalPointer`.

Example:

```python
from toolkit.spans import EfficientGlobalPointer

scores = EfficientGlobalPointer(heads=48, head_size=64)(sequence, mask=mask)   # [batch, 48, seq, seq]
```
"""

from __future__ import annotations

import math

import keras
from keras import ops

from toolkit.spans.common import SpanScorer, span_mask

__all__ = ["EfficientGlobalPointer"]


@keras.saving.register_keras_serializable(package="toolkit")
class EfficientGlobalPointer(SpanScorer):
    """GlobalPointer with one start/end projection shared by every type, plus per-type biases.

    Same arguments and output as `GlobalPointer`; its parameters grow by
    `4 * hidden` a type instead of `2 * head_size * hidden`.
    """

    def build(self, input_shape):
        self.dense = keras.layers.Dense(
            self.head_size * 2, kernel_initializer=self.kernel_initializer, name="projection"
        )
        self.dense.build(input_shape)
        self.bias_dense = keras.layers.Dense(self.heads * 2, kernel_initializer=self.kernel_initializer, name="biases")
        self.bias_dense.build(input_shape)
        self.built = True

    def call(self, inputs, mask=None):
        x = self.dense(inputs)  # [batch, seq, 2 * head_size]
        start, end = self._ends(x)
        shared = ops.einsum("bmd,bnd->bmn", start, end) / ops.cast(math.sqrt(self.head_size), start.dtype)
        biases = ops.transpose(self.bias_dense(inputs), (0, 2, 1)) / ops.cast(2.0, x.dtype)  # [batch, 2 * heads, seq]
        scores = shared[:, None] + biases[:, 0::2, :, None] + biases[:, 1::2, None, :]
        return span_mask(scores, mask, self.tril_mask)
