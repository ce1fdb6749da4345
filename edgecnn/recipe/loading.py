"""Reading a recipe: YAML, ``--set a.b=value`` overrides, then schema validation.

Every failure is an :class:`EdgeCNNError` naming the file, line or field and what is valid. The
file is read by :mod:`edgecnn.safe_yaml` (UTF-8, bounded in size and alias expansion, no
duplicate keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.schema import Recipe
from edgecnn.safe_yaml import MAX_ECHO, echo, parse_yaml, read_yaml_file

MAX_ERRORS = 8  # schema errors listed in one message

def read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, "recipe")
    if not isinstance(data, dict):
        raise EdgeCNNError(f"recipe {path}: expected a mapping of sections, got "
                           f"{type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], assignment: str, source: str = "--set") -> None:
    """``a.b.c=value``: set an existing key (or a key of an existing section) to a YAML value."""
    set_field(data, *parse_assignment(assignment, source), source)


def parse_assignment(assignment: str, source: str = "--set") -> tuple[str, Any]:
    """``a.b.c=value`` as the dotted key and the value read as YAML."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise EdgeCNNError(f"{source} {echo(assignment)} must look like section.key=value")
    return key.strip(), parse_yaml(text, f"{source} {echo(assignment)}: the value")


def set_field(data: dict[str, Any], key: str, value: Any, source: str = "--set") -> None:
    """Set the dotted recipe field ``key`` (``a.b.c``) to ``value`` in the raw recipe ``data``:
    a key of an existing section, or of a section the schema knows (created empty)."""
    parts = key.strip().split(".")
    if not all(parts):
        raise EdgeCNNError(f"{source} {echo(key)} is not a dotted recipe field like "
                           "section.key")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node, dict):
            raise EdgeCNNError(f"{source} {key}: {'.'.join(parts[:depth])} is not a section")
        node = node.setdefault(part, {}) if _is_section(parts[:depth + 1]) else node.get(part)
        if node is None:
            raise EdgeCNNError(f"{source} {key}: there is no {'.'.join(parts[:depth + 1])} in "
                               "the recipe")
    if not isinstance(node, dict):
        raise EdgeCNNError(f"{source} {key}: {'.'.join(parts[:-1])} is not a section")
    node[parts[-1]] = value  # an unknown leaf name is then rejected by the schema


def _is_section(path: list[str]) -> bool:
    # Sections (top-level or nested, e.g. quantize.calibration) may be absent from the file and
    # take their defaults, so --set may create them.
    return _section_model(path) is not None


def _section_model(path: list[str] | tuple) -> Any:
    """The schema class of the section at ``path``, or None if ``path`` is not a section."""
    model: Any = Recipe
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        model = next((a for a in getattr(annotation, "__args__", (annotation,))
                      if isinstance(a, type) and hasattr(a, "model_fields")), None)
        if model is None:
            return None
    return model


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])[:MAX_ECHO * 2] or "(recipe)"
        if err["type"] == "extra_forbidden":
            parent = err["loc"][:-1]
            valid = _field_names(parent)
            lines.append(f"{field}: unknown key; valid keys here: {', '.join(valid)}")
        elif err["type"] == "missing":
            lines.append(f"{field}: required but missing")
        else:
            got = err.get("input")
            # edgecnn's own validators (value_error) already name the value they refuse
            shown = (f" (got {echo(got)})" if not isinstance(got, dict) and got is not None
                     and err["type"] != "value_error" else "")
            lines.append(f"{field}: {err['msg'].removeprefix('Value error, ')}{shown}")
    if len(lines) > MAX_ERRORS:
        lines = [*lines[:MAX_ERRORS], f"and {len(lines) - MAX_ERRORS} more"]
    return f"recipe {source}: " + "; ".join(lines)


def _field_names(path: tuple) -> list[str]:
    model = _section_model(path)
    return list(model.model_fields) if model is not None else []


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    path = Path(path)
    data = read_yaml(path)
    for assignment in overrides:
        apply_override(data, assignment)
    return validate_recipe(data, str(path), path.resolve().parent)


def validate_recipe(data: dict[str, Any], source: str, folder: Path) -> Recipe:
    """The raw recipe ``data`` checked against the schema; ``source`` names it in errors and
    ``folder`` is where it lives (an entry point's module is looked for beside it)."""
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise EdgeCNNError(format_validation_error(exc, source)) from exc
    if recipe.model.entry and recipe.model.search_path is None:
        # the user's module sits beside the recipe that names it
        recipe.model.search_path = str(folder)
    return recipe


def load_run_recipe(run_dir: Path) -> Recipe:
    """The recipe a finished build wrote into its run directory (RUN_DIR/recipe.json)."""
    import json

    from edgecnn.rundir import RECIPE_FILE

    path = Path(run_dir) / RECIPE_FILE
    if not path.is_file():
        raise EdgeCNNError(f"{run_dir} is not an edgecnn run directory (no {RECIPE_FILE}); give "
                           "the folder `edgecnn build` wrote")
    try:
        return Recipe.model_validate(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError, ValidationError) as exc:
        raise EdgeCNNError(f"{path} is not the recipe an edgecnn build wrote "
                           f"({type(exc).__name__}); build the run again") from exc
