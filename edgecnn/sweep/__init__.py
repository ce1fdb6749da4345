"""Sweeps: many builds from one base recipe and a grid of overrides, run as Ray tasks and merged
into one report with Pareto frontiers (``edgecnn sweep``)."""
