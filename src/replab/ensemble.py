"""Seeds trained together: S copies of one network (one per seed) held as a single set of parameters with a
leading seed axis [S, ...] and run through `torch.func.vmap` (PyTorch's model-ensembling recipe:
`stack_module_state` + `functional_call`). One kernel does the work of S, which pays where a step is bound by kernel
launches and Python (small models on a GPU); on a CPU S batched products are slower than S plain ones (README,
Performance).

Each seed is trained as if alone: Adam is elementwise, so one optimiser over the stacked tensors is S optimisers
(with one shared step count), and `clip_grad_norm_per_seed` takes each seed's own norm. Randomness is not drawn
under vmap: a training loop draws each seed's noise from that seed's generator (`global_stream`) and passes it in,
so every seed sees the numbers it would see trained alone."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Stacked:
    """S modules of one architecture as one: parameters and buffers [S, ...] (leaf tensors; BatchNorm's running
    statistics are updated per seed in place), a forward over all seeds (`__call__`) and each seed's state_dict
    back (`state_dict(s)`). The modules passed in are left untouched."""

    def __init__(self, modules: Sequence[nn.Module]):
        if not modules:
            raise ValueError("Stacked needs at least one module")
        self.params, self.buffers = stack_module_state(list(modules))
        self.n_seeds = len(modules)
        self.base = copy.deepcopy(modules[0]).to("meta")  # the architecture only; weights come from the stacks

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def named_parameters(self):
        """(name, [S, ...] tensor) pairs, as nn.Module's."""
        return self.params.items()

    def train(self, mode: bool = True) -> Stacked:
        self.base.train(mode)
        return self

    def eval(self) -> Stacked:
        return self.train(False)

    def one_seed(self, params: dict, buffers: dict):
        """The forward of one seed's `params`/`buffers` (as seen inside a vmap over seeds)."""
        return lambda *args: functional_call(self.base, (params, buffers), args)

    def __call__(self, *args, in_dims: Sequence[int | None] | None = None):
        """Every seed's forward. Each argument (a tensor or a tuple of tensors) has a leading seed axis S, unless
        its `in_dims` entry is None (shared by all seeds, e.g. a validation set); outputs have one."""
        dims = (0,) * len(args) if in_dims is None else tuple(in_dims)
        return vmap(lambda p, b, *a: self.one_seed(p, b)(*a), in_dims=(0, 0, *dims))(self.params, self.buffers, *args)

    def detached(self) -> dict:
        """The parameters without their autograd history (a fixed critic: no weight gradients)."""
        return {k: v.detach() for k, v in self.params.items()}

    def state_dict(self, seed: int) -> dict[str, torch.Tensor]:
        """Seed `seed`'s (index in 0 … S − 1) parameters and buffers, as its module's `state_dict()` (copies)."""
        return {k: v[seed].detach().clone() for k, v in (*self.params.items(), *self.buffers.items())}


def clip_grad_norm_per_seed(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` for each seed of stacked parameters [S, ...]: the L2 norm over all of a
    seed's gradients; a seed whose norm exceeds `max_norm` has its gradients scaled by max_norm / (norm + 1e-6),
    the others are left as they are (a non-finite norm turns them to NaN, as the library call does). Returns the
    norms [S]."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # [P, S]
    total = torch.linalg.vector_norm(norms, dim=0)
    scale = torch.where(total <= max_norm, 1.0, (max_norm / (total + 1e-6)).clamp(max=1.0))
    for g in grads:  # × 1.0 leaves a value exactly as it is
        g.mul_(scale.view(-1, *(1,) * (g.dim() - 1)))
    return total


def global_stream(device) -> torch.Generator:
    """A generator on `device` in the state of the global RNG that `torch.rand(..., device=device)` draws from
    now: with it a loop over seeds draws what each seed's own process (after `torch.manual_seed(seed)`) would."""
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"seeds trained together run on cpu or cuda, not {device.type}")
    gen = torch.Generator(device=device)
    gen.set_state(torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device))
    return gen
