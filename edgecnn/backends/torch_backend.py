"""The PyTorch runner: a module in eval mode on CPU (or CUDA where present)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecnn.backends.base import InputSpec, Runner

if TYPE_CHECKING:
    from torch import nn


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu", resolution: int | None = None,
                 channels_last: bool = False) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        card = getattr(model, "card", None)
        self.resolution = resolution or (card.resolution if card else None)
        self.in_chans = card.in_chans if card else 3
        self.metadata: dict[str, str] = {}  # a module in memory carries no file metadata

    def input_spec(self) -> InputSpec:
        return InputSpec("input", (None, self.in_chans, self.resolution, self.resolution))

    def run_tensor(self, batch):
        self._check_open("the model in memory")
        with self.torch.inference_mode():
            x = batch.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=self.torch.channels_last)
            return self.model(x).float()

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_tensor(self.torch.from_numpy(np.ascontiguousarray(batch))).cpu().numpy()

    def _release(self) -> None:
        self.model = None  # the caller's module itself lives on; this runner lets go of it
