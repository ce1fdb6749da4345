"""Parameters, mult-adds, activation memory and weight size, per layer and in total."""

from edgecnn.profile.counting import conv2d_macs, depthwise_separable_macs, linear_macs
from edgecnn.profile.profiler import LayerStats, ModelProfile, profile_model
from edgecnn.profile.summary import format_summary

__all__ = [
    "LayerStats",
    "ModelProfile",
    "conv2d_macs",
    "depthwise_separable_macs",
    "format_summary",
    "linear_macs",
    "profile_model",
]
