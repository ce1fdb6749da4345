"""Deployment targets: one module per runtime, one registry (:mod:`.registry`)."""

from edgecnn.targets.base import BuildInputs, Target, TargetStage
from edgecnn.targets.registry import TARGETS, get_target, open_runner

__all__ = ["TARGETS", "BuildInputs", "Target", "TargetStage", "get_target", "open_runner"]
