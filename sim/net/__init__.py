"""The network: flows sharing links (``network``, ``sharing``), the communication patterns of a
step (``collectives``) and named links, models and link distributions (``presets``).

Units throughout: time in float64 seconds, sizes in integer bits, rates in bits/s.
"""
