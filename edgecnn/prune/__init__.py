"""Pruning: structured channel removal (torch-pruning), unstructured magnitude, and 2:4."""
