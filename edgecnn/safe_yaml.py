"""YAML a user wrote, read strictly and within bounds (recipes, calibration-set definitions).

Stricter than ``yaml.safe_load`` where a file could otherwise surprise: a key may appear once per
mapping (named with both lines), and a document is bounded in nodes once aliases are expanded:
an "alias bomb" of a few hundred bytes expands to gigabytes, and echoing it in an error message
would print megabytes. Values echoed in messages are cut short (:func:`echo`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgecnn.errors import EdgeCNNError

# A real recipe is a few kB with a few hundred values; these bounds are orders of magnitude above.
MAX_BYTES = 1 << 20
MAX_EXPANDED_NODES = 100_000
# Values echoed back in error messages are cut to this many characters.
MAX_ECHO = 80


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, naming the key and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise EdgeCNNError(f"duplicate key {echo(key)} at line {line} (first at line "
                                   f"{first_line[key]}); a key may appear once in a mapping")
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def echo(value: Any) -> str:
    """``repr(value)``, cut to :data:`MAX_ECHO` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO - 3] + "..."


def _expanded_nodes(value: Any, memo: dict[int, int]) -> int:
    """How many nodes ``value`` holds with every alias expanded; shared objects are counted
    once per reference, but computed once (``memo``), so the count itself is linear."""
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, dict):
        count = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo)
                        for k, v in value.items())
    elif isinstance(value, list):
        count = 1 + sum(_expanded_nodes(v, memo) for v in value)
    else:
        count = 1
    memo[id(value)] = min(count, MAX_EXPANDED_NODES + 1)
    return memo[id(value)]


def parse_yaml(text: str, source: str) -> Any:
    """One YAML document, with the recipe bounds; ``source`` names it in errors."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except EdgeCNNError as exc:
        raise EdgeCNNError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EdgeCNNError(f"{source}: YAML syntax error{where}: {problem}") from exc
    except RecursionError:
        raise EdgeCNNError(f"{source}: nested too deeply") from None
    if _expanded_nodes(data, {}) > MAX_EXPANDED_NODES:
        raise EdgeCNNError(f"{source}: more than {MAX_EXPANDED_NODES:,} values once its "
                           "aliases are expanded; a recipe is a few hundred")
    return data


def read_yaml_file(path: Path, what: str) -> Any:
    """The YAML document of ``path`` (UTF-8, at most :data:`MAX_BYTES`); ``what`` names the
    kind of file in errors ("recipe", "calibration set")."""
    if not path.is_file():
        raise EdgeCNNError(f"{what} {path} does not exist" + (
            " (it is a folder)" if path.is_dir() else ""))
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise EdgeCNNError(f"{what} {path} cannot be read: {exc.strerror}") from exc
    if len(raw) > MAX_BYTES:
        raise EdgeCNNError(f"{what} {path} is larger than {MAX_BYTES >> 20} MiB; it should be "
                           "a few kB of YAML")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EdgeCNNError(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as "
                           "UTF-8") from exc
    return parse_yaml(text.removeprefix("\ufeff"), f"{what} {path}")  # a UTF-8 BOM is harmless


