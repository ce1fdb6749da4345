"""The recipe: one YAML file describing one deployment, validated before anything runs.

Every section forbids unknown keys, so a typo is an error naming the field, not a silent default,
and every number is finite and bounded (an infinite ``benchmark.seconds`` would never end).
Sections: name, model, data, train (optional), prune (optional), quantize, export, benchmark,
output.
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from edgecnn.sections import MAX_BATCH, Section
from edgecnn.targets.registry import TARGETS, backend_names, export_target_names

# Seeds feed numpy's and torch's generators, which take 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
MAX_EPOCHS = 10_000


def check_template(text: str, allowed: set[str], field: str) -> str:
    """A path with ``{placeholders}``: only the ``allowed`` names, and well-formed braces."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{field} has unbalanced braces ({exc}); write {{{{ and }}}} for a "
                         "literal brace") from exc
    unknown = sorted(names - allowed)
    if unknown:
        valid = ", ".join(f"{{{a}}}" for a in sorted(allowed)) or "none"
        raise ValueError(f"{field} uses the placeholder {{{unknown[0]}}}; valid: {valid}")
    return text


ENTRY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class ModelSection(Section):
    """The model, from one of three sources: ``arch`` (a registered architecture), ``entry``
    (the user's own function returning an ``nn.Module``) or ``onnx`` (a graph another tool made,
    deployed as it is: nothing that needs the torch model applies to it)."""

    arch: str | None = Field(None, description="architecture name, see `edgecnn models`")
    entry: str | None = Field(
        None, pattern=ENTRY_PATTERN, max_length=512,
        description="package.module:function returning an nn.Module; the recipe's folder "
                    "(or search_path) is on the import path")
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="entry: keyword arguments of the function")
    search_path: str | None = Field(
        None, max_length=4096, description="entry: the folder put first on the import path; "
                                           "default: the recipe file's folder")
    onnx: str | None = Field(
        None, max_length=4096, description="an ONNX classifier (one NCHW input, [N, classes] "
                                           "output); {shared} is the shared data folder")
    num_classes: int | None = Field(None, ge=1, le=100_000,
                                    description="default: the dataset's class count")
    resolution: int | None = Field(None, ge=8, le=4096,
                                   description="input size; required for entry and onnx "
                                               "models that do not fix or declare it")
    pretrained: str | None = Field(
        None, description="checkpoint to start from; {shared} is the shared data folder, "
                          "package:MODULE/FILE a file inside an installed package")
    reset_classifier: bool = Field(False, description="a fresh classifier (transfer learning)")
    cifar_stem: bool = False
    separable: Literal["depthwise", "spatial"] | None = None
    in_chans: int = Field(3, ge=1, le=64)
    options: dict[str, Any] = Field(default_factory=dict, description="family options")

    @field_validator("pretrained", "onnx")
    @classmethod
    def _path_template(cls, value: str | None, info) -> str | None:
        return None if value is None else check_template(value, {"shared"}, info.field_name)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str | None) -> str | None:
        from edgecnn.errors import EdgeCNNError
        from edgecnn.models import get_spec

        if value is None:
            return value
        try:
            get_spec(value)
        except EdgeCNNError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSection:
        given = [k for k in ("arch", "entry", "onnx") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of arch (a registered architecture), entry "
                             "(package.module:function) and onnx (a file), got "
                             f"{', '.join(given) or 'none'}")
        source = given[0]
        # options that only one source can honour: refused rather than silently ignored
        only = {"options": "arch", "cifar_stem": "arch", "separable": "arch",
                "kwargs": "entry", "search_path": "entry"}
        for name, owner in only.items():
            if name in self.model_fields_set and source != owner and getattr(self, name):
                raise ValueError(f"{name} applies to model.{owner}, not to model.{source}")
        if source == "onnx":
            for name in ("pretrained", "reset_classifier", "num_classes"):
                if name in self.model_fields_set and getattr(self, name):
                    raise ValueError(f"{name} does not apply to model.onnx: the graph holds its "
                                     "weights and classifier")
        return self

    @property
    def source(self) -> str:
        """'arch', 'entry' or 'onnx'."""
        return "arch" if self.arch else "entry" if self.entry else "onnx"

    @property
    def label(self) -> str:
        """How reports name the model's origin: the architecture, entry:..., onnx:FILE."""
        if self.arch:
            return self.arch
        return f"entry:{self.entry}" if self.entry else f"onnx:{self.onnx}"


