"""Figures drawn from results on disk or a Result; never runs a simulation."""
