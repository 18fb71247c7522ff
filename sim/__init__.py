"""The simulator: optimizer numerics (methods), wire formats (codecs), the network and the cluster."""