class DataSection(Section):
    dataset: str = Field("cifar10-jpeg", description="a known name or a folder/archive path")
    val_size: int = Field(5000, ge=0, le=100_000_000,
                          description="images held out of train for validation")
    split_seed: int = Field(0, ge=0, le=MAX_SEED)
    augment: Literal["none", "flip", "cifar", "imagenet"] = Field(
        "cifar", description="cifar: pad 4 + random crop + horizontal flip; flip: the flip only; "
                             "imagenet: random resized crop + flip from images decoded at "
                             "resolution/0.875")
    eval_split: str = Field("test", description="the split accuracy is reported on")
    eval_batch_size: int = Field(256, ge=1, le=MAX_BATCH)
    mean: tuple[float, float, float] | None = Field(None, description="default: the model's")
    std: tuple[float, float, float] | None = Field(None, description="default: the model's; "
                                                                     "each > 0")

    @field_validator("mean")
    @classmethod
    def _mean_in_range(cls, value: tuple | None) -> tuple | None:
        # images are scaled to [0, 1] before (x - mean) / std
        if value is not None and any(not -10 <= m <= 10 for m in value):
            raise ValueError(f"mean is of images scaled to [0, 1]: each between -10 and 10, "
                             f"got {list(value)}")
        return value

    @field_validator("std")
    @classmethod
    def _std_positive(cls, value: tuple | None) -> tuple | None:
        if value is not None and any(not 1e-6 <= s <= 1e3 for s in value):
            raise ValueError(f"std divides the images: each between 1e-6 and 1000, got "
                             f"{list(value)}")
        return value


class TrainSection(Section):
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(128, ge=1, le=MAX_BATCH)
    lr: float = Field(0.1, gt=0, le=100, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0, le=1)
    decay_norm_and_bias: bool = Field(
        True, description="false: no weight decay on BatchNorm scales/shifts and biases "
                          "(the 1-D parameters), as timm and torchvision train")
    schedule: Literal["cosine", "onecycle", "plateau"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0, le=MAX_EPOCHS,
                                 description="linear warm-up (cosine, plateau)")
    plateau_patience: int = Field(3, ge=1, le=MAX_EPOCHS,
                                  description="epochs without improvement before /10")
    min_lr: float = Field(0.0, ge=0, le=100)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    freeze: Literal["none", "backbone"] | int = Field(
        "none", description="'backbone' trains only the classifier; N freezes the first N stages")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: fp16 autocast on CUDA, bf16 on CPUs with native BF16, else fp32")
    channels_last: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("freeze")
    @classmethod
    def _non_negative(cls, value: str | int) -> str | int:
        if isinstance(value, int) and not 0 <= value <= 1000:
            raise ValueError("freeze must be 'none', 'backbone' or a number of stages 0..1000")
        return value


class DistillSection(Section):
    """Fine-tuning a pruned model with its dense original as the teacher (Hinton et al. 2015)."""

    weight: float = Field(0.7, ge=0, le=1, description="share of the loss from the teacher's "
                                                       "softened probabilities (the rest: labels)")
    temperature: float = Field(4.0, gt=0, le=1000,
                               description="softmax temperature of both models' logits in the "
                                           "distillation term")


