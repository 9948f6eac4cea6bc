"""Bridges to other Keras toolkits.

Nothing is imported here: each bridge is a submodule that is imported on
purpose, e.g. `from toolkit.compat import bert4keras`, and only that import
loads TensorFlow and tf-keras.
"""
