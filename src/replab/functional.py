"""Kernels that replab routes or writes itself because PyTorch's are slow on the CPU (measured with 2 threads on
an AVX-512 machine, an AMD EPYC, torch 2.14).

`linear` / `Linear`: PyTorch's CPU matrix products go to its BLAS, Intel MKL, which runs generic AVX2 code on
CPUs of other vendors: 190–220 GFLOP/s here for the papers' layer shapes and for a 1024² `torch.mm`. oneDNN
(MKL-DNN, shipped in the same wheel and already behind PyTorch's CPU convolutions and LSTMs) dispatches on the
CPU's instruction set, not its vendor: 430–480 GFLOP/s for the same products. So on such CPUs with AVX-512
(`ONEDNN_LINEAR`: MKL is PyTorch's BLAS, the x86 CPU is not Intel's and has AVX-512; on an AVX2-only AMD EPYC both
run AVX2 code and oneDNN gains nothing: `onednn_outruns_mkl`) every fully connected layer of the papers
computes y = x·Wᵀ + b and ∂x = ∂y·W with oneDNN's inner product (PyTorch's `mkldnn._linear_pointwise`, the kernel
its own compiler emits for CPU linear layers) when oneDNN is usable (`torch.backends.mkldnn`), for float32 on the
CPU, and the product is large enough to pay for oneDNN's ≈ 30 µs more per call (`ONEDNN_MIN_MACS`); a
paper-size aae_ssl step went from 66 to 40 ms. The weight gradient ∂W = ∂yᵀ·x is MKL's `torch.mm`, bit for bit
`F.linear`'s own, which reads the transposed ∂y in place: oneDNN's inner product needs it copied and was slower for
every layer of the papers with fewer inputs than outputs (400 rows, 50 → 1000: 0.96 against 0.28 ms; 200 rows,
60 → 1000: 0.49 against 0.17; 200 × 500 → 1000: 1.32 against 1.08) and within 10 % of it for the rest; a
paper-size aae_ssl step 1 % faster (eight alternating rounds, medians). On an Intel Xeon (AVX-512, 2 threads) MKL
is the faster of the two for every layer shape of the papers (forward + backward 10–45 % less time than oneDNN's:
256 × 500 → 500 2.4 against 3.1 ms), so there, and wherever MKL is not PyTorch's BLAS or the vendor is unknown,
the layers keep `F.linear`.

`bce_with_logits`: PyTorch's `F.binary_cross_entropy_with_logits` evaluates log σ(l) through log1p, which on the
AMD EPYC ran MKL's generic code: 1.0 ms for one 256 × 784 batch of pixel logits against 0.09 ms for `log` (2
threads), 11 % of a paper-size split_vae step. The same loss is max(l, 0) − x·l − log σ(|l|) with the exact
gradient σ(l) − x, in vectorised kernels: 0.3 ms forward and backward against 1.2 ms. Its sum or mean over a batch
(`reduction`), on every CPU, is one autograd node that never writes the per-element loss.

`tanh`: `torch.tanh` took 138 µs there for a 256 × 500 activation against 17 µs for `torch.sigmoid`; tanh(a) =
2σ(2a) − 1 takes 35 µs, with the gradient (1 − tanh²) from PyTorch's own `tanh_backward` kernel.

Both sigmoid forms are used only where `SIGMOID_FORMS` (the same machine fact as `ONEDNN_LINEAR`: PyTorch's tanh,
log1p and log call MKL's vector maths). On an Intel Xeon (AVX-512, 2 threads) MKL's kernels are the faster ones:
forward + backward of the 256 × 784 loss 0.56 against 0.84 ms, of a 256 × 500 tanh 0.11 against 0.33 ms, and the
paper-size split_vae step over its peer 1.29–1.46× against 1.11–1.18× (three alternating runs each). There, on
other devices (one fused launch matters more than the arithmetic) and for half precision, both are PyTorch's.

`rescale_underflowing_rows` is numerics, not speed: the guard of L2-normalised perturbation directions against
gradients too small to square in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.forward_ad import unpack_dual

# Below this many multiply-adds per product (rows × in × out) MKL's lower call overhead wins: fwd + bwd of
# 200×60×256 (3.1 M) took 161 µs by MKL, 189 µs by oneDNN; 200×256×256 (13 M) 452 µs against 329 µs.
ONEDNN_MIN_MACS = 1 << 23


def mkl_runs_generic_code(vendor: str | None = None) -> bool:
    """Whether PyTorch's CPU matrix products run on MKL's code for CPUs of other vendors: MKL is this PyTorch's
    BLAS (`torch.backends.mkl`, the x86 wheels) and the CPU's vendor (`runtime.cpu_vendor()` unless given) is
    known and not "GenuineIntel"."""
    from replab.runtime import cpu_vendor

    vendor = cpu_vendor() if vendor is None else vendor
    return torch.backends.mkl.is_available() and vendor not in ("", "GenuineIntel")


def onednn_outruns_mkl(vendor: str | None = None, capability: str | None = None) -> bool:
    """Whether oneDNN's kernels outrun MKL's on this CPU: MKL runs its generic code (`mkl_runs_generic_code`), which
    is AVX2 code, and the CPU has AVX-512 (`torch.backends.cpu.get_cpu_capability()` unless `capability` is given),
    which oneDNN dispatches on. On an AMD EPYC with AVX2 only both libraries run AVX2 code and nothing is gained
    (2 threads: forward + backward of 256 × 784 → 500 and 256 × 500 → 784 within 3 %, of 200 × 1000 → 1000 and
    200 × 1000 → 784 14 % and 33 % slower by oneDNN; the sigmoid-form loss 1.5× and tanh 1.2× slower than PyTorch's;
    paper-size aae_ssl and split_vae steps 6–8 % faster without either)."""
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    return mkl_runs_generic_code(vendor) and capability.startswith("AVX512")


# Decided once per process, from the machine alone (never from timings), so that a run's kernels and with them its
# float rounding are the same every time on one machine
ONEDNN_LINEAR = onednn_outruns_mkl()
# PyTorch's CPU tanh, log, log1p and exp call MKL's vector maths (VML, ATen's `*_vml_cpu` kernels) wherever MKL is
# built in, and it runs the same generic code there; sigmoid is ATen's own vectorised kernel. So the sigmoid forms
# of `tanh` and `bce_with_logits` pay exactly where MKL's products do not (on an Intel Xeon they cost 1.5–3×).
SIGMOID_FORMS = ONEDNN_LINEAR


def uses_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether `linear(x, weight, bias)` outside `torch.compile` takes oneDNN's product: where `ONEDNN_LINEAR`, for
    a float32 CPU layer of at least ONEDNN_MIN_MACS multiply-adds with a plain [out] bias (or none), when PyTorch's
    oneDNN is built in and enabled (a user's `torch.backends.mkldnn.enabled = False` turns it off here too),
    outside CPU autocast, and not for `torch.func` transforms or forward-mode AD (the custom Function has no rule
    for them). `linear` asks `torch.compiler.is_compiling()` first: inside `torch.compile` the compiler chooses its
    own kernels, and the checks here would break its graph."""
    if not (ONEDNN_LINEAR and x.dim() >= 1 and weight.dim() == 2 and x.shape[-1] == weight.shape[-1]
            and x.numel() * weight.shape[0] >= max(ONEDNN_MIN_MACS, 1)  # (no rows: PyTorch's)
            and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and weight.device.type == "cpu"
            and (bias is None or (bias.dtype == torch.float32 and tuple(bias.shape) == (weight.shape[0],)))
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled("cpu") and not torch._C._are_functorch_transforms_active()):
        return False
    return all(t is None or unpack_dual(t).tangent is None for t in (x, weight, bias))


