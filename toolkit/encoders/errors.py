"""The error raised for checkpoints and specs that cannot be loaded."""


class EncoderLoadError(ValueError):
    """A checkpoint folder or encoder spec that cannot be loaded.

    The message says what is wrong and what to do about it.

    Example:

    ```python
    try:
        load_encoder({"source": "auto", "path": "empty_folder"})
    except EncoderLoadError as error:
        print(error)  # "... holds neither a Google BERT checkpoint ... nor ..."
    ```
    """


class EncoderFetchError(RuntimeError):
    """A public encoder that `toolkit.encoders.fetch.fetch_encoder` could not put in its folder.

    The message is one line: what failed and what to try instead.
    """


class SourceUnreachableError(EncoderFetchError):
    """The source of a public encoder (the package registry, the Hugging Face hub) could not be reached."""
