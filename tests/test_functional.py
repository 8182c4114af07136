"""replab.functional: the CPU binary cross-entropy, tanh and linear layer against hand-computed values and PyTorch's
own functions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from replab import functional
from replab.functional import Linear, bce_with_logits, linear, tanh

ONEDNN = torch.backends.mkldnn.is_available()
SIGMOID_FORMS_AT_IMPORT = functional.SIGMOID_FORMS  # this machine's (the fixture below sets it for most tests)


@pytest.fixture
def any_size(monkeypatch):
    """oneDNN's path for the small products of these tests too (replab uses it from ONEDNN_MIN_MACS up), on any
    x86 CPU (replab uses it where MKL runs its generic code)."""
    monkeypatch.setattr(functional, "ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(functional, "ONEDNN_LINEAR", True)


@pytest.fixture(autouse=True)
def sigmoid_forms(monkeypatch):
    """Our tanh and binary cross-entropy on any CPU (replab uses them where MKL runs its generic code)."""
    monkeypatch.setattr(functional, "SIGMOID_FORMS", True)


@pytest.mark.parametrize("vendor, mkl, capability, expected", [
    ("AuthenticAMD", True, "AVX512", True), ("HygonGenuine", True, "AVX512", True),
    ("AuthenticAMD", True, "AVX2", False), ("GenuineIntel", True, "AVX512", False), ("", True, "AVX512", False),
    ("AuthenticAMD", False, "AVX512", False), ("AuthenticAMD", True, "DEFAULT", False)])
def test_onednn_takes_the_linear_layers_where_it_outruns_mkls_generic_code(monkeypatch, vendor, mkl, capability,
                                                                            expected):
    """oneDNN's inner product ran twice MKL's speed on an AMD EPYC with AVX-512 (MKL's generic code is AVX2), about
    as fast or up to 33 % slower on an AVX2-only AMD EPYC, and 10–45 % slower on an Intel Xeon; without MKL (aarch64
    wheels) or a known vendor PyTorch's own choice stands. Decided by the machine, never a timing."""
    assert functional.ONEDNN_LINEAR is functional.onednn_outruns_mkl()  # this machine's, decided at import
    assert SIGMOID_FORMS_AT_IMPORT is functional.ONEDNN_LINEAR  # MKL's VML runs the same generic code
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: mkl)
    assert functional.mkl_runs_generic_code(vendor) is (mkl and vendor not in ("", "GenuineIntel"))
    assert functional.onednn_outruns_mkl(vendor, capability) is expected


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
    # both sum terms of size |l| that cancel (soft targets): float32 rounding of those, plus 1.4e-7 from
    # −log σ(|l|) for log1p(e^−|l|)
    bound = 2.5 * torch.finfo(torch.float32).eps * torch.maximum(logits.abs(), theirs.abs()) + 1.4e-7
    assert ((ours - theirs).abs() <= bound).all()
    assert torch.allclose(grad_ours, grad_theirs, rtol=0, atol=1e-9)


