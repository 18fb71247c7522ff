"""Wire formats: what travels between workers and servers, bit for bit.

- ``codecs``: dense values, signs, ternaries, integer levels and vote sums as packed bytes;
- ``sparse``: (value, index) pairs of a sparsified vector; ``quant``: QSGD's quantized vectors,
  with the Elias-gamma coder in ``elias`` and the shared bit plumbing in ``packing``;
- ``compressors``: which entries a sparsifier keeps, stochastic rounding;
- ``memory``: error feedback (what was not sent is added to the next input);
- ``tensors``: the per-tensor slices of the flat parameter vector.

Methods (``sim.methods``) compose these; the network only ever sees the bytes they produce.
"""
