"""Torch internals of the proxy probes: the network, the seeded SGD loop, chunked evaluation.

The public API is in :mod:`backend.scoring.probes`; this module only holds the pieces that touch
``torch.nn`` so that file stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from backend.scoring.distillation import distillation_loss

if TYPE_CHECKING:
    from backend.scoring.probes import ProbeConfig

EVAL_BATCH = 8192  # rows per forward pass when recording logits / predicting (no autograd graph)


class ProbeNet(nn.Module):
    """Linear or one-hidden-layer MLP classifier, initialised from an explicit generator."""

    def __init__(
        self, in_dim: int, n_classes: int, *, kind: str, hidden: int, gen: torch.Generator
    ):
        super().__init__()
        self.body: nn.Module | None = None
        width = in_dim
        if kind == "mlp":
            self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
            width = hidden
        self.head = nn.Linear(width, n_classes)
        with torch.no_grad():  # PyTorch's default bound 1/sqrt(fan_in), but from our generator
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=gen)
                    layer.bias.uniform_(-bound, bound, generator=gen)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.body is None else self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(x))


def resolve_device(device: str | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


@contextmanager
def cpu_threads(n_threads: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n_threads)`` on CPU, restoring it afterwards.

    The probes' matrices are tiny (batch 128 x a few hundred); measured on a shared 2-core box,
    out-of-fold probs on digits took 1.8 s with 1 intra-op thread and 21-43 s with 2 (threads
    spin against each other and against other processes). One thread also keeps CPU results
    bit-identical across machines with different core counts. Parallelise over probes instead.
    """
    if n_threads is None or device.type != "cpu" or torch.get_num_threads() == n_threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sub_seed(seed: int, *tags: int) -> int:
    """A 63-bit seed derived from ``seed`` and tags (fold index ...), stable across platforms."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *tags]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def fit_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None,
    *,
    n_classes: int,
    config: ProbeConfig,
    seed: int,
    on_epoch: Callable[[int, ProbeNet], None] | None = None,
    teacher_probs: torch.Tensor | None = None,
    kd_weight: float = 0.0,
    temperature: float = 1.0,
) -> ProbeNet:
    """Minibatch SGD on (x, y) already on the device; ``on_epoch(epoch, model)`` after each epoch.

    With ``teacher_probs`` (N, C), a teacher's probabilities softened at ``temperature``, the
    loss is the distillation loss of :func:`backend.scoring.distillation.distillation_loss`
    with weight ``kd_weight`` (Ben-Baruch et al. 2024); without, plain cross-entropy.

    Algorithm
    ---------
    1. A CPU ``torch.Generator`` seeded with ``seed`` draws the initial weights, then one
       permutation of the rows per epoch (so the order is device-independent).
    2. Each step: cross-entropy on a minibatch (times ``weight`` when given, whose mean over all
       rows is 1), SGD + momentum + weight decay, learning rate on a per-step cosine schedule.
    """
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    model = ProbeNet(x.shape[1], n_classes, kind=config.kind, hidden=config.hidden, gen=gen)
    model = model.to(x.device)
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    step = 0
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(x.device)
        for start in range(0, n, config.batch_size):
            if config.lr_schedule == "cosine":
                lr = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total_steps))
                for group in opt.param_groups:
                    group["lr"] = lr
            idx = order[start : start + config.batch_size]
            if teacher_probs is None:
                loss = F.cross_entropy(model(x[idx]), y[idx], reduction="none")
            else:
                loss = distillation_loss(model(x[idx]), y[idx], teacher_probs[idx],
                                         alpha=kd_weight, temperature=temperature)
            if weight is not None:
                loss = loss * weight[idx]
            opt.zero_grad(set_to_none=True)
            loss.mean().backward()
            opt.step()
            step += 1
        if on_epoch is not None:
            on_epoch(epoch, model)
    model.eval()
    return model


@torch.no_grad()
def forward_into(
    model: ProbeNet, x: torch.Tensor, logits_out: np.ndarray, features_out: np.ndarray | None
) -> None:
    """Eval-mode forward pass in chunks of EVAL_BATCH rows, written into preallocated arrays."""
    was_training = model.training
    model.eval()
    for start in range(0, x.shape[0], EVAL_BATCH):
        stop = min(start + EVAL_BATCH, x.shape[0])
        hidden = model.penultimate(x[start:stop])
        logits_out[start:stop] = model.head(hidden).float().cpu().numpy()
        if features_out is not None:
            features_out[start:stop] = hidden.float().cpu().numpy()
    model.train(was_training)