def test_bce_with_logits_gradient_is_sigmoid_minus_target_in_float64():
    logits = torch.tensor([[-4.0, -0.5, 0.0, 0.7, 9.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.0, 1.0, 0.3, 0.0, 1.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: bce_with_logits(z, target), (logits,))
    (grad,) = torch.autograd.grad(bce_with_logits(logits, target).sum(), logits)
    assert torch.allclose(grad, torch.sigmoid(logits) - target)


@pytest.mark.parametrize("sigmoid_forms", [False, True])
def test_bce_with_logits_sum_and_mean_hand_computed_values_and_gradient(monkeypatch, sigmoid_forms):
    """The reductions are one autograd node (Σ softplus(l) − Σ x·l) on either CPU's kernels, never PyTorch's loss."""
    monkeypatch.setattr(functional, "SIGMOID_FORMS", sigmoid_forms)
    logits = torch.tensor([[0.0, 0.0, 2.0], [-3.0, 100.0, -100.0]], requires_grad=True)
    target = torch.tensor([[0.5, 1.0, 1.0], [0.0, 0.0, 1.0]])
    expected = [math.log(2), math.log(2), math.log(1 + math.exp(-2)), math.log(1 + math.exp(-3)), 100.0, 100.0]
    total = bce_with_logits(logits, target, reduction="sum")
    mean = bce_with_logits(logits, target, reduction="mean")
    assert total.shape == mean.shape == () and type(total.grad_fn).__name__ == "_BCEWithLogitsSumBackward"
    assert total.item() == pytest.approx(sum(expected), rel=1e-6)
    assert mean.item() == pytest.approx(sum(expected) / 6, rel=1e-6)
    (grad,) = torch.autograd.grad(mean, logits)
    assert torch.allclose(grad, (torch.sigmoid(logits) - target) / 6, rtol=1e-6, atol=0)


@pytest.mark.parametrize("sigmoid_forms", [False, True])
def test_bce_with_logits_sum_matches_pytorch_on_a_batch_of_pixels(monkeypatch, sigmoid_forms):
    """split_vae's reconstruction term: Σ over pixels, mean over the batch (256 × 784, soft targets)."""
    monkeypatch.setattr(functional, "SIGMOID_FORMS", sigmoid_forms)
    g = torch.Generator().manual_seed(2)
    logits = (torch.randn(256, 784, generator=g) * 6).requires_grad_()
    target = torch.rand(256, 784, generator=g)
    ours = bce_with_logits(logits, target, reduction="sum") / 256
    theirs = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1).mean()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert torch.allclose(grad_ours, grad_theirs, rtol=0, atol=1e-9)
    mean = F.binary_cross_entropy_with_logits(logits, target, reduction="mean")
    assert bce_with_logits(logits, target, reduction="mean").item() == pytest.approx(mean.item(), rel=1e-6)


def test_bce_with_logits_sum_gradcheck_and_under_torch_func():
    logits = torch.tensor([[-4.0, -0.5, 0.0, 0.7, 9.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.0, 1.0, 0.3, 0.0, 1.0]], dtype=torch.float64)
    for reduction in ("sum", "mean"):
        assert torch.autograd.gradcheck(lambda z, r=reduction: bce_with_logits(z, target, reduction=r), (logits,))
    g = torch.Generator().manual_seed(1)
    rows, soft = torch.randn(3, 5, generator=g), torch.rand(3, 5, generator=g)
    per_row = torch.func.vmap(torch.func.grad(lambda z, x: bce_with_logits(z, x, reduction="sum")))(rows, soft)
    assert torch.allclose(per_row, torch.sigmoid(rows) - soft)


def test_bce_with_logits_reductions_of_half_precision_or_two_dtypes_are_pytorchs_own():
    g = torch.Generator().manual_seed(6)
    logits, target = torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g)
    for z, x in ((logits.half(), target.half()), (logits.double(), target)):
        for reduction in ("sum", "mean"):
            assert torch.equal(bce_with_logits(z, x, reduction=reduction),
                               F.binary_cross_entropy_with_logits(z, x, reduction=reduction))
    with pytest.raises(ValueError, match=r"reduction 'batchmean' \(allowed: none, sum, mean\)"):
        bce_with_logits(logits, target, reduction="batchmean")


def test_bce_with_logits_refuses_a_target_that_needs_a_gradient_or_another_shape():
    logits = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="target requires a gradient"):
        bce_with_logits(logits, torch.zeros(2, 3, requires_grad=True))
    with pytest.raises(ValueError, match=r"target shape \(3,\) != logits shape \(2, 3\)"):
        bce_with_logits(logits, torch.zeros(3))
    for integral in (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.bool)):  # PyTorch's raises
        with pytest.raises(ValueError, match="target dtype torch.(int64|bool)"):
            bce_with_logits(logits, integral)


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


def test_bce_with_logits_of_two_dtypes_is_pytorchs_own(monkeypatch):
    """PyTorch gives a float64-logit, float32-target loss the target's dtype; the sigmoid form would promote."""
    monkeypatch.setattr(functional, "SIGMOID_FORMS", True)
    g = torch.Generator().manual_seed(5)
    logits, target = torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g)
    for z, x in ((logits.double(), target), (logits, target.double())):
        theirs = F.binary_cross_entropy_with_logits(z, x, reduction="none")
        assert bce_with_logits(z, x).dtype == theirs.dtype
        assert torch.equal(bce_with_logits(z, x), theirs)
    assert bce_with_logits(logits, target).dtype == torch.float32  # one dtype: still the sigmoid form's


def test_where_mkl_is_fast_tanh_and_bce_are_pytorchs_own(monkeypatch):
    """On an Intel CPU PyTorch's VML kernels beat the sigmoid forms (tanh 26 against 106 µs for 256 × 500), so
    there both functions are PyTorch's, bit for bit and with PyTorch's backward."""
    monkeypatch.setattr(functional, "SIGMOID_FORMS", False)
    g = torch.Generator().manual_seed(4)
    a, target = torch.randn(8, 5, generator=g, requires_grad=True), torch.rand(8, 5, generator=g)
    assert torch.equal(tanh(a), torch.tanh(a)) and type(tanh(a).grad_fn).__name__ == "TanhBackward0"
    theirs = F.binary_cross_entropy_with_logits(a, target, reduction="none")
    assert torch.equal(bce_with_logits(a, target), theirs)
    assert type(bce_with_logits(a, target).grad_fn).__name__ == type(theirs.grad_fn).__name__
    with pytest.raises(ValueError, match="target requires a gradient"):  # the same checks on either path
        bce_with_logits(a, target.requires_grad_())


