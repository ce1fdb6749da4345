"""Quantization-aware training (QAT) for the ONNX Runtime INT8 target.

What it does: fine-tunes an FP32 model for a few epochs while every tensor that ONNX Runtime's
quantizer will quantize is fake-quantized the way that quantizer will quantize it, then hands
back a plain FP32 model of the same architecture (same state_dict keys). The build exports it to
ONNX and quantizes it with :func:`edgecnn.quantize.onnxruntime_static.quantize_static_onnx`
exactly as after post-training quantization, with the same calibration images and options, so a
QAT model ends up in ONNX Runtime's own Q/DQ layout (the one its CPU fusions run fast), its
ranges re-calibrated by that quantizer.

The simulation (:mod:`edgecnn.quantize.qat_simulation`) is ONNX Runtime's QDQ U8S8 scheme and
placement: symmetric int8 weights from the current max|w| (7-bit with ``reduce_range``) on
BatchNorm-folded convolutions, asymmetric uint8 activations on the tensors ONNX Runtime
quantizes, their ranges the FP32 min/max over the build's calibration images, re-measured every
``recalibrate_every`` steps to follow the moving weights as the final calibration will (not at
every step: a grid that keeps moving is what NVIDIA's pytorch-quantization guide warns against).

The final ranges are re-calibrated by ONNX Runtime rather than taken from the simulation: with
the same images and rule they are the same numbers, and it needs no mapping from torch modules
to ONNX tensor names, which the exporter and ``quant_pre_process`` rename.

Why this and not a library's QAT, measured by benchmarks/qat_mobilenet_v2.py on the demo's
MobileNet v2 0.5 (CIFAR-10 (JPEG copy) test split, per-tensor 8-bit weights, 2 epochs, the same
loop :func:`train_epochs` for every method; results/qat_mobilenet_v2.json). Each model was
brought back to FP32 weights and quantized by ONNX Runtime, the target. ONNX Runtime INT8 top-1:
FP32 80.11%, PTQ 80.04%; this module 80.46% at 101-103 s/epoch; torchao PT2E 80.31% at
151 s/epoch; NNCF 80.17% at 183 s/epoch; FP32 fine-tuning then PTQ 80.16% (64 s/epoch).
Caveat: that model loses almost nothing to PTQ in any ONNX Runtime setting (<= 0.1 point), and
the same fine-tune with BatchNorm folded and frozen but no fake quantization reached 80.41%:
the gains here come from the extra training, not from quantization awareness.

* NNCF (``nncf.quantize`` + training) simulates OpenVINO's scheme: symmetric activation
  quantizers with trainable scales, BatchNorm unfolded in train mode. Its own Q/DQ export is
  the OpenVINO layout that ONNX Runtime ran 3-5x slower than FP32 (DESIGN.md), so only its
  weights are usable, re-quantized on ONNX Runtime's grid rather than the one they were trained
  for. It JIT-compiles a C++ extension on first use.
* torchao PT2E (``prepare_qat_pt2e`` + ``X86InductorQuantizer``, oneDNN's U8S8, the scheme
  closest to ONNX Runtime's) trains a ``torch.export`` graph whose parameters must be mapped
  back to the eager model; its default weight grid is [-128, 127] with moving-average ranges,
  and on ResNet-20 its annotator failed ("Input partition has more than one output node",
  torch 2.13 / torchao 0.18).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.qat_simulation import QATModel, fake_quant_model, resolve_reduce_range

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from torch import nn

    from edgecnn.data.splits import ImageSet

__all__ = ["QATModel", "QATResult", "fake_quant_model", "qat_finetune", "resolve_reduce_range",
           "train_epochs"]


@dataclass
class QATResult:
    """What a QAT fine-tune did, for the build manifest and the report."""

    epochs: int
    steps: int
    lr: float
    batch_size: int
    per_channel: bool
    reduce_range: bool
    tuned: bool
    activation_quantizers: int
    weight_quantizers: int
    folded_batchnorms: int
    recalibrations: int
    calibration_samples: int
    train_images: int
    device: str
    threads: int
    scheme: str
    epoch_seconds: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_top1: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- fine-tuning --------------------------------------------------------------------------------


@dataclass
class EpochStats:
    loss: float
    top1: float
    seconds: float
    images: int


def train_epochs(
    forward: Callable[[torch.Tensor], torch.Tensor], params: list, loader, *, epochs: int,
    lr: float, momentum: float = 0.9, weight_decay: float = 0.0, label_smoothing: float = 0.0,
    device: torch.device | str = "cpu", set_train: Callable[[], None] | None = None,
    before_step: Callable[[int], None] | None = None, console: Console | None = None,
) -> list[EpochStats]:
    """The fine-tuning loop: SGD (Nesterov momentum), cross-entropy, the learning rate
    cosine-annealed from ``lr`` to 0 over all steps. ``before_step(step)`` runs before every
    step (re-calibration); ``set_train`` puts the model in its training mode each epoch.

    Kept separate from :func:`qat_finetune` so that other fake-quantization schemes (NNCF's,
    torchao's, in benchmarks/qat_mobilenet_v2.py) are compared under the very same training.
    """
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0,
                                weight_decay=weight_decay)
    total = epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total)))
    stats, step = [], 0
    for epoch in range(1, epochs + 1):
        if set_train is not None:
            set_train()
        loader.set_epoch(epoch)
        loss_sum = correct = seen = 0
        start = time.perf_counter()
        for x, y in loader:
            if before_step is not None:
                before_step(step)
            x, y = x.to(device), y.to(device)
            logits = forward(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        seconds = time.perf_counter() - start
        stats.append(EpochStats(loss_sum / seen, 100.0 * correct / seen, seconds, seen))
        if console is not None:
            console.print(f"QAT epoch {epoch}/{epochs}  loss {loss_sum / seen:.3f}  "
                          f"train (fake-quant) {100.0 * correct / seen:5.1f}%  "
                          f"{seconds:.0f} s  {seen / seconds:.0f} img/s")
    return stats


def check_options(*, epochs: int, lr: float, batch_size: int, augment: str,
                  recalibrate_every: int, calibration: np.ndarray,
                  calibration_method: str = "minmax") -> np.ndarray:
    """Validate the user-facing QAT options; returns the calibration array as float32."""
    from edgecnn.data.loaders import AUGMENTATIONS

    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise EdgeCNNError(f"quantize.qat.epochs must be an integer >= 1, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise EdgeCNNError(f"quantize.qat.lr must be a number > 0, got {lr!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise EdgeCNNError(f"quantize.qat.batch_size must be an integer >= 1, got {batch_size!r}")
    if augment not in AUGMENTATIONS:
        raise EdgeCNNError(f"data.augment {augment!r} is not valid for QAT; use one of "
                           f"{', '.join(AUGMENTATIONS)}")
    if calibration_method != "minmax":
        # The simulation measures minmax ranges; training against them and deploying
        # entropy/percentile ranges would train for a quantization that is not shipped.
        raise EdgeCNNError(f"quantize.calibration.method {calibration_method!r} cannot be used "
                           "with quantize.method qat; QAT simulates minmax calibration")
    if not isinstance(recalibrate_every, int) or recalibrate_every < 1:
        raise EdgeCNNError(f"QAT recalibrate_every must be an integer >= 1, "
                           f"got {recalibrate_every!r}")
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise EdgeCNNError(f"QAT calibration must be a non-empty NCHW float32 array, got shape "
                           f"{calibration.shape}")
    return calibration


def qat_finetune(
    model: nn.Module,
    train_set: ImageSet,
    *,
    calibration: np.ndarray,
    mean,
    std,
    epochs: int = 2,
    lr: float = 0.002,
    batch_size: int = 128,
    per_channel: bool = True,
    reduce_range: bool | None = None,
    tuned: bool = True,
    augment: str = "flip",
    calibration_method: str = "minmax",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    recalibrate_every: int = 100,
    seed: int = 0,
    device: str = "cpu",
    channels_last: bool = True,
    console: Console | None = None,
) -> tuple[nn.Module, QATResult]:
    """Fine-tune ``model`` under ONNX Runtime's fake quantization; see the module docstring.

    ``calibration`` is the normalised float32 NCHW array the build passes to
    ``quantize_static_onnx``, and ``per_channel``, ``reduce_range`` (None = that function's
    choice for this CPU) and ``tuned`` are the options it will be called with: QAT then trains
    against the very quantization the build applies afterwards. Activation ranges are
    re-calibrated on it every ``recalibrate_every`` steps; ``calibration_method`` must be the
    build's ``minmax``. ``augment`` is a :class:`~edgecnn.data.loaders.BatchLoader`
    augmentation (the recipe's ``data.augment``; ``imagenet`` crops to the calibration images'
    size, so ``train_set`` should then be loaded at the trainer's larger resize).

    The default learning rate, 0.002 cosine-annealed to 0, is 1% of the demo training's peak
    (0.2), the starting point NVIDIA's pytorch-quantization guide gives for QAT ("1% of the
    initial training learning rate, cosine annealing, ~10% of the original schedule"); scale it
    with the training's own rate.

    Returns the fine-tuned FP32 model (a new module of the same class and state_dict keys, eval
    mode, on the CPU, BatchNorm folded into the convolutions; the caller's model is left as it
    was) and a :class:`QATResult`. Raises EdgeCNNError for a bad option, a train split smaller
    than one batch, an empty calibration set, or a model torch.fx cannot trace.
    """
    import torch
    from rich.console import Console

    from edgecnn.data.loaders import BatchLoader
    from edgecnn.models.onednn_workarounds import explicit_padding_on_tiny_depthwise

    console = console or Console()
    calibration = check_options(epochs=epochs, lr=lr, batch_size=batch_size, augment=augment,
                                recalibrate_every=recalibrate_every, calibration=calibration,
                                calibration_method=calibration_method)
    if device == "cuda" and not torch.cuda.is_available():
        raise EdgeCNNError("QAT device is 'cuda' but no CUDA device is available; use 'cpu'")
    target = torch.device(device)
    loader = BatchLoader(train_set, batch_size, mean, std, shuffle=True, augment=augment,
                         seed=seed, drop_last=True, channels_last=channels_last,
                         crop_size=calibration.shape[-1])
    if len(loader) == 0:
        raise EdgeCNNError(f"quantize.qat.batch_size {batch_size} is larger than the train split "
                           f"({len(train_set)} images)")

    torch.manual_seed(seed)
    qat = QATModel(model, per_channel=per_channel, reduce_range=reduce_range, tuned=tuned)
    qat.graph_module.to(target)
    if channels_last:
        qat.graph_module.to(memory_format=torch.channels_last)
    calibrations = 0

    def recalibrate(step: int) -> None:
        nonlocal calibrations
        if step % recalibrate_every == 0:
            qat.calibrate(calibration)
            calibrations += 1

    total = epochs * len(loader)
    weights = "per-channel" if per_channel else "per-tensor"
    bits = "7" if qat.reduce_range else "8"
    console.print(f"QAT: {len(qat.activation_quantizers)} activation and "
                  f"{len(qat.weight_quantizers)} weight quantizers ({weights} {bits}-bit), "
                  f"{qat.folded_batchnorms} BatchNorms folded; {epochs} epochs of {len(loader)} "
                  f"steps on {target}, {torch.get_num_threads()} threads")
    resolution = tuple(calibration.shape[1:])
    with explicit_padding_on_tiny_depthwise(qat.model, (1, *resolution)):
        stats = train_epochs(
            qat, [p for p in qat.graph_module.parameters() if p.requires_grad], loader,
            epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
            label_smoothing=label_smoothing, device=target, set_train=qat.train,
            before_step=recalibrate, console=console)
    qat.graph_module.cpu()
    trained = qat.float_model().to(memory_format=torch.contiguous_format)
    result = QATResult(
        epochs=epochs, steps=total, lr=lr, batch_size=batch_size, per_channel=per_channel,
        reduce_range=qat.reduce_range, tuned=tuned,
        activation_quantizers=len(qat.activation_quantizers),
        weight_quantizers=len(qat.weight_quantizers), folded_batchnorms=qat.folded_batchnorms,
        recalibrations=calibrations, calibration_samples=len(calibration),
        train_images=len(train_set), device=str(target), threads=torch.get_num_threads(),
        scheme=(f"ONNX Runtime QDQ U8S8 simulation: uint8 asymmetric activations (minmax "
                f"ranges), int8 symmetric {weights} {bits}-bit weights, BatchNorm folded"),
        epoch_seconds=[e.seconds for e in stats], train_loss=[e.loss for e in stats],
        train_top1=[e.top1 for e in stats])
    return trained, result
