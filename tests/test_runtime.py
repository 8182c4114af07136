"""Shared training helpers of replab.runtime against the PyTorch calls they stand in for."""

from __future__ import annotations

import math

import pytest
import torch

from replab import runtime as rt


def two_layers_with_grads(scale: float) -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    for p in params:
        p.grad = torch.randn_like(p) * scale
    return params


@pytest.mark.parametrize("scale", [0.01, 10.0, math.inf])
def test_clip_grad_norm_matches_pytorch_whether_or_not_it_clips(scale):
    ours, theirs = two_layers_with_grads(scale), two_layers_with_grads(scale)
    total = rt.clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert torch.equal(total, expected) or (total.isnan() and expected.isnan()) or total == expected
    for a, b in zip(ours, theirs):
        assert torch.allclose(a.grad, b.grad, equal_nan=True)
    if scale == 0.01:  # nothing clipped: the gradients are the ones computed, not rescaled copies
        assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, two_layers_with_grads(scale)))
    if scale == 10.0:
        norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours]))
        assert norm.item() == pytest.approx(1.0, rel=1e-5)