def _onednn_mm_t(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a [M, K] · b [N, K]ᵀ (+ bias [N], contiguous) → [M, N] by oneDNN's inner-product primitive; b may be a
    transposed view (read in place); a transposed `a` is copied by the op."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


def _fast_apply(function: type[torch.autograd.Function]):
    """`function.apply` (a Function with `setup_context`) that skips PyTorch's binding of the arguments to forward's
    signature, which `apply` does with `inspect` on every call: 25–35 µs against 3.4 µs (2 threads, AMD EPYC),
    0.5–0.8 ms of a paper-size aae_ssl step's 23 oneDNN layers. Outside torch.func transforms and torch.compile's
    tracing it applies a ctx-first copy (forward, saved tensors, backward and name alike); inside them, where only
    the form with `setup_context` has rules, `function` itself."""

    def forward(ctx, *args):
        output = function.forward(*args)
        function.setup_context(ctx, args, output)
        return output

    ctx_first = type(function.__name__, (torch.autograd.Function,),
                     {"forward": staticmethod(forward), "backward": staticmethod(function.backward),
                      "__doc__": function.__doc__, "__module__": function.__module__})

    def apply(*args):
        in_transform = torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
        return (function if in_transform else ctx_first).apply(*args)

    return apply


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        bias = bias.contiguous() if bias is not None else None  # oneDNN reads the bias as a packed array
        return _onednn_mm_t(x.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, bias = inputs
        # only what a requested gradient reads: ∂x needs W, ∂W needs x (as PyTorch's own linear keeps)
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        ctx.has_bias, ctx.x_shape = bias is not None, x.shape

    @staticmethod
    @torch.autograd.function.once_differentiable  # a second derivative raises instead of coming out wrong
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad2 = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # ∂x = ∂y·W = ∂y·(Wᵀ)ᵀ
            grad_x = _onednn_mm_t(grad2, weight.t()).view(ctx.x_shape)
        if ctx.needs_input_grad[1]:  # ∂W = ∂yᵀ·x, by MKL (the module's docstring says why)
            grad_weight = torch.mm(grad2.t(), x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad2.sum(0)
        return grad_x, grad_weight, grad_bias


_onednn_linear = _fast_apply(_OneDNNLinear)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear`: x [..., in] · weight [out, in]ᵀ + bias [out] → [..., out]. Where `uses_onednn` (CPUs where
    MKL runs its generic code; float32 CPU layers of at least ONEDNN_MIN_MACS multiply-adds) oneDNN computes y and
    ∂x, MKL ∂W: to float rounding the same values as PyTorch's, deterministic for a fixed thread count, once
    differentiable (a double backward raises). Its backward computes ∂W whenever W
    requires a gradient, also under `torch.autograd.grad(..., inputs)` for other inputs (PyTorch's own linear skips
    it there): freeze the parameters for such passes. Otherwise, and for every shape or dtype error, `F.linear`."""
    if torch.compiler.is_compiling() or not uses_onednn(x, weight, bias):
        return F.linear(x, weight, bias)
    return _onednn_linear(x, weight, bias)


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, initialisation and state_dict) whose forward is `replab.functional.linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def _cpu_float(x: torch.Tensor) -> bool:
    """A float32/float64 tensor on the CPU: where replab's own forms of PyTorch's functions can pay (on other devices
    one fused launch matters more than the arithmetic; half precision stays PyTorch's)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _ours_here(x: torch.Tensor) -> bool:
    """Our sigmoid forms for float32/float64 on a CPU where `SIGMOID_FORMS`; PyTorch's elsewhere (its VML kernels on
    Intel CPUs, one fused launch on GPUs, half precision)."""
    return SIGMOID_FORMS and _cpu_float(x)


class _BCEWithLogits(torch.autograd.Function):
    # forward + setup_context (not ctx in forward) and a generated vmap rule: torch.func (grad, vmap) can use it
    generate_vmap_rule = True

    @staticmethod
    def forward(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # log(1 + e^−|l|) = −log σ(|l|), σ(|l|) ∈ [0.5, 1): within 1.4e-7 of the exact value and 1.2e-7 (one
        # float32 spacing at 1) of PyTorch's log1p(e^−|l|); sigmoid's kernel is vectorised and cheaper than exp
        return (logits.clamp_min(0) - logits * target).sub_(torch.log(torch.sigmoid(logits.abs())))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, target = ctx.saved_tensors
        return (torch.sigmoid(logits) - target) * grad, None


class _BCEWithLogitsSum(_BCEWithLogits):
    """Σ over every element of the loss as one autograd node: Σ softplus(l) − Σ x·l, never the per-element loss
    tensor, and one backward pass, _BCEWithLogits's (σ(l) − x)·∂ with a 0-d ∂, for the chain of PyTorch's loss, sum
    and mean backwards."""

    @staticmethod
    def forward(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # softplus(l) = max(l, 0) − log σ(|l|) (the sigmoid form, where SIGMOID_FORMS) or PyTorch's softplus, whose
        # threshold (l > 20: l itself) is within 2.1e-9 of it
        softplus = (logits.clamp_min(0).sub_(torch.log(torch.sigmoid(logits.abs()))) if _ours_here(logits)
                    else F.softplus(logits))
        return softplus.sum() - (logits * target).sum()


class _Tanh(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(a: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(2 * a).mul_(2).sub_(1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, out)


_bce_with_logits, _bce_with_logits_sum, _tanh = (_fast_apply(_BCEWithLogits), _fast_apply(_BCEWithLogitsSum),
                                                 _fast_apply(_Tanh))


def tanh(a: torch.Tensor) -> torch.Tensor:
    """Elementwise hyperbolic tangent, any shape. For float32/float64 on the CPU where `SIGMOID_FORMS` computed as
    2σ(2a) − 1: within 2 ulp of 1 (2.4e-7 in float32) of `torch.tanh` in absolute terms, not relative: near a = 0
    the result is a difference of two numbers near 1 (tanh(1e-8) gives 0, and tanh(−a) = −tanh(a) only to that
    2.4e-7); the gradient is 1 − tanh²(a) of that value. Otherwise `torch.tanh`."""
    return _tanh(a) if _ours_here(a) else torch.tanh(a)


REDUCTIONS = ("none", "sum", "mean")


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Binary cross-entropy −[x·log σ(l) + (1 − x)·log(1 − σ(l))] of logits l against targets x ∈ [0, 1], both of
    one shape, in nats: per element (`reduction="none"`), or their sum or mean (a 0-d tensor), as
    `F.binary_cross_entropy_with_logits(l, x, reduction=...)`; with the same gradient σ(l) − x.

    "none": for float32/float64 on the CPU where `SIGMOID_FORMS` computed as max(l, 0) − x·l − log σ(|l|), the
    same as PyTorch's to rounding (of terms of size |l|, which cancel for soft targets; plus at most 1.4e-7) for
    finite logits; otherwise (and for logits and targets of two dtypes, whose result PyTorch gives the target's
    dtype) that function. "sum" and "mean", for float32/float64 on the CPU (elsewhere PyTorch's one fused launch):
    Σ softplus(l) − Σ x·l as one autograd node, which never writes the per-element loss and replaces the backwards
    of the loss and its reduction by one pass (a paper-size split_vae reconstruction term, 256 × 784: 0.46–0.51
    against 0.63–0.66 ms forward and backward on an Intel Xeon, 2 threads); to float rounding the sum of "none".
    (An infinite logit gives NaN on some paths for some targets; the training loops stop on a non-finite loss.)

    Raises ValueError, on every path, for a target that requires a gradient (targets are data), is not floating
    point, or has another shape, and for another `reduction` (allowed: REDUCTIONS)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"bce_with_logits: reduction {reduction!r} (allowed: {', '.join(REDUCTIONS)})")
    if target.requires_grad:
        raise ValueError("bce_with_logits: the target requires a gradient (targets are data; detach it)")
    if not target.is_floating_point():
        raise ValueError(f"bce_with_logits: target dtype {target.dtype} (allowed: a floating-point dtype)")
    if target.shape != logits.shape:
        raise ValueError(f"bce_with_logits: target shape {tuple(target.shape)} != logits shape {tuple(logits.shape)}")
    if target.dtype == logits.dtype and _cpu_float(logits):
        if reduction != "none":
            total = _bce_with_logits_sum(logits, target)
            return total / logits.numel() if reduction == "mean" else total
        if SIGMOID_FORMS:
            return _bce_with_logits(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)


def rescale_underflowing_rows(v: torch.Tensor, tiny: float = 1e-12, norm: torch.Tensor | None = None,
                              sync_free: bool | None = None) -> torch.Tensor:
    """v [N, ...] with each row whose L2 norm (`norm` [N], if the caller has it) is below `tiny` scaled by 1 / its
    max |v| (Miyato et al.'s `_scale_l2` step): a row of gradients so small that their squares underflow (‖v‖
    reads 0 in float32 below about 1e-19 per element) keeps its direction through a later
    `v / ‖v‖.clamp_min(tiny)`; other rows keep their values bit for bit (× 1), and an all-zero row stays zero.
    Such rows are rare: on the CPU one host-side check returns v itself when there is none, skipping every further
    pass. Elsewhere (`sync_free`, default: v not on the CPU) that check would synchronise the device each call, so
    the rescale always runs, giving the same values."""
    if sync_free is None:
        sync_free = v.device.type != "cpu"
    flat = v.flatten(1)
    small = (flat.norm(dim=1) if norm is None else norm) < tiny
    if not sync_free and not bool(small.any()):
        return v
    scale = torch.where(small, 1 / flat.abs().amax(dim=1).clamp_min(torch.finfo(v.dtype).tiny), 1.0)
    return v * scale.view(-1, *([1] * (v.dim() - 1)))
