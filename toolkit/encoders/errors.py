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
