"""The recipe: one YAML file describing one deployment, validated before anything runs.

Every section forbids unknown keys, so a typo is an error naming the field, not a silent default.
Sections: name, model, data, train (optional), quantize, export, benchmark, output. Pruning
joins with its stage (a ``prune:`` section is an unknown key until then).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(Section):
    arch: str = Field(description="architecture name, see `edgecnn models`")
    num_classes: int | None = Field(None, ge=1, description="default: the dataset's class count")
    resolution: int | None = Field(None, ge=8, le=4096)
    pretrained: str | None = Field(
        None, description="checkpoint to start from; {shared} is the shared data folder")
    reset_classifier: bool = Field(False, description="a fresh classifier (transfer learning)")
    cifar_stem: bool = False
    separable: Literal["depthwise", "spatial"] | None = None
    in_chans: int = Field(3, ge=1)
    options: dict[str, Any] = Field(default_factory=dict, description="family options")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        from edgecnn.errors import EdgeCNNError
        from edgecnn.models import get_spec

        try:
            get_spec(value)
        except EdgeCNNError as exc:
            raise ValueError(str(exc)) from None
        return value


class DataSection(Section):
    dataset: str = Field("cifar10-jpeg", description="a known name or a folder/archive path")
    val_size: int = Field(5000, ge=0, description="images held out of train for validation")
    split_seed: int = 0
    augment: Literal["none", "flip", "cifar", "imagenet"] = Field(
        "cifar", description="cifar: pad 4 + random crop + horizontal flip; flip: the flip only; "
                             "imagenet: random resized crop + flip from images decoded at "
                             "resolution/0.875")
    eval_split: str = Field("test", description="the split accuracy is reported on")
    eval_batch_size: int = Field(256, ge=1)
    mean: tuple[float, float, float] | None = Field(None, description="default: the model's")
    std: tuple[float, float, float] | None = None


class TrainSection(Section):
    epochs: int = Field(ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    decay_norm_and_bias: bool = Field(
        True, description="false: no weight decay on BatchNorm scales/shifts and biases "
                          "(the 1-D parameters), as timm and torchvision train")
    schedule: Literal["cosine", "onecycle", "plateau"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up (cosine, plateau)")
    plateau_patience: int = Field(3, ge=1, description="epochs without improvement before /10")
    min_lr: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    freeze: Literal["none", "backbone"] | int = Field(
        "none", description="'backbone' trains only the classifier; N freezes the first N stages")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: fp16 autocast on CUDA, bf16 on CPUs with native BF16, else fp32")
    channels_last: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0

    @field_validator("freeze")
    @classmethod
    def _non_negative(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value < 0:
            raise ValueError("freeze must be 'none', 'backbone' or a number of stages >= 0")
        return value


class CalibrationSection(Section):
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    samples: int = Field(512, ge=1, description="images drawn from the train split")
    seed: int = 0


class QuantizeSection(Section):
    method: Literal["none", "ptq"] = Field("ptq", description="ptq: post-training static INT8")
    per_channel: bool = True
    reduce_range: bool = Field(
        True, description="7-bit weights: x86 CPUs without VNNI saturate in ONNX Runtime's "
                          "U8S8 kernels otherwise (its documented caveat)")
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)
    max_accuracy_drop: float | None = Field(
        None, ge=0, description="points of top-1 INT8 may lose against FP32; the build fails "
                                "beyond it")


class OnnxSection(Section):
    opset: int = Field(18, ge=17, le=23)
    dynamic_batch: bool = True
    simplify: bool = True
    check_samples: int = Field(64, ge=1, description="real test images compared torch vs ONNX")
    max_abs_diff: float = Field(1e-3, gt=0, description="tolerance of the numeric check")


class TensorRTSection(Section):
    """Engines built on the device that runs them (see edgecnn/backends/tensorrt)."""

    precisions: list[Literal["fp32", "fp16", "int8"]] = Field(
        default_factory=lambda: ["fp16", "int8"], min_length=1,
        description="one engine each; int8 from the Q/DQ ONNX (needs quantize.method ptq)")
    fp16_mode: Literal["graph", "flag"] = Field(
        "graph", description="graph: an FP16 ONNX, strongly typed (TensorRT 10 and 11); flag: "
                             "the FP32 ONNX with the FP16 builder flag (TensorRT 10 only)")
    opt_batch: int | None = Field(None, ge=1, description="profile's opt batch; default: the "
                                                          "largest benchmark batch")
    workspace_mib: int = Field(1024, ge=1, description="builder workspace limit")
    dla_core: int | None = Field(None, ge=0, description="Jetson DLA core, GPU fallback on")
    sparse_weights: bool = Field(False, description="2:4 sparse weights on sparse tensor cores")
    timing_cache: str | None = Field(
        None, description="timing cache file; default: one per GPU and TensorRT version in "
                          "the edgecnn cache, reused by every build")
    cuda_graph: bool = Field(False, description="replay each inference as a CUDA graph")


class ExportSection(Section):
    onnx: OnnxSection = Field(default_factory=OnnxSection)
    targets: list[Literal["onnxruntime", "tensorrt"]] = Field(
        default_factory=lambda: ["onnxruntime"], min_length=1,
        description="tensorrt builds engines where TensorRT and a GPU are present; elsewhere "
                    "the build says so and goes on with the other targets")
    tensorrt: TensorRTSection = Field(default_factory=TensorRTSection)


class BenchmarkSection(Section):
    backends: list[Literal["onnxruntime", "torch", "tensorrt"]] = Field(
        default_factory=lambda: ["onnxruntime"], min_length=1)
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8], min_length=1)
    threads: int | None = Field(None, ge=1, description="default: all cores")
    warmup: int = Field(10, ge=0)
    iterations: int = Field(100, ge=1, description="minimum timed runs")
    seconds: float = Field(2.0, ge=0, description="minimum timed seconds")
    rounds: int = Field(2, ge=1, description="alternating rounds over the artifacts")

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(b < 1 for b in value):
            raise ValueError(f"batch sizes must be >= 1, got {value}")
        return value


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="run name (a file name)")
    model: ModelSection
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection | None = None
    quantize: QuantizeSection = Field(default_factory=QuantizeSection)
    export: ExportSection = Field(default_factory=ExportSection)
    benchmark: BenchmarkSection = Field(default_factory=BenchmarkSection)
    output: str = Field("runs/{name}", description="run directory; {name} is the recipe's name")

    def run_dir(self) -> str:
        return self.output.format(name=self.name)
