"""What a measurement ran on, with the version of every runtime's packages (the target
registry's) beside the core libraries."""

from __future__ import annotations

from typing import Any

from edgecnn.bench import context
from edgecnn.targets.registry import target_packages


def libraries() -> tuple[str, ...]:
    return tuple(dict.fromkeys(context.CORE_LIBRARIES + target_packages()))


def versions() -> dict[str, str]:
    return context.versions(libraries())


def run_context(threads: int | None = None) -> dict[str, Any]:
    return context.run_context(threads, libraries())
