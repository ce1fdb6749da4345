"""Recipes: the schema, and loading with ``--set`` overrides."""

from edgecnn.recipe.loading import load_recipe
from edgecnn.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe"]
