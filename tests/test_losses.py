"""replab.losses: the CPU binary cross-entropy against hand-computed values and PyTorch's own function."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from replab.losses import bce_with_logits


def test_bce_with_logits_hand_computed_values():
    logits = torch.tensor([0.0, 0.0, 2.0, -3.0, 100.0, -100.0])
    target = torch.tensor([0.5, 1.0, 1.0, 0.0, 0.0, 1.0])
    expected = [math.log(2), math.log(2), math.log(1 + math.exp(-2)), math.log(1 + math.exp(-3)), 100.0, 100.0]
    assert bce_with_logits(logits, target).tolist() == pytest.approx(expected, rel=1e-6)


def test_bce_with_logits_matches_pytorch_in_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(64, 784, generator=g) * 6).requires_grad_()
    target = torch.rand(64, 784, generator=g)  # soft targets too, not only 0/1 pixels
    ours = bce_with_logits(logits, target)
    (grad_ours,) = torch.autograd.grad(ours.sum(1).mean(), logits)
    theirs = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    (grad_theirs,) = torch.autograd.grad(theirs.sum(1).mean(), logits)
    # both sum terms of size |l| that cancel (soft targets): float32 rounding of those, plus 6e-8 from
    # log(1 + u) for log1p(u)
    bound = 2.5 * torch.finfo(torch.float32).eps * torch.maximum(logits.abs(), theirs.abs()) + 6e-8
    assert ((ours - theirs).abs() <= bound).all()
    assert torch.allclose(grad_ours, grad_theirs, rtol=0, atol=1e-9)


def test_bce_with_logits_gradient_is_sigmoid_minus_target_in_float64():
    logits = torch.tensor([[-4.0, -0.5, 0.0, 0.7, 9.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.0, 1.0, 0.3, 0.0, 1.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: bce_with_logits(z, target), (logits,))
    (grad,) = torch.autograd.grad(bce_with_logits(logits, target).sum(), logits)
    assert torch.allclose(grad, torch.sigmoid(logits) - target)


def test_bce_with_logits_refuses_a_target_that_needs_a_gradient_or_another_shape():
    logits = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="target requires a gradient"):
        bce_with_logits(logits, torch.zeros(2, 3, requires_grad=True))
    with pytest.raises(ValueError, match=r"target shape \(3,\) != logits shape \(2, 3\)"):
        bce_with_logits(logits, torch.zeros(3))


def test_bce_with_logits_under_torch_func_grad_and_vmap():
    """Seeds trained together (torch.func ensembling) take per-model gradients through vmap."""
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(3, 5, generator=g), torch.rand(3, 5, generator=g)
    per_row = torch.func.vmap(torch.func.grad(lambda z, x: bce_with_logits(z, x).sum()))(logits, target)
    assert torch.allclose(per_row, torch.sigmoid(logits) - target)


def test_bce_with_logits_leaves_half_precision_to_pytorch():
    logits, target = torch.randn(4, 6).half(), torch.rand(4, 6).half()
    assert torch.equal(bce_with_logits(logits, target),
                       F.binary_cross_entropy_with_logits(logits, target, reduction="none"))
