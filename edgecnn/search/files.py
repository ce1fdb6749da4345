"""Reading a search file: an architecture search (``space``) or compound scaling
(``compound``), told apart by their sections."""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import EdgeCNNError
from edgecnn.safe_yaml import read_yaml_file
from edgecnn.search.compound_spec import CompoundFile, is_compound, parse_compound
from edgecnn.search.spec import SearchFile, parse_search


def load_search(path: str | Path) -> tuple[SearchFile | CompoundFile, Path]:
    """The validated search file and its folder (where its recipes are read from)."""
    path = Path(path)
    data = read_yaml_file(path, "search file")
    if not isinstance(data, dict):
        raise EdgeCNNError(f"search file {path}: expected a mapping (name, base, space or "
                           f"compound, objective, ...), got {type(data).__name__}")
    return parse_compound(data, path) if is_compound(data) else parse_search(data, path)