class PruneSection(Section):
    """Pruning after training (or after loading ``model.pretrained``), then fine-tuning.

    The dense model stays in the build beside the pruned one (``keep_dense``), so the report
    compares them measured side by side.
    """

    method: Literal["channels", "unstructured", "two_four"] = Field(
        "channels", description="channels: whole channels removed (torch-pruning), the only kind "
                                "that makes a dense CNN faster; unstructured: smallest weights "
                                "zeroed (smaller compressed file, no dense speed-up); two_four: "
                                "2 of every 4 input weights zeroed, for TensorRT's sparse "
                                "tensor cores")
    macs_fraction: float | None = Field(
        None, gt=0, lt=1, description="channels: prune until the MACs are at most this fraction "
                                      "of the dense model's")
    ratio: float | None = Field(None, gt=0, le=0.9,
                                description="channels: fraction of every layer's channels "
                                            "removed (instead of macs_fraction)")
    global_pruning: bool = Field(False, description="channels: rank channels across layers")
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = "l1"
    round_to: int | Literal["auto"] | None = Field(
        "auto", description="channels: keep channel counts multiples of this; auto: ONNX "
                            "Runtime's blocked-convolution width on this CPU (16 with AVX-512, "
                            "else 8), since it runs convolutions of other widths unblocked and "
                            "slower (benchmarks/README.md)")
    keep_layers: list[str] = Field(
        default_factory=list, description="channels: layers whose output channels are never "
                                          "pruned, as module-name patterns (e.g. "
                                          "'layer*.conv2': ResNet-20's residual stream)")
    amount: float | None = Field(None, gt=0, lt=1,
                                 description="unstructured: fraction of the weights zeroed")
    steps: int = Field(1, ge=1, le=100, description="iterative prune -> fine-tune rounds, each "
                                            "pruning part of the way to the target")
    finetune: TrainSection | None = Field(
        None, description="training after each pruning step (data and augmentation from the "
                          "data section); none: the pruned model as it is")
    distill: DistillSection | None = Field(
        None, description="fine-tune with the dense model as teacher; none: labels only")
    keep_dense: bool = Field(True, description="also export, evaluate and benchmark the "
                                               "unpruned model")
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=100, description="points of top-1 the pruned FP32 model may lose "
                                        "against the dense FP32 one; the build fails beyond it")

    @field_validator("round_to")
    @classmethod
    def _positive_multiple(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= 1024:
            raise ValueError(f"round_to must be 'auto', null or 1..1024, got {value}")
        return value

    @model_validator(mode="after")
    def _target_fits_method(self) -> PruneSection:
        if self.method == "channels" and (self.macs_fraction is None) == (self.ratio is None):
            raise ValueError("method channels needs exactly one of macs_fraction and ratio")
        if self.method == "unstructured" and self.amount is None:
            raise ValueError("method unstructured needs amount (the fraction of weights zeroed)")
        given = [k for k in ("macs_fraction", "ratio", "amount") if getattr(self, k) is not None]
        allowed = {"channels": {"macs_fraction", "ratio"}, "unstructured": {"amount"},
                   "two_four": set()}[self.method]
        extra = [k for k in given if k not in allowed]
        if extra:
            raise ValueError(f"{', '.join(extra)} does not apply to method {self.method}")
        if self.keep_layers and self.method != "channels":
            raise ValueError(f"keep_layers applies to method channels, not {self.method}")
        if self.method == "two_four" and self.steps != 1:
            raise ValueError("method two_four prunes in one step (2 of every 4 weights); "
                             "set steps: 1")
        if self.distill is not None and self.finetune is None:
            raise ValueError("distill teaches the fine-tuning: add a finetune section or drop "
                             "distill")
        if self.max_accuracy_drop is not None and not self.keep_dense:
            raise ValueError("max_accuracy_drop compares against the dense model, which "
                             "keep_dense: false leaves out; keep it or drop the budget")
        return self


class CalibrationSection(Section):
    method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="how activation ranges are chosen from the samples")
    samples: int = Field(512, ge=1, le=1_000_000, description="images drawn from the split")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    split: str | None = Field(
        None, description="the split samples are drawn from; default: train, or on a dataset "
                          "without one, the evaluation split -- whose calibration images are "
                          "then left out of the evaluation")
    set: str | None = Field(
        None, description="a calibration-set definition instead of samples/seed: a name from "
                          "the calibration/ folder (e.g. cifar10-train-512) or a YAML path")
    percentile: float = Field(99.999, gt=50, lt=100,
                              description="the percentile method's cut, in percent")
    table: str | None = Field(
        None, description="a calibration table (JSON) a build saved: its ranges instead of a "
                          "calibration run (`edgecnn build --calibration FILE`)")

    @field_validator("table")
    @classmethod
    def _table_template(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value, {"shared"}, "table")

    @model_validator(mode="after")
    def _set_or_samples(self) -> CalibrationSection:
        # a definition names its own samples and seed: a second pair here would be ignored
        given = sorted({"samples", "seed", "split"} & self.model_fields_set)
        if self.set and given:
            raise ValueError(f"set names its own split, samples and seed; drop "
                             f"{' and '.join(given)} or drop set")
        return self


class QATSection(Section):
    """Quantization-aware fine-tuning before quantizing (``quantize.method: qat``)."""

    epochs: int = Field(2, ge=1, le=MAX_EPOCHS)
    lr: float = Field(0.002, gt=0, le=100,
                      description="peak learning rate, cosine-annealed; ~1% of the training's, "
                                  "as NVIDIA's QAT guide advises")
    batch_size: int = Field(128, ge=1, le=MAX_BATCH)


class QuantizeSection(Section):
    method: Literal["none", "ptq", "qat"] = Field(
        "ptq", description="ptq: post-training static INT8; qat: fine-tune with fake "
                           "quantization first (ONNX Runtime's scheme), then quantize")
    per_channel: bool = True
    reduce_range: bool | None = Field(
        None, description="7-bit weights; null: only on x86 CPUs without VNNI, whose U8S8 "
                          "kernels saturate in ONNX Runtime otherwise (its documented caveat)")
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=100, description="points of top-1 INT8 may lose against FP32: beyond it the "
                                "most sensitive layers return to float until it fits (judged "
                                "on val or spare train images), and the build fails if INT8 "
                                "still loses more on the evaluation split")
    qat: QATSection = Field(default_factory=QATSection)

    @model_validator(mode="after")
    def _qat_calibrates_minmax(self) -> QuantizeSection:
        if self.method == "qat" and self.calibration.method != "minmax":
            raise ValueError("method qat trains against minmax ranges; set calibration.method: "
                             "minmax")
        if self.method == "qat" and self.calibration.table:
            raise ValueError("method qat fine-tunes a new model each build, so a saved "
                             "calibration table cannot apply to it; drop calibration.table")
        return self


