"""Text encoders: load the checkpoints users hold, and tokenize with offsets."""

from toolkit.encoders.spec import EncoderSpec

__all__ = ["EncoderSpec"]