def test_tanh_hand_computed_values_and_limits():
    a = torch.tensor([0.0, 0.5, -2.0, 30.0, -30.0, math.inf, -math.inf])
    expected = [0.0, math.tanh(0.5), math.tanh(-2.0), 1.0, -1.0, 1.0, -1.0]
    assert tanh(a).tolist() == pytest.approx(expected, rel=0, abs=2.4e-7)
    assert tanh(torch.tensor([math.nan])).isnan().all()  # NaN stays NaN, never a number


def test_tanh_matches_pytorch_within_two_ulp_of_one_and_its_gradient_is_one_minus_tanh_squared():
    g = torch.Generator().manual_seed(2)
    a = (torch.randn(256, 500, generator=g) * 3).requires_grad_()
    ours, theirs = tanh(a), torch.tanh(a)
    assert (ours - theirs).abs().max() <= 2 * torch.finfo(torch.float32).eps
    (grad,) = torch.autograd.grad(ours.sum(), a)
    assert torch.allclose(grad, 1 - ours.detach() ** 2, rtol=0, atol=1e-7)
    a64 = torch.tensor([-3.0, -0.2, 0.0, 0.4, 5.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tanh, (a64,))


def test_tanh_under_torch_func_and_on_other_dtypes():
    a = torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    assert type(tanh(a.clone().requires_grad_()).grad_fn).__name__ == "_TanhBackward"  # ours, not torch.tanh's
    per_row = torch.func.vmap(torch.func.grad(lambda v: tanh(v).sum()))(a)
    assert torch.allclose(per_row, 1 - tanh(a) ** 2)
    half = a.half()
    assert torch.equal(tanh(half), torch.tanh(half))


def test_linear_hand_computed_values():
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    weight = torch.tensor([[1.0, 0.0], [2.0, 3.0], [-1.0, 1.0]])
    out = linear(x, weight, torch.tensor([0.5, 0.0, -1.0]))
    assert out.tolist() == [[1.5, 8.0, 0.0], [0.5, -3.0, -2.0]]
    assert linear(x, weight).tolist() == [[1.0, 8.0, 1.0], [0.0, -3.0, -1.0]]


@pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN")
@pytest.mark.parametrize("shape", [(37, 300), (4, 9, 256), (300,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_pytorch_in_values_and_every_gradient(shape, bias, any_size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g).requires_grad_()
    weight = torch.randn(129, shape[-1], generator=g).mul_(0.1).requires_grad_()
    b = torch.randn(129, generator=g).requires_grad_() if bias else None
    inputs = (x, weight, *([b] if bias else []))
    ours, theirs = linear(x, weight, b), F.linear(x, weight, b)
    assert type(ours.grad_fn).__name__ == "_OneDNNLinearBackward"  # the oneDNN path ran, not the fallback
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(theirs.shape, generator=g)
    ours_grads, their_grads = torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(theirs, inputs, upstream)
    for a, c in zip(ours_grads, their_grads):
        assert torch.allclose(a, c, rtol=1e-5, atol=1e-4)
    assert torch.equal(ours_grads[1], their_grads[1])  # ∂W: MKL's product, as PyTorch's linear computes it
    # a loss whose upstream gradient is an expanded (stride-0) tensor, and a transposed input
    for a, c in zip(torch.autograd.grad(linear(x, weight, b).sum(), inputs),
                    torch.autograd.grad(F.linear(x, weight, b).sum(), inputs)):
        assert torch.allclose(a, c, rtol=1e-5, atol=1e-4)
    xt = torch.randn(shape[-1], 5, generator=g).t()
    assert torch.allclose(linear(xt, weight, b), F.linear(xt, weight, b), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN")
def test_eager_calls_skip_autograd_functions_signature_binding_with_identical_numbers(monkeypatch, any_size):
    """Outside torch.func and torch.compile the three Functions run ctx-first: `apply` of a Function with
    `setup_context` binds its arguments with `inspect.signature` on every call (25–35 µs against 3.4), 23 times in a
    paper-size aae_ssl step. Same values and gradients, bit for bit, as the torch.func-able form."""
    import inspect

    g = torch.Generator().manual_seed(3)
    a, target = torch.randn(8, 30, generator=g).requires_grad_(), torch.rand(8, 30, generator=g)
    weight = torch.randn(20, 30, generator=g).requires_grad_()
    cases = [(tanh, functional._Tanh, (a,)), (bce_with_logits, functional._BCEWithLogits, (a, target)),
             (lambda z, x: bce_with_logits(z, x, reduction="sum"), functional._BCEWithLogitsSum, (a, target)),
             (linear, functional._OneDNNLinear, (a, weight, None))]
    expected = {}
    for call, function, args in cases:
        out = function.apply(*args)
        expected[function] = (out, torch.autograd.grad(out.sum(), [a, *args[1:2]] if call is linear else [a]))

    def no_binding(*args, **kwargs):
        raise AssertionError("inspect.signature called")

    monkeypatch.setattr(inspect, "signature", no_binding)
    with pytest.raises(AssertionError, match="inspect.signature called"):
        functional._Tanh.apply(a)  # the form with setup_context binds: the check can fail
    for call, function, args in cases:
        out = call(*args)
        assert type(out.grad_fn).__name__ == f"{function.__name__}Backward"
        grads = torch.autograd.grad(out.sum(), [a, *args[1:2]] if call is linear else [a])
        assert torch.equal(out, expected[function][0])
        assert all(torch.equal(x, y) for x, y in zip(grads, expected[function][1]))


@pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN")
def test_linear_computes_only_the_gradients_asked_for_and_is_deterministic(any_size):
    g = torch.Generator().manual_seed(1)
    x, weight = torch.randn(50, 64, generator=g), torch.randn(32, 64, generator=g)
    frozen_input = torch.autograd.grad(linear(x, weight.requires_grad_()).sum(), weight)[0]  # no ∂x (data)
    assert torch.allclose(frozen_input, x.sum(0).expand(32, -1), rtol=1e-5, atol=1e-4)
    critic = weight.detach()  # a fixed critic (aae_ssl's D in the generator term): ∂x only
    (grad_x,) = torch.autograd.grad(linear(x.requires_grad_(), critic).sum(), x)
    assert torch.allclose(grad_x, critic.sum(0).expand(50, -1), rtol=1e-5, atol=1e-4)
    assert torch.equal(linear(x, weight), linear(x, weight))  # bitwise, run to run


@pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN")
def test_linear_uses_onednn_from_its_size_threshold_up(monkeypatch):
    monkeypatch.setattr(functional, "ONEDNN_LINEAR", True)
    rows = functional.ONEDNN_MIN_MACS // (64 * 32)  # x [rows, 64] · W [32, 64]ᵀ: exactly the threshold
    weight = torch.randn(32, 64, requires_grad=True)
    assert type(linear(torch.randn(rows, 64), weight).grad_fn).__name__ == "_OneDNNLinearBackward"
    assert type(linear(torch.randn(rows - 1, 64), weight).grad_fn).__name__ != "_OneDNNLinearBackward"


def test_linear_falls_back_to_pytorch_off_the_onednn_path(any_size):
    x, weight = torch.randn(3, 4, dtype=torch.float64, requires_grad=True), torch.randn(2, 4, dtype=torch.float64)
    assert type(linear(x, weight).grad_fn).__name__ == "MmBackward0"  # float64: PyTorch's
    assert torch.autograd.gradcheck(lambda a: linear(a, weight), (x,))
    enabled = torch.backends.mkldnn.enabled
    try:
        torch.backends.mkldnn.enabled = False  # the user's switch for PyTorch's oneDNN use
        assert "OneDNN" not in type(linear(x.float(), weight.float()).grad_fn).__name__
    finally:
        torch.backends.mkldnn.enabled = enabled
    with pytest.raises(RuntimeError):  # PyTorch's own shape error
        linear(torch.randn(3, 5), torch.randn(2, 4))


def test_linear_module_is_an_nn_linear_with_the_same_state():
    torch.manual_seed(0)
    ours = Linear(6, 3)
    torch.manual_seed(0)
    plain = torch.nn.Linear(6, 3)
    assert isinstance(ours, torch.nn.Linear) and ours.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), plain.state_dict().values()))
    x = torch.randn(2, 6)
    assert torch.allclose(ours(x), plain(x), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN")
def test_linear_edge_cases_match_pytorch_or_take_its_path(any_size):
    g = torch.Generator().manual_seed(2)
    x, weight = torch.randn(6, 8, generator=g), torch.randn(32, 8, generator=g)
    strided_bias = torch.arange(64.0)[::2]  # a view oneDNN would read as packed: copied first
    assert torch.allclose(linear(x, weight, strided_bias), F.linear(x, weight, strided_bias), atol=1e-5)
    for bias in (torch.tensor([3.0]).expand(32), torch.ones(1), torch.ones(6, 32), torch.ones(32, dtype=torch.float64)):
        try:
            expected = F.linear(x, weight, bias)
        except RuntimeError:
            with pytest.raises(RuntimeError):  # PyTorch's own error, not oneDNN's
                linear(x, weight, bias)
            continue
        assert torch.allclose(linear(x, weight, bias), expected, atol=1e-5)
    assert linear(torch.randn(0, 8), weight).shape == (0, 32)  # no rows
    # once differentiable: a second derivative raises instead of coming out wrong
    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(linear(xg, weight.requires_grad_()).pow(2).sum(), xg, create_graph=True)
    with pytest.raises(RuntimeError):
        grad.sum().backward()
    # torch.func transforms take PyTorch's path
    batched = torch.func.vmap(lambda rows: linear(rows, weight))(torch.randn(3, 6, 8, generator=g))
    assert batched.shape == (3, 6, 32)
    # a frozen weight: ∂x needs only W, so x is not kept and may change in place after the call, as with F.linear
    leaf = torch.randn(6, 8, generator=g, requires_grad=True)
    hidden = leaf * 2
    out = linear(hidden, weight.detach())
    hidden.add_(1.0)
    (grad_leaf,) = torch.autograd.grad(out.sum(), leaf)
    assert torch.allclose(grad_leaf, 2 * weight.detach().sum(0).expand(6, -1), atol=1e-5)


@pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN")
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # torch's own autocast import
def test_linear_keeps_one_graph_under_torch_compile_and_leaves_forward_ad_and_autocast_to_pytorch(any_size):
    net = torch.nn.Sequential(Linear(16, 8), torch.nn.ReLU(), Linear(8, 4))
    x = torch.randn(5, 16)
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    # the sigmoid forms too keep one graph (inside torch.compile they apply the Functions with setup_context)
    target = torch.rand(5, 4)
    loss = lambda a: bce_with_logits(tanh(net(a)), target).sum()
    explained = torch._dynamo.explain(loss)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    from torch.autograd import forward_ad

    weight, tangent = torch.randn(4, 16), torch.randn(5, 16)
    with forward_ad.dual_level():
        out = linear(forward_ad.make_dual(x, tangent), weight)
        assert torch.allclose(forward_ad.unpack_dual(out).tangent, tangent @ weight.t(), atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(x, weight).dtype == F.linear(x, weight).dtype == torch.bfloat16


def test_rescale_underflowing_rows_touches_only_rows_too_small_to_square():
    from replab.functional import rescale_underflowing_rows

    v = torch.tensor([[3.0, -4.0], [3e-25, -4e-25], [0.0, 0.0], [3e-13, 4e-13]])
    out = rescale_underflowing_rows(v)
    assert torch.equal(out[0], v[0])  # an ordinary row: bit for bit
    assert torch.allclose(out[1], torch.tensor([0.75, -1.0])) and float(v[1].norm()) == 0.0  # its squares underflow
    assert torch.equal(out[2], v[2])  # zero stays zero
    assert torch.allclose(out[3], torch.tensor([0.75, 1.0]))  # below the 1e-12 guard of the normalisation after it
    assert torch.equal(rescale_underflowing_rows(v[3:], tiny=1e-14), v[3:])  # the threshold is the caller's guard


def test_rescale_underflowing_rows_without_the_host_check_gives_the_same_bits():
    """Off the CPU the check that skips the rescale would synchronise every call, so there the rescale always runs
    (`sync_free`): for ordinary, underflowing, zero, −0, infinite and NaN rows the very same values."""
    from replab.functional import rescale_underflowing_rows

    g = torch.Generator().manual_seed(0)
    v = torch.randn(64, 7, 5, generator=g) * torch.logspace(-30, 3, 64).view(-1, 1, 1)
    v[3], v[4], v[50, 0, 0], v[51, 1, 1], v[52, 2, 2] = 0.0, -0.0, float("inf"), float("nan"), -0.0
    for rows in (v, v[40:]):  # with underflowing rows, and without (rows 40 on are above 1e-10)
        checked, always = (rescale_underflowing_rows(rows, sync_free=flag) for flag in (False, True))
        assert torch.equal(checked.view(torch.int32), always.view(torch.int32))  # bit for bit, NaN and −0 too
    plain = v[40:].clone()
    assert rescale_underflowing_rows(plain) is plain  # on the CPU the check returns v itself when no row is small