class OnnxSection(Section):
    opset: int = Field(18, ge=17, le=23)
    dynamic_batch: bool = True
    simplify: bool = True
    check_samples: int = Field(64, ge=1, le=10_000,
                               description="real test images compared torch vs ONNX")
    max_abs_diff: float = Field(1e-3, gt=0, le=1e6, description="tolerance of the numeric check")


class ExportBase(Section):
    onnx: OnnxSection = Field(default_factory=OnnxSection)
    targets: list[Literal[export_target_names()]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["onnxruntime"], min_length=1,
        description="tensorrt builds engines where TensorRT and a GPU are present; elsewhere "
                    "the build says so and goes on with the other targets")


# export.<target>: the section each target declares in its module (edgecnn/targets/).
ExportSection = create_model(
    "ExportSection", __base__=ExportBase,
    **{name: (t.section, Field(default_factory=t.section))
       for name, t in TARGETS.items() if t.section is not None})


class BenchmarkSection(Section):
    backends: list[Literal[backend_names()]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["onnxruntime"], min_length=1,
        description="the runtimes timed; each needs its export target (torch: none)")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8], min_length=1, max_length=32)
    threads: int | None = Field(None, ge=1, le=1024, description="default: all cores")
    warmup: int = Field(10, ge=0, le=100_000)
    iterations: int = Field(100, ge=1, le=1_000_000, description="minimum timed runs")
    seconds: float = Field(2.0, ge=0, le=3600, description="minimum timed seconds")
    rounds: int = Field(2, ge=1, le=100, description="alternating rounds over the artifacts")
    device: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$", max_length=64,
        description="a Ray resource name: `edgecnn sweep` benchmarks this run on a node that "
                    "carries it (e.g. a Jetson started with `ray start --resources`); a plain "
                    "build benchmarks where it runs")

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(not 1 <= b <= MAX_BATCH for b in value):
            raise ValueError(f"batch sizes must be 1..{MAX_BATCH}, got {value}")
        return value


class Recipe(Section):
    # a file name that cannot be '.', '..' or hidden: it becomes a folder under output
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=128,
                      description="run name (a file name)")
    model: ModelSection
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection | None = None
    prune: PruneSection | None = None
    quantize: QuantizeSection = Field(default_factory=QuantizeSection)
    export: ExportSection = Field(default_factory=ExportSection)
    benchmark: BenchmarkSection = Field(default_factory=BenchmarkSection)
    output: str = Field("runs/{name}", min_length=1, max_length=4096,
                        description="run directory; {name} is the recipe's name")

    @field_validator("output")
    @classmethod
    def _output_template(cls, value: str) -> str:
        return check_template(value, {"name"}, "output")

    @model_validator(mode="after")
    def _onnx_needs_no_torch_model(self) -> Recipe:
        if self.model.onnx is None:
            return self
        needs = [("train", self.train is not None, "trains the torch model"),
                 ("prune", self.prune is not None, "prunes the torch model"),
                 ("quantize.method qat", self.quantize.method == "qat",
                  "fine-tunes the torch model"),
                 ("benchmark.backends torch", "torch" in self.benchmark.backends,
                  "times the torch model")]
        # a target whose stage converts the torch model (LiteRT, ExecuTorch)
        needs += [(f"export.targets {name}", True, "converts the torch model")
                  for name in self.export.targets
                  if TARGETS[name].stage is not None and TARGETS[name].stage.from_weights]
        for field, present, why in needs:
            if present:
                raise ValueError(f"model.onnx: {field} {why}, which an ONNX file does not "
                                 "carry; drop it, or build from the model's code with "
                                 "model.arch or model.entry")
        return self

    @model_validator(mode="after")
    def _qat_keeps_sparsity(self) -> Recipe:
        # QAT trains every weight: the zeros of unstructured or 2:4 pruning would grow back
        if (self.quantize.method == "qat" and self.prune is not None
                and self.prune.method != "channels"):
            raise ValueError(f"quantize.method qat would refill the zeros of prune.method "
                             f"{self.prune.method}; use ptq with it, or channel pruning")
        return self

    def run_dir(self) -> str:
        try:
            return self.output.format(name=self.name)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            # a format spec the template check cannot see into, e.g. {name:{width}}
            from edgecnn.errors import EdgeCNNError

            raise EdgeCNNError(f"output {self.output!r} is not a valid template ({exc!r}); "
                               "use {name} for the recipe's name") from exc
