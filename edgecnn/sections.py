"""The base of every recipe section, shared by the recipe schema and the target modules that
declare a section of their own (``export.tflite``, ``export.tensorrt``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# The largest batch any section accepts (training, evaluation, TensorRT profiles, benchmarks).
MAX_BATCH = 65_536


class Section(BaseModel):
    """Unknown keys are errors naming the field; numbers are finite."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
