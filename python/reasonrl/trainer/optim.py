"""AdamW with linear warm-up then cosine decay (or constant), the schedule GRPO recipes use."""

from __future__ import annotations

import math

import torch

from reasonrl.config import OptimConfig


def build_optimizer(model: torch.nn.Module, config: OptimConfig, total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    # No weight decay on biases and norm weights (1-D parameters), as is standard for LMs.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=config.betas,
    )

    def lr_factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            # (step + 1), not step as in transformers' schedules: the first update already
            # moves the weights (a zero learning rate would waste a step's rollouts).
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
