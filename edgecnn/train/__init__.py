"""Training: the trainer, its schedules, checkpoints, distillation and evaluation."""
