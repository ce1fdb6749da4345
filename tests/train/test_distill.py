"""Knowledge distillation loss used to fine-tune pruned models."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.train.distill import Distillation


def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 5))
    student = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    return teacher, student


def test_weight_zero_is_plain_cross_entropy_and_equal_models_add_nothing():
    teacher, student = _pair()
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 5, (8,))
    logits = student(x)
    labels_only = Distillation(teacher, weight=0.0, temperature=4.0).loss(logits, x, y)
    assert torch.allclose(labels_only, F.cross_entropy(logits, y))
    itself = Distillation(copy.deepcopy(teacher), weight=1.0, temperature=2.0)
    assert itself.loss(teacher(x), x, y).item() == pytest.approx(0.0, abs=1e-6)


def test_student_learns_the_teachers_outputs_and_the_teacher_never_changes():
    teacher, student = _pair()
    before = copy.deepcopy(teacher.state_dict())
    distill = Distillation(teacher, weight=1.0, temperature=2.0)
    x = torch.randn(64, 3, 2, 2)
    y = torch.randint(0, 5, (64,))  # random labels: with weight 1 they play no part

    def disagreement() -> float:
        with torch.no_grad():
            return F.kl_div(F.log_softmax(student(x), 1), F.log_softmax(teacher(x), 1),
                            reduction="batchmean", log_target=True).item()

    start = disagreement()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    for _ in range(100):
        optimizer.zero_grad()
        distill.loss(student(x), x, y).backward()
        optimizer.step()
    assert disagreement() < 0.5 * start
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
