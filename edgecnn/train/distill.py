"""Knowledge distillation (Hinton et al. 2015): the student also learns the teacher's softened
class probabilities, which carry more per image than the one-hot label.

Used when fine-tuning a pruned model with its dense original as the teacher: the pruned network
recovers more of the dense accuracy in the same epochs than from the labels alone. torch has no
distillation loss of its own and the few lines here are the whole method, so they are written
here rather than taken from a training framework.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Distillation:
    """``(1 - weight) * cross-entropy(labels) + weight * T^2 * KL(teacher_T || student_T)``.

    The T^2 factor keeps the soft term's gradients the size of the hard term's as the
    temperature T changes (Hinton et al., section 2). The teacher runs in eval mode without
    gradients; it is never updated.
    """

    def __init__(self, teacher: nn.Module, weight: float, temperature: float) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight, self.temperature = weight, temperature

    def to(self, device: torch.device, channels_last: bool) -> Distillation:
        self.teacher = self.teacher.to(device)
        if channels_last:
            self.teacher = self.teacher.to(memory_format=torch.channels_last)
        return self

    def loss(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        with torch.no_grad():
            soft_targets = F.log_softmax(self.teacher(x).float() / self.temperature, dim=1)
        hard = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        soft = F.kl_div(F.log_softmax(logits.float() / self.temperature, dim=1), soft_targets,
                        reduction="batchmean", log_target=True)
        return (1 - self.weight) * hard + self.weight * self.temperature ** 2 * soft
