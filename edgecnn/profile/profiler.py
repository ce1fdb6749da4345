"""Per-layer parameters, mult-adds and activation sizes of a model, from one traced forward pass.

Forward hooks on every leaf module record its output shape; mult-adds of convolutions and linear
layers are computed from those shapes by :mod:`edgecnn.profile.counting`. On the meta device the
pass allocates and computes nothing, so even EfficientNet-B7 at 600 px profiles in a moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgecnn.errors import EdgeCNNError
from edgecnn.profile.counting import conv2d_macs, linear_macs

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class LayerStats:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    buffers: int
    macs: int
    activation_bytes: int


@dataclass
class ModelProfile:
    """Totals and per-layer rows; all figures are for one input image (batch 1)."""

    input_shape: tuple[int, ...]
    layers: list[LayerStats] = field(default_factory=list)
    params: int = 0
    trainable_params: int = 0
    buffer_elements: int = 0
    weight_bytes: int = 0

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def non_trainable_params(self) -> int:
        # As Keras counts them: frozen parameters plus BatchNorm's running statistics.
        return self.params - self.trainable_params + self.buffer_elements

    @property
    def total_params(self) -> int:
        return self.params + self.buffer_elements

    @property
    def activation_bytes(self) -> int:
        """Sum of every layer's output: what a runtime without fusion writes per image."""
        return sum(layer.activation_bytes for layer in self.layers)

    @property
    def peak_activation_bytes(self) -> int:
        return max((layer.activation_bytes for layer in self.layers), default=0)


def _module_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    from torch import nn

    if isinstance(module, nn.Conv2d):
        return conv2d_macs(module.in_channels, module.out_channels, module.kernel_size,
                           tuple(output.shape[-2:]), module.groups)
    if isinstance(module, nn.Linear):
        rows = output.numel() // output.shape[-1] // max(output.shape[0], 1)
        return linear_macs(module.in_features, module.out_features, rows)
    return 0


def describe(module: nn.Module) -> str:
    """The type, and for a conv the paper's filter notation: 3x3x32x64 /s2, or 3x3x32 dw /s1."""
    from torch import nn

    kind = type(module).__name__
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        stride = "x".join(map(str, module.stride)) if module.stride[0] != module.stride[1] else (
            str(module.stride[0]))
        if module.groups == module.in_channels and module.groups > 1:
            shape = f"{kh}x{kw}x{module.in_channels} dw"
        elif module.groups > 1:
            shape = f"{kh}x{kw}x{module.in_channels}x{module.out_channels} g{module.groups}"
        else:
            shape = f"{kh}x{kw}x{module.in_channels}x{module.out_channels}"
        return f"{kind} {shape} /s{stride}"
    if isinstance(module, nn.Linear):
        return f"{kind} {module.in_features}x{module.out_features}"
    return kind


def _counted_buffers(module: nn.Module) -> int:
    # Running mean/var are real per-channel numbers a deployment carries; the integer batch
    # counter is not a weight.
    return sum(b.numel() for b in module.buffers(recurse=False) if b.is_floating_point())


def profile_model(
    model: nn.Module, resolution: int | tuple[int, int], in_chans: int | None = None
) -> ModelProfile:
    """Profile ``model`` on one ``in_chans x H x W`` image, on the device its parameters are on."""
    import torch

    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    if height < 1 or width < 1:
        raise EdgeCNNError(f"resolution must be positive, got {resolution}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    if in_chans is None:
        card = getattr(model, "card", None)
        in_chans = card.in_chans if card is not None else 3
    shape = (1, in_chans, height, width)
    profile = ModelProfile(input_shape=shape)
    rows: dict[str, LayerStats] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            tensor = output if isinstance(output, torch.Tensor) else None
            if tensor is None and isinstance(output, (tuple, list)) and output:
                tensor = output[0] if isinstance(output[0], torch.Tensor) else None
            if tensor is None:
                return
            row = rows[name]
            row.output_shape = tuple(tensor.shape)
            row.macs += _module_macs(module, inputs, tensor)
            row.activation_bytes += tensor.numel() * tensor.element_size()

        return hook

    handles = []
    for name, module in model.named_modules():
        own_params = list(module.parameters(recurse=False))
        if next(module.children(), None) is not None and not own_params:
            continue  # a container: its leaves are counted
        rows[name] = LayerStats(
            name=name or type(module).__name__, type=describe(module), output_shape=(),
            params=sum(p.numel() for p in own_params),
            trainable=sum(p.numel() for p in own_params if p.requires_grad),
            buffers=_counted_buffers(module), macs=0, activation_bytes=0,
        )
        handles.append(module.register_forward_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(shape, device=device, dtype=dtype))
    except RuntimeError as exc:
        raise EdgeCNNError(
            f"a {in_chans}x{height}x{width} input does not fit this model: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    # Layers never called (e.g. an unused head) still hold parameters; keep them, with no shape.
    profile.layers = list(rows.values())
    profile.params = sum(p.numel() for p in model.parameters())
    profile.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    profile.buffer_elements = sum(_counted_buffers(m) for m in model.modules())
    profile.weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers() if b.is_floating_point()
    )
    return profile
