"""Shared training helpers of replab.runtime against the PyTorch calls they stand in for."""

from __future__ import annotations

import math
import platform
import resource
import subprocess
import sys

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


FAULTS_PROBE = """
import resource, sys
import torch
from replab import runtime as rt
if sys.argv[1] == "keep":
    assert rt.keep_freed_memory()
def step():
    torch.empty(16 << 20).fill_(1.0)  # a 64 MB buffer allocated, written and freed, as a per-step one is
for _ in range(10):  # steady state: glibc's own threshold has adapted as far as it does
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")
def test_keep_freed_memory_lets_a_per_step_buffer_reuse_its_pages():
    """By default a 64 MB buffer is a fresh mmap every step (its 16k pages fault in each time, glibc adapts its
    threshold only up to 32 MB); with keep_freed_memory the freed block is reused."""
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS_PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    pages = (64 << 20) // resource.getpagesize()
    assert faults("default") >= 5 * pages  # the reason for the setting
    assert faults("keep") < pages // 4


def test_setup_keeps_deterministic_algorithms_without_the_nan_fill_of_new_tensors():
    from replab.params import Runtime

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        rt.setup(Runtime(device="cpu", deterministic=True, progress=False, threads=1), 0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        # the same seed draws the same numbers: what deterministic mode is for
        a = torch.rand(3)
        rt.setup(Runtime(device="cpu", deterministic=True, progress=False, threads=1), 0)
        assert torch.equal(a, torch.rand(3))
    finally:
        torch.set_num_threads(threads)
        torch._C._set_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill
