"""The simulator: optimizer numerics (methods), wire formats (codecs), the network and the cluster."""

#: The version of the dlion-sim distribution (pyproject.toml reads it from here).
__version__ = "0.3.0"
