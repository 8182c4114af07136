"""replab.ensemble: seeds trained together as one vmap-batched model, each seed as if alone."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from replab.ensemble import Stacked, clip_grad_norm_per_seed, global_stream


def seeded_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_stacked_forward_and_batchnorm_statistics_are_each_seeds_own():
    nets = [seeded_net(s) for s in range(3)]
    alone = [seeded_net(s) for s in range(3)]  # the same weights, run one by one
    stacked = Stacked(nets)
    x = torch.randn(3, 8, 5, generator=torch.Generator().manual_seed(0))
    out = stacked(x)  # training mode: batch statistics, running statistics updated per seed
    assert out.shape == (3, 8, 2)
    for s, net in enumerate(alone):
        torch.testing.assert_close(out[s], net(x[s]), rtol=0, atol=1e-6)
        state = stacked.state_dict(s)
        assert state.keys() == net.state_dict().keys()
        for key, value in net.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=1e-7)
    # a shared input (in_dims None) in eval mode: each seed's running statistics
    stacked.eval()
    shared = torch.randn(6, 5)
    out = stacked(shared, in_dims=(None,))
    for s, net in enumerate(alone):
        torch.testing.assert_close(out[s], net.eval()(shared), rtol=0, atol=1e-6)
    # the modules passed in are not trained by the stack
    assert torch.equal(nets[0][1].running_mean, torch.zeros(4))


def test_clip_grad_norm_per_seed_clips_each_seed_by_its_own_norm():
    p = torch.zeros(3, 2, requires_grad=True)
    q = torch.zeros(3, 1, 2, requires_grad=True)
    p.grad = torch.tensor([[3.0, 0.0], [0.3, 0.0], [float("nan"), 0.0]])
    q.grad = torch.tensor([[[0.0, 4.0]], [[0.0, 0.4]], [[1.0, 1.0]]])
    norms = clip_grad_norm_per_seed([p, q], max_norm=1.0)
    assert norms[:2].tolist() == pytest.approx([5.0, 0.5]) and math.isnan(norms[2])
    scale = 1.0 / (5.0 + 1e-6)  # torch.nn.utils.clip_grad_norm_'s coefficient
    torch.testing.assert_close(p.grad[0], torch.tensor([3.0 * scale, 0.0]))
    torch.testing.assert_close(q.grad[0], torch.tensor([[0.0, 4.0 * scale]]))
    # under max_norm: untouched, to the bit
    assert torch.equal(p.grad[1], torch.tensor([0.3, 0.0])) and torch.equal(q.grad[1], torch.tensor([[0.0, 0.4]]))
    assert torch.isnan(q.grad[2]).all()  # a non-finite norm poisons that seed only, as the library call does
    # the library call on each seed alone gives the same gradients
    for s in range(2):
        alone = [torch.zeros(2, requires_grad=True), torch.zeros(1, 2, requires_grad=True)]
        alone[0].grad = torch.tensor([[3.0, 0.0], [0.3, 0.0]])[s]
        alone[1].grad = torch.tensor([[[0.0, 4.0]], [[0.0, 0.4]]])[s]
        torch.nn.utils.clip_grad_norm_(alone, 1.0)
        torch.testing.assert_close(alone[0].grad, p.grad[s])
        torch.testing.assert_close(alone[1].grad, q.grad[s])


def test_global_stream_draws_what_the_global_rng_draws_next():
    torch.manual_seed(7)
    torch.rand(3)  # any state, not only a fresh seed
    stream = global_stream("cpu")
    expected = torch.rand(4, 5)
    assert torch.equal(torch.rand(4, 5, generator=stream), expected)
    with pytest.raises(ValueError, match="cpu or cuda, not meta"):
        global_stream("meta")
