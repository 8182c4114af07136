"""`replab bench [paper ...] --steps N`: how fast each paper's real training step runs on this machine.

Per paper, on SYNTHETIC data of the paper's real shapes placed on the device (no download needed):

1. training-step throughput of the paper's own training loop (samples/s, median ms per step: other processes'
   load stretches single steps; the mean is reported beside it), timed after 3 warm-up steps and before the
   loop's final evaluation;
2. FLOPs of one real training step (`torch.utils.flop_counter.FlopCounterMode`, plus the oneDNN kernels it does
   not count: `ONEDNN_FLOPS`), the achieved GFLOP/s and that as a fraction of this process's measured fp32 matmul
   throughput (a square matrix product, best of a few before the training steps and a few after them, so that a
   moment's load on the machine does not set the reference; by the faster of `torch.mm` and the oneDNN kernel of
   replab's linear layers), then the ceiling of that fraction for this step's shapes: the FLOP-counted kernels
   of that same step (matrix products, convolutions, oneDNN's linear and LSTM layers; `KernelRecorder`) replayed
   alone, back to back on fresh tensors of the recorded layouts (`kernels_alone_seconds`), and the step's time
   over theirs;
3. batch-fetch overhead: index slices of on-device tensors (`replab.batches.EndlessBatches`, what the papers
   use) against a `DataLoader(TensorDataset)` loop over CPU tensors with the copy to the device included.

4. the same step written as a plain PyTorch peer loop (`replab.peers`: DataLoader over TensorDataset, default
   optimiser settings) run in the same process on the same data: its samples/s, fraction of matmul, and
   replab's speed-up over it (`peer_ratio`, samples/s of replab ÷ the peer's; `peer_ratio_rounds`, the same
   ratio within each of the ROUNDS alternating rounds: how far it moves between them in one run, the noise a
   goal's margin has to exceed). The process's settings from
   `rt.setup` (threads, deterministic mode, glibc keeping freed blocks: `rt.keep_freed_memory`) hold for both
   loops, so the ratio measures the loops, not those settings. `--process-defaults` runs without the last two
   (glibc's malloc defaults, deterministic mode's NaN fill): its step times beside a plain run's measure them.
   Use a fresh process for it: glibc's malloc settings cannot be undone once set.

`--seeds N` (papers whose case has `train_seeds`: aae_ssl) also times the step of N seeds trained together as
one batched model (`replab.ensemble`) against N single-seed steps one after another (`seeds_speedup`).

`--profile quick|paper` benchmarks the sizes of that profile (conf/ composed in memory with `profile=<name>`;
params.yaml is not touched); without it, params.yaml's. `--json PATH` writes the results for comparison across
machines, and `--show A.json B.json …` prints such files side by side as one table (`show`). A paper opts in
with `bench_setup(cfg, device) -> BenchCase` in its train.py (exported by its package). The training loop of a
case must iterate `rt.progress(...)` once per step: bench wraps that iterable to time steps and count FLOPs on
the real step, nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import statistics
import string
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

from replab import runtime as rt
from replab.batches import EndlessBatches, rows
from replab.io import DataError, PartialFailure, finite, out_of_memory, read_json, write_json
from replab.params import (
    COMPILE_MODES,
    GRAPH_COMPILE_MODES,
    GRAPHLESS_COMPILE_MODES,
    ParamError,
    Runtime,
    check_writable,
    load_runtime,
    load_section,
)

WARMUP_STEPS = 3
FETCH_MIN_BATCHES = 200  # batch-fetch comparison: max(steps, this) batches per method
MATMUL_REPEATS = 5
KERNEL_REPEATS = 10  # replays of a step's FLOP kernels alone (best of): a few ms to 0.1 s each
ROUNDS = 2  # replab's loop and the peer loop alternate this many times
MAX_SEEDS = 100  # bench --seeds: a variant's seeds (the papers use 2 to 10)
# bench --steps: twice the longest training run of the papers (aae_ssl's 50,000 iterations); 10**20 reached a C
# size (OverflowError) as a failed paper, not a one-line error
MAX_STEPS = 100_000
# a kernels-alone fraction above 1 has no ceiling to give: the square product it is measured against ran slow
ABOVE_ONE_MARK = "(†)"
ABOVE_ONE_NOTE = ("(†) above 1: the square product ran slower than these kernels (e.g. under load); rerun when idle "
                  "for a ceiling")
# The alternating rounds' ratios further apart than this (largest ÷ smallest): the machine's load changed between
# them, and the run's ratio is not a measure of the loops alone
ROUNDS_APART = 1.15
ROUNDS_APART_MARK = "(‡)"
ROUNDS_APART_NOTE = (f"(‡) the rounds' ratios differ by more than {ROUNDS_APART - 1:.0%}: the load changed during "
                     "the run; rerun when idle")
SEEDS_TOGETHER = ("aae_ssl",)  # the papers whose BenchCase has `train_seeds` (`--seeds`)
CUDA_GRAPH_PAPERS = ("aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat")  # honour runtime.cuda_graph
# The host's 1-minute load average (bench's own threads included, a thread per core by default) above its cores by
# more than this: other work shared the CPUs
BUSY_MARGIN = 0.5
BUSY_MARK = "(!)"
BUSY_NOTE = ("(!) the load average exceeded the cores: other work shared the CPUs and may have stretched the times; "
             "rerun when idle")
PHASES = 5  # run_bench's phase bar: matmul, synthetic data, training steps, kernels alone, batch fetch


class NoBenchmark(LookupError):
    """The paper has no benchmark case (or is not a paper at all)."""


@dataclass
class BenchCase:
    """What bench needs from a paper: its real training loop on synthetic, on-device data of real shapes."""

    label: str  # what runs, e.g. "aae_yz Nl=100 hidden=256 z=50"
    samples_per_step: int  # examples consumed by one training step
    train: Callable[[int, Runtime], Any]  # run the real loop for n steps; iterates rt.progress once per step
    x: torch.Tensor  # on-device training inputs, for the batch-fetch comparison
    y: torch.Tensor  # matching labels (or any per-example tensor)
    batch_size: int  # the batch size the paper's loop draws
    # the loop with n seeds trained together (replab.ensemble), for n steps: train_seeds(steps, n, runtime)
    train_seeds: Callable[[int, int, Runtime], Any] | None = None
    # the profile's sweep this step stands for, to project its training time: (name, variants, seeds of each,
    # steps per run)
    sweep: tuple[str, int, int, int] | None = None


# ---------------------------------------------------------------------------------------------------------
# Cases

def synthetic_images(n: int, n_classes: int, device, seed: int = 0, dim: int = 784):
    """`n` flat images in [0, 1] (quantised to /255 like real uint8 pixels) and class-balanced labels."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, dim), generator=gen, dtype=torch.uint8).float().div_(255.0)
    y = (torch.arange(n) % n_classes)[torch.randperm(n, generator=gen)]
    return x.to(device), y.to(device)


def synthetic_sentences(n: int, vocab: int, max_length: int, device, seed: int = 0):
    """`n` right-padded token rows [n, max_length] (ids 4 … vocab − 1, 0 = padding; ids below 4 left to the
    special tokens) of 5 … max_length tokens, their lengths [n] and float labels [n] (the first two 0 and 1, so
    that any leading slice holds both classes and its ROC-AUC is defined), drawn on `device`."""
    from replab.runtime import seeded_generator

    gen = seeded_generator(seed, device)
    lengths = torch.randint(5, max_length + 1, (n,), generator=gen, device=device)
    tokens = torch.randint(4, vocab, (n, max_length), generator=gen, device=device)
    y = torch.randint(0, 2, (n,), generator=gen, device=device).float()
    y[:2] = torch.tensor([0.0, 1.0], device=device)
    return tokens * (torch.arange(max_length, device=device)[None, :] < lengths[:, None]), lengths, y


def find_case(paper: str) -> tuple[Any, Callable[[Any, Any], BenchCase]]:
    """(paper package, its bench_setup)."""
    from replab.papers import PAPERS, paper_module

    if paper not in PAPERS:
        raise NoBenchmark(f"no benchmark for {paper} (unknown paper; allowed: {', '.join(PAPERS)})")
    module = paper_module(paper)
    setup = getattr(module, "bench_setup", None)
    if setup is None:
        raise NoBenchmark(f"no benchmark for {paper}")
    return module, setup


# ---------------------------------------------------------------------------------------------------------
# Measurements

def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """Matrix-product FLOPs of one oneDNN RNN layer's forward (`aten.mkldnn_rnn_layer`, PyTorch's CPU LSTM):
    input [T, B, in] (or [B, T, in]), W_ih [G, in], W_hh [G, h] with G gate rows (4h for an LSTM) →
    2·T·B·G·(in + h), what `mm` would count for the input projection and the T recurrent products."""
    steps = math.prod(input_shape[:-1])
    return 2 * steps * w_ih_shape[0] * (w_ih_shape[1] + w_hh_shape[1])


def rnn_layer_backward_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """`aten.mkldnn_rnn_layer_backward`: gradients of the input, the hidden state and both weights, twice the
    forward's products."""
    return 2 * rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape)


def onednn_linear_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    """`mkldnn._linear_pointwise` (replab.functional.linear): x [..., in] · W [out, in]ᵀ → 2·rows·in·out. W is
    its second argument (x, W, bias, attr, scalars, algorithm), the third in the `.binary` overload that
    torch.compile's fusions emit (x, other, W, bias, attr)."""
    w_shape = args[1] if len(args) == 4 else args[0]
    return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * w_shape[0]


def cudnn_rnn_flops(input_shape, weight_shapes, weight_stride0, *args, out_shape=None, **kwargs) -> int:
    """`aten._cudnn_rnn` (PyTorch's CUDA LSTM/GRU, every layer and direction in one call): weights come in groups
    of `weight_stride0` per layer and direction, W_ih [G, in] and W_hh [G, h] first → Σ 2·steps·G·(in + h), steps
    = T·B (Σ lengths of a packed input), as `rnn_layer_flops` per group."""
    return sum(rnn_layer_flops(input_shape, weight_shapes[k], weight_shapes[k + 1])
               for k in range(0, len(weight_shapes), weight_stride0))


def cudnn_rnn_backward_flops(input_shape, weight_shapes, weight_stride0, *args, out_shape=None, **kwargs) -> int:
    """`aten._cudnn_rnn_backward`: the forward's products once for the gradients of the input and hidden states
    and once for the weights', each only where its last argument, output_mask (∂input, ∂hx, ∂cx, ∂weights), asks
    for it (VAT's ∂KL/∂r needs no weight gradient)."""
    mask = args[-1] if args and isinstance(args[-1], list | tuple) else [True] * 4
    return (any(mask[:3]) + bool(mask[3])) * cudnn_rnn_flops(input_shape, weight_shapes, weight_stride0)


# FLOP-bearing kernels that FlopCounterMode's registry lacks (oneDNN's on the CPU, cuDNN's RNN on CUDA)
ONEDNN_FLOPS = {torch.ops.aten.mkldnn_rnn_layer: rnn_layer_flops,
                torch.ops.aten.mkldnn_rnn_layer_backward: rnn_layer_backward_flops,
                torch.ops.mkldnn._linear_pointwise: onednn_linear_flops,
                torch.ops.aten._cudnn_rnn: cudnn_rnn_flops,
                torch.ops.aten._cudnn_rnn_backward: cudnn_rnn_backward_flops}
# counted, not replayed alone: their arguments hold cuDNN's packed weight buffer, reserve space and dropout state,
# which fresh random tensors do not stand in for
NOT_REPLAYED = frozenset({torch.ops.aten._cudnn_rnn, torch.ops.aten._cudnn_rnn_backward})


def best_seconds(run: Callable[[], Any], device, repeats: int) -> float:
    """Fastest of `repeats` timed calls of `run` (each until the device is done), after one untimed call (kernel
    selection, the thread pool)."""
    run()
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True)
class TensorSpec:
    """Layout of one recorded kernel argument: a fresh tensor of it is made for the replay."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorSpec:
        return cls(tuple(t.shape), tuple(t.stride()), t.dtype)

    def make(self, device, gen: torch.Generator) -> torch.Tensor:
        """Standard normal values for floating types, zeros otherwise (index-like arguments stay in range);
        strides as recorded, broadcast (stride 0) dimensions included."""
        numel = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) if all(self.shape) else 0
        if self.dtype.is_floating_point:
            base = torch.randn(numel, generator=gen, dtype=self.dtype).to(device)
        else:
            base = torch.zeros(numel, dtype=self.dtype, device=device)
        return base.as_strided(self.shape, self.stride)


class HostReadCounter(TorchFunctionMode):
    """Counts the reads of tensor values into Python during one training step: `.item()`, `.tolist()`, `.numpy()`,
    `bool(t)`, `float(t)`, `int(t)`, and `.cpu()` of a tensor on another device. On a GPU each one synchronises:
    the host waits for every kernel queued so far, and the GPU then idles while the host launches the next ones,
    which is what bounds the small models' steps there. `where` counts them by the line of replab's code that
    read (a read on the CPU path alone, e.g. `runtime.clip_grad_norm_`'s, shows here too)."""

    READS = frozenset({"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"})

    def __init__(self):
        super().__init__()
        self.reads = 0
        self.where: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.READS or (name == "cpu" and args and getattr(args[0], "device", None) is not None
                                  and args[0].device.type != "cpu"):
            self.reads += 1
            at = _reading_line(traceback.extract_stack(limit=16)[:-1])
            self.where[at] = self.where.get(at, 0) + 1
        return func(*args, **(kwargs or {}))


_BENCH_FILE = Path(__file__).resolve()
_TORCH_DIR = Path(torch.__file__).resolve().parent


def _reading_line(stack: list) -> str:
    """The innermost frame of `stack` outside PyTorch and bench.py, as "papers/censor/model.py:328" (relative to
    replab's package) or "file.py:12" elsewhere."""
    for frame in reversed(stack):
        path = Path(frame.filename).resolve()
        if path != _BENCH_FILE and not path.is_relative_to(_TORCH_DIR):
            package = _BENCH_FILE.parent
            return f"{path.relative_to(package) if path.is_relative_to(package) else path.name}:{frame.lineno}"
    return "?"


class KernelRecorder(TorchDispatchMode):
    """Records each call of an op in `ops` (the OpOverloadPackets FlopCounterMode counts: matrix products,
    convolutions, oneDNN's linear and LSTM layers) with its arguments' layouts, for `kernels_alone_seconds`:
    the step's FLOP-bearing kernels run back to back with nothing else in between."""

    def __init__(self, ops: Iterable):
        super().__init__()
        self.ops = frozenset(ops)
        self.calls: list[tuple[Any, tuple, dict]] = []  # (OpOverload, args, kwargs) with TensorSpec for tensors

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._overloadpacket in self.ops:
            self.calls.append((func, *tree_map_only(torch.Tensor, TensorSpec.of, (args, kwargs))))
        return func(*args, **kwargs)


def kernels_alone_seconds(calls: list[tuple[Any, tuple, dict]], device,
                          repeats: int = KERNEL_REPEATS) -> float | None:
    """Best-of-`repeats` seconds of the recorded `calls` (KernelRecorder) run back to back on fresh tensors of
    their recorded layouts (after one untimed run): the time a training step's FLOPs take on this machine's
    kernels for these shapes, the ceiling of the step's own throughput. 0.0 for no calls; None when a call
    cannot be replayed (`NOT_REPLAYED`: the kernels alone would leave out some of the step's FLOPs)."""
    if not calls:
        return 0.0
    if any(func._overloadpacket in NOT_REPLAYED for func, _, _ in calls):
        return None
    gen = torch.Generator().manual_seed(0)
    made = [(func, *tree_map_only(TensorSpec, lambda spec: spec.make(device, gen), (args, kwargs)))
            for func, args, kwargs in calls]

    def run() -> None:
        with torch.no_grad():
            for func, args, kwargs in made:
                func(*args, **kwargs)

    return best_seconds(run, device, repeats)


class StepProbe:
    """Wraps a training loop's step iterable: counts FLOPs on the last warm-up step (or step `count_at`, 0-based: an
    eager one where later warm-up steps are a CUDA graph's capture), and times the `steps` steps after the warm-up
    (start of step warmup+1 → start of the extra final step, which holds the loop's end-of-run evaluation and is not
    timed)."""

    def __init__(self, warmup: int, steps: int, device, count_flops: bool = True, compiled: bool = False,
                 count_at: int | None = None):
        self.warmup, self.steps, self.device, self.count_flops = warmup, steps, device, count_flops
        self.count_at = warmup - 1 if count_at is None else count_at
        self.compiled = compiled
        self.seen = 0  # steps the loop has started
        self.hooked = False
        self.wrapped: Iterator | None = None  # the loop's step iterable, once `attached` routed it through `wrap`
        self.flops: int | None = None
        self.kernel_calls: list = []  # the FLOP-counted step's kernels (KernelRecorder.calls)
        self.host_reads: HostReadCounter | None = None  # that step's reads into Python (eager loops only)
        self.t0 = self.t1 = None
        self.stamps: list[float] = []  # start of each timed step and of the step after the last

    @property
    def iterations(self) -> int:
        return self.warmup + self.steps + 1

    def wrap(self, iterable: Iterable) -> Iterator:
        from torch.utils.flop_counter import FlopCounterMode

        for i, item in enumerate(iterable):
            self.seen = i + 1
            if self.warmup <= i <= self.warmup + self.steps:
                _sync(self.device)
                self.stamps.append(time.perf_counter())
                self.t0 = self.stamps[0]
                if i == self.warmup + self.steps:
                    self.t1 = self.stamps[-1]
            if i == self.count_at and self.count_flops:  # warmed up by the earlier steps, not itself timed
                counter = FlopCounterMode(display=False, custom_mapping=ONEDNN_FLOPS)
                recorder = KernelRecorder(counter.flop_registry)
                # (not under torch.compile: a function mode would make the compiled loop recompile)
                reads = HostReadCounter() if not self.compiled else contextlib.nullcontext()
                with counter, recorder, reads, warnings.catch_warnings():
                    # the counter's global module hooks make torch.compile warn that hooks fire an extra time:
                    # harmless for one counted step (no recompile), alarming in a log
                    warnings.filterwarnings("ignore", message=r"Using `torch.compile\(module\)` when there are global")
                    yield item
                self.flops = counter.get_total_flops()
                self.kernel_calls = recorder.calls
                self.host_reads = reads if isinstance(reads, HostReadCounter) else None
            else:
                yield item

    @contextlib.contextmanager
    def attached(self):
        """Route the first `rt.progress(...)` call (the training loop) through `wrap`. Every bar the case opens
        meanwhile is hidden: a timing run on synthetic data, whose loss and validation postfix (e.g. aae_ssl's
        val_error near chance) would read as training gone wrong; bench's own phase bar says what runs."""
        original = rt.progress

        def progress(iterable=None, **kwargs):
            kwargs["enabled"] = False
            if self.hooked or iterable is None:  # only the first loop; later bars pass through
                return original(iterable, **kwargs)
            self.hooked = True
            kwargs.setdefault("total", len(iterable) if hasattr(iterable, "__len__") else None)
            self.wrapped = self.wrap(iterable)
            return original(self.wrapped, **kwargs)

        rt.progress = progress
        try:
            yield self
        finally:
            rt.progress = original
            if self.wrapped is not None:  # a loop that raised mid-step: leave the FLOP counter and warning filter
                self.wrapped.close()  # now, not whenever the garbage collector finds the generator

    def seconds(self) -> float:
        if self.t0 is None or self.t1 is None or (self.count_flops and self.flops is None):
            raise RuntimeError(f"bench: the training loop ran {self.seen} of {self.iterations} steps "
                               "through rt.progress; it must iterate rt.progress(range(iterations))")
        return self.t1 - self.t0

    def step_times(self) -> list[float]:
        """Seconds of each timed step."""
        self.seconds()  # the same check
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


def matmul_gflops(device, repeats: int = MATMUL_REPEATS) -> tuple[int, dict[str, float]]:
    """(n, {kernel: best GFLOP/s}) of a square fp32 product of size n (1024 on CPU, 4096 on GPU) by `torch.mm`
    (PyTorch's BLAS; TF32 on CUDA when runtime.tf32 is true) and, where replab's linear layers use it, by
    oneDNN's matmul (`replab.functional.linear`, float32 on the CPU)."""
    from replab import functional

    n = 4096 if device.type == "cuda" else 1024
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)
    kernels = {"torch.mm": lambda: torch.mm(a, b, out=out)}
    if functional.uses_onednn(a, b, None):
        kernels["oneDNN"] = lambda: functional.linear(a, b)  # a · bᵀ: the same FLOPs
    return n, {name: 2 * n**3 / best_seconds(product, device, repeats) / 1e9 for name, product in kernels.items()}


def seeds_together_hours(variants: int, n_seeds: int, steps: int, together: int, together_s: float,
                         step_s: float) -> float:
    """Hours of a sweep's training steps with each variant's `n_seeds` seeds trained in batched groups of
    `together` (`together_s` a step), the seeds left over (n_seeds mod together) at the cheaper of one more batched
    group and their single-seed steps (`step_s` each): an upper bound where a smaller batch is cheaper."""
    full, left = divmod(n_seeds, together)
    per_variant = full * together_s + (min(left * step_s, together_s) if left else 0.0)
    return variants * per_variant * steps / 3600


def compile_counters() -> dict[str, int]:
    """torch.compile's running totals that say whether a compiled loop ran as intended: graphs made, and CUDA
    graphs Inductor declined to record (it only warns: inputs mutated in place, CPU tensors in a CUDA graph), so
    a `reduce-overhead` result that replayed fewer CUDA graphs than it compiled says so."""
    from torch._dynamo.utils import counters

    return {"graphs": counters["stats"]["unique_graphs"], "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}


def fetch_index(x: torch.Tensor, y: torch.Tensor, batch_size: int, n_batches: int, device) -> float:
    """µs per batch: `EndlessBatches` index slices of on-device tensors (as the training loops draw them)."""
    batches = EndlessBatches(len(x), batch_size, rt.seeded_generator(0, device), device)  # as the loops seed it

    def draw(k: int):
        for _ in range(k):
            i = next(batches)
            batch = rows(x, i), rows(y, i)
        _sync(device)
        return batch

    draw(5)
    start = time.perf_counter()
    draw(n_batches)
    return (time.perf_counter() - start) / n_batches * 1e6


def fetch_dataloader(x: torch.Tensor, y: torch.Tensor, batch_size: int, n_batches: int, device) -> float:
    """µs per batch: `DataLoader(TensorDataset(...), shuffle=True)` over CPU tensors, copy to device included."""
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=rt.seeded_generator(0))

    def draw(k: int) -> None:
        done = 0
        while done < k:
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                done += 1
                if done == k:
                    break
        _sync(device)

    draw(5)
    start = time.perf_counter()
    draw(n_batches)
    return (time.perf_counter() - start) / n_batches * 1e6


# ---------------------------------------------------------------------------------------------------------
# Entry points

def profile_params(profile: str | None) -> dict | None:
    """params of `profile` (conf/ composed in memory, as `replab compose profile=<profile>` would write them);
    None for params.yaml as it is."""
    if profile is None:
        return None
    import tempfile

    from dvc.utils.hydra import compose_and_dump

    from replab.params import check_profile, read_params

    conf = Path("conf")
    check_profile(profile, f"bench --profile {profile}", conf)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(conf.resolve()), None, "config", "", [f"profile={profile}"])
        return read_params(out)


def time_peer(peer: Iterator[None], warmup: int, steps: int, device) -> tuple[float, list[float]]:
    """(total, each step's) seconds of `steps` steps of a peer loop (one `next` per step) after `warmup`
    untimed ones."""
    for _ in range(warmup):
        next(peer)
    _sync(device)
    stamps = [time.perf_counter()]
    for _ in range(steps):
        next(peer)
        _sync(device)
        stamps.append(time.perf_counter())
    return stamps[-1] - stamps[0], [b - a for a, b in zip(stamps, stamps[1:])]


def find_peer(paper: str) -> Callable | None:
    """The paper's plain PyTorch peer loop (replab.peers), or None."""
    from replab.peers import PEERS

    return PEERS.get(paper)


def bench_runtime(params: dict | None, compile_mode: str | None = None, cuda_graph: bool = False,
                  seeds: int | None = None) -> Runtime:
    """params' runtime with bench's --compile and --cuda-graph. ParamError, naming the options and the params they
    meet, for a combination params.yaml could not hold either (CUDA graphs inside torch.compile's), and for --seeds
    beside a compiled single-seed loop (seeds trained together are never compiled: the speed-up would compare two
    kinds of loop; runtime.cuda_graph replays both loops)."""
    base = load_runtime(params=params)
    runtime = base
    if compile_mode is not None:
        runtime = dataclasses.replace(runtime, compile=True, compile_mode=compile_mode)
    runtime = dataclasses.replace(runtime, cuda_graph=runtime.cuda_graph or cuda_graph)
    given = " ".join([*([f"--compile {compile_mode}"] if compile_mode else []), *(["--cuda-graph"] * cuda_graph)])
    try:
        runtime.check("runtime")
    except ParamError:
        raise ParamError(f"bench {given}: with params' runtime (cuda_graph: {str(base.cuda_graph).lower()}, compile: "
                         f"{str(base.compile).lower()}, compile_mode: {base.compile_mode}) the loop would capture CUDA "
                         "graphs inside torch.compile's own (allowed with CUDA graphs per iteration: --compile "
                         f"{', '.join(GRAPHLESS_COMPILE_MODES)})") from None
    if seeds is not None and runtime.compile:
        raise ParamError(f"bench --seeds {seeds}: params' runtime makes the single-seed loop run through "
                         "torch.compile, but seeds trained together are never compiled, so the speed-up would compare "
                         "two kinds of loop (set runtime.compile to false for --seeds)")
    return runtime


def replays_iterations(paper: str, runtime: Runtime, device) -> bool:
    """Whether `paper`'s loop replays its iterations as CUDA graphs: runtime.cuda_graph on a CUDA device, for a
    paper whose loop is built on rt.StepGraph (CUDA_GRAPH_PAPERS: today every paper's)."""
    return rt.cuda_graph_on(runtime, device) and paper in CUDA_GRAPH_PAPERS


def run_bench(paper: str, steps: int, params: dict | None = None, profile: str | None = None,
              process_defaults: bool = False, compile_mode: str | None = None, seeds: int | None = None,
              cuda_graph: bool = False) -> dict:
    """Benchmark one paper (raises NoBenchmark when it has no case) for `steps` ≥ 1 (`main` checks it). Reads
    `params` (default: params.yaml in the working dir); `compile_mode` sets runtime.compile (true) and
    runtime.compile_mode for replab's loop (the peer stays eager; compiling happens in the warm-up steps);
    `seeds` ≥ 2 also times that many seeds trained together where the case can (`BenchCase.train_seeds`);
    `cuda_graph` sets runtime.cuda_graph for a case whose loop honours it (NoBenchmark for the others)."""
    module, setup = find_case(paper)
    if cuda_graph and paper not in CUDA_GRAPH_PAPERS:
        raise NoBenchmark(f"bench {paper}: its loop replays no whole-step CUDA graph (--cuda-graph: "
                          f"{', '.join(CUDA_GRAPH_PAPERS)})")
    cfg = load_section(module.Config, paper, params=params)
    runtime = bench_runtime(params, compile_mode, cuda_graph)
    device = rt.setup(runtime, 0, process_settings=not process_defaults)
    replayed = replays_iterations(paper, runtime, device)
    compiled_before = compile_counters() if runtime.compile else None

    # one update per phase below, so the bar ends at PHASES/PHASES (in a log, also its last line)
    phases = rt.progress(total=PHASES, enabled=runtime.progress, desc=f"bench {paper}", leave=False, unit="phase")
    phases.set_postfix_str("fp32 matmul")
    mm_size, mm_kernels = matmul_gflops(device)
    phases.update()

    phases.set_postfix_str("synthetic data")
    case = setup(cfg, device)
    phases.update()

    peer_loop = find_peer(paper)
    together = seeds if seeds is not None and case.train_seeds is not None else None
    if seeds is not None and together is None:
        print(f"bench {paper}: no loop of seeds trained together (--seeds: {', '.join(SEEDS_TOGETHER)})", flush=True)
    if together is not None:
        check_seeds_device(seeds, device)
    seconds = peer_seconds = 0.0
    step_times, peer_times, together_times = [], [], []
    round_ratios = []  # each round's median peer step ÷ median replab step: the ratio's spread within this run
    flops = kernel_calls = host_reads = None
    # a replayed loop: its FLOPs counted on an eager warm-up step, its capture an untimed warm-up step too
    warmup = rt.StepGraph.WARMUP + 1 if replayed else WARMUP_STEPS
    for r in range(ROUNDS):  # replab and the peer alternate, so a change in the machine's load hits both
        timing = f"round {r + 1}/{ROUNDS}: {steps} timed training steps (synthetic data)"
        phases.set_postfix_str(f"{timing}, replab's loop")
        probe = StepProbe(warmup, steps, device, compiled=runtime.compile, count_at=WARMUP_STEPS - 1)
        with probe.attached():
            case.train(probe.iterations, runtime)
        seconds += probe.seconds()
        round_steps = probe.step_times()
        step_times += round_steps
        flops = probe.flops if flops is None else flops
        kernel_calls = probe.kernel_calls if kernel_calls is None else kernel_calls
        host_reads = probe.host_reads if host_reads is None else host_reads
        if peer_loop is not None:
            phases.set_postfix_str(f"{timing}, peer loop")
            torch.manual_seed(0)
            total, times = time_peer(peer_loop(cfg, case, device), WARMUP_STEPS, steps, device)
            peer_seconds += total
            peer_times += times
            round_ratios.append(statistics.median(times) / statistics.median(round_steps))
        if together is not None:  # never compiled; replayed as CUDA graphs when the single-seed loop is
            phases.set_postfix_str(f"{timing}, {together} seeds together")
            probe = StepProbe(warmup, steps, device, count_flops=False)
            try:
                with probe.attached():
                    case.train_seeds(probe.iterations, together, runtime)
            except (MemoryError, torch.OutOfMemoryError):
                raise ParamError(f"bench --seeds {together}: {paper}'s {together} seeds do not fit in {device.type} "
                                 "memory (give fewer)") from None
            together_times += probe.step_times()
    phases.update()

    compiled = None if compiled_before is None else {k: v - compiled_before[k] for k, v in compile_counters().items()}
    phases.set_postfix_str(f"the step's {len(kernel_calls)} FLOP kernels alone, fp32 matmul again")
    kernels_s = kernels_alone_seconds(kernel_calls, device)
    # The reference is the fastest this process ran the product: a dip at the first measurement (another process,
    # the machine's clock) read 37 against 67 GFLOP/s on an idle 2-core machine and a fraction of 1.45
    again = matmul_gflops(device)[1]
    mm_kernels = {name: max(gflops, again[name]) for name, gflops in mm_kernels.items()}
    mm_kernel = max(mm_kernels, key=mm_kernels.get)  # the fastest fp32 product this process can run
    mm_gflops = mm_kernels[mm_kernel]
    phases.update()

    n_fetch = max(steps, FETCH_MIN_BATCHES)
    phases.set_postfix_str(f"batch fetch ×{n_fetch}")
    index_us = fetch_index(case.x, case.y, case.batch_size, n_fetch, device)
    loader_us = fetch_dataloader(case.x, case.y, case.batch_size, n_fetch, device)
    phases.set_postfix_str("done")
    phases.update()
    phases.close()

    # The median step: other processes' load (a shared machine) stretches a few steps by orders of magnitude
    step_s = statistics.median(step_times)
    achieved = flops / step_s / 1e9
    peer = dict.fromkeys(("peer_ms_per_step", "peer_ms_per_step_mean", "peer_samples_per_s",
                          "peer_fraction_of_matmul", "peer_ratio", "peer_ratio_rounds"))
    if peer_times:
        peer_s = statistics.median(peer_times)
        peer = {"peer_ms_per_step": peer_s * 1e3, "peer_ms_per_step_mean": peer_seconds / len(peer_times) * 1e3,
                "peer_samples_per_s": case.samples_per_step / peer_s,
                "peer_fraction_of_matmul": flops / peer_s / 1e9 / mm_gflops, "peer_ratio": peer_s / step_s,
                "peer_ratio_rounds": round_ratios}
    seeds_result = dict.fromkeys(("seeds_ms_per_step", "seeds_samples_per_s", "seeds_speedup"))
    together_s = statistics.median(together_times) if together_times else None
    if together_s is not None:
        seeds_result = {"seeds_ms_per_step": together_s * 1e3,
                        "seeds_samples_per_s": together * case.samples_per_step / together_s,
                        "seeds_speedup": together * step_s / together_s}  # ÷ the same seeds one after another
    sweep = dict.fromkeys(("sweep", "sweep_runs", "sweep_steps_per_run", "sweep_hours", "sweep_hours_seeds_together"))
    if case.sweep is not None:  # a projection from the measured step (training steps only), never a measurement
        name, variants, n_seeds, per_run = case.sweep
        sweep = {"sweep": name, "sweep_runs": variants * n_seeds, "sweep_steps_per_run": per_run,
                 "sweep_hours": variants * n_seeds * per_run * step_s / 3600,
                 "sweep_hours_seeds_together": None if together_s is None else seeds_together_hours(
                     variants, n_seeds, per_run, together, together_s, step_s)}
    return {
        "paper": paper,
        "profile": profile,
        "case": case.label,
        "data": "synthetic",
        "steps": steps,
        "rounds": ROUNDS,
        "warmup_steps": warmup,  # (a replayed loop: one more than WARMUP_STEPS, its capture)
        "samples_per_step": case.samples_per_step,
        "ms_per_step": step_s * 1e3,
        "ms_per_step_mean": seconds / len(step_times) * 1e3,
        "samples_per_s": case.samples_per_step / step_s,
        "flops_per_step": int(flops),
        "gflops_per_s": achieved,
        "matmul_size": mm_size,
        "matmul_gflops_per_s": mm_gflops,
        "matmul_kernel": mm_kernel,
        "matmul_kernels_gflops_per_s": mm_kernels,
        "matmul_repeats": MATMUL_REPEATS,
        "fraction_of_matmul": achieved / mm_gflops,
        "fraction_of_torch_mm": achieved / mm_kernels["torch.mm"],  # the BLAS reference, for other machines
        # the step's FLOP-counted kernels alone (same shapes, nothing between them): the ceiling of the above
        "kernel_calls": len(kernel_calls),
        "kernel_repeats": KERNEL_REPEATS,
        "kernels_alone_ms": kernels_s * 1e3 if kernels_s is not None else None,
        "kernels_alone_fraction_of_matmul": flops / kernels_s / 1e9 / mm_gflops if kernels_s else None,
        "step_over_kernels_alone": step_s / kernels_s if kernels_s else None,
        # reads of tensor values into Python in one step (each a synchronisation on a GPU); None when compiled
        "host_reads_per_step": None if host_reads is None else host_reads.reads,
        "host_reads_where": None if host_reads is None else host_reads.where,
        "fetch_batches": n_fetch,
        "fetch_batch_size": case.batch_size,
        "fetch_index_us": index_us,
        "fetch_dataloader_us": loader_us,
        "fetch_speedup": loader_us / index_us,
        **peer,
        "cpu_kernels": cpu_kernels() if device.type == "cpu" else None,
        "seeds_together": together,
        **seeds_result,
        **sweep,
        "compile_counters": compiled,  # replab's loop under torch.compile: graphs made, CUDA graphs skipped
        # process-wide settings, the same for replab's loop and the peer's (rt.setup applies them to both)
        "run": {**rt.run_metadata(device, 0, "synthetic"), "tf32": runtime.tf32,
                "deterministic": runtime.deterministic,
                "compile": runtime.compile_mode if runtime.compile else False,  # replab's loop (attention_vat: eager)
                "cuda_graph": replayed,  # replab's loop replayed as CUDA graphs
                "keep_freed_memory": not process_defaults and rt.keep_freed_memory(),  # (idempotent)
                "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
                "load_avg_1m": _load_average(), "cpus": os.cpu_count()},
    }


ROWS = (  # (label, format) per result key
    ("case", "case", "{}"),
    ("replab's loop", "loop", None),
    ("replab's CPU kernels", "cpu_kernels", "{}"),
    ("load (1 min average)", "load", None),
    ("steps timed", "steps", "{rounds} × {} (+{warmup_steps} warm-up), replab's loop and the peer's each"),
    ("ms / step (median)", "ms_per_step", "{:.2f} (mean {ms_per_step_mean:.2f})"),
    ("samples / s", "samples_per_s", "{:,.0f}"),
    ("GFLOP / step", "flops_per_step", None),
    ("achieved GFLOP/s", "gflops_per_s", "{:,.1f}"),
    ("fp32 matmul GFLOP/s", "matmul_gflops_per_s",
     "{:,.1f} ({matmul_kernel} {matmul_size}², best of {matmul_repeats} before and {matmul_repeats} after the steps)"),
    ("fraction of matmul", "fraction_of_matmul", "{:.3g}"),
    ("torch.compile graphs", "compile_counters", "{graphs} (CUDA graphs skipped: {cudagraph_skips})"),
    ("its FLOP kernels alone ms", "kernels_alone_ms",
     "{:.2f} ({kernel_calls} calls, best of {kernel_repeats})"),
    ("  … fraction of matmul (ceiling)", "kernels_alone_fraction_of_matmul", "{:.3g}"),
    ("  … step ÷ kernels alone", "step_over_kernels_alone", "{:.2f}×"),
    ("host reads / step (GPU syncs)", "host_reads_per_step", None),
    ("peer loop ms / step (median)", "peer_ms_per_step", "{:.2f} (mean {peer_ms_per_step_mean:.2f})"),
    ("peer loop samples / s", "peer_samples_per_s", "{:,.0f}"),
    ("peer fraction of matmul", "peer_fraction_of_matmul", "{:.3g}"),
    ("replab ÷ peer (samples/s)", "peer_ratio", "{:.2f}×"),
    ("  … each round alone", "peer_ratio_rounds", None),
    ("seeds together ms / step", "seeds_ms_per_step",
     "{:.2f} ({seeds_together} seeds, {seeds_samples_per_s:,.0f} samples/s)"),
    ("  … speed-up over one seed after another", "seeds_speedup", "{:.2f}× (samples/s)"),
    ("sweep's training steps (projected)", "sweep_hours", "{:.2f} h ({sweep}: {sweep_runs} × {sweep_steps_per_run:,})"),
    ("  … seeds trained together", "sweep_hours_seeds_together", "{:.2f} h (groups of up to {seeds_together})"),
    ("fetch: index slice µs/batch", "fetch_index_us", "{:.1f}"),
    ("fetch: DataLoader µs/batch", "fetch_dataloader_us", "{:.1f}"),
    ("fetch speed-up", "fetch_speedup", "{:.1f}× ({fetch_batches} batches of {fetch_batch_size})"),
)


def cpu_kernels() -> str:
    """Which CPU kernels replab's loops take on this machine (`replab.functional`: decided by the CPU's vendor and
    PyTorch's BLAS, never a timing), so a table from another machine says what it compared: linear layers on
    oneDNN or on PyTorch's BLAS, tanh and the pixel BCE as sigmoid forms or PyTorch's own."""
    from replab import functional

    linear = "oneDNN linear" if functional.ONEDNN_LINEAR else "PyTorch's linear"
    elementwise = "sigmoid-form tanh/BCE" if functional.SIGMOID_FORMS else "PyTorch's tanh/BCE"
    return f"{linear}, {elementwise}"


def _load_average() -> float | None:
    """1-minute load average: CPU timings are only comparable on an otherwise idle machine (other processes'
    threads contending with torch's intra-op pool slow small steps by orders of magnitude)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not on every platform
        return None


def _device(result: dict) -> str:
    run = {"device": "?", "device_name": "?", "threads": "?", **result["run"]}  # (an older or damaged file: "?")
    return f"{run['device']} {rt.device_label(run)}, {run['threads']} threads"


class _Unknown:
    """A field an older bench's JSON lacks, in a cell's format ("{matmul_kernel}"): shown as "?"."""

    def __format__(self, spec: str) -> str:
        return "?"


class _Fields(dict):
    def __missing__(self, key: str) -> _Unknown:
        return _Unknown()


def _loop(result: dict) -> str:
    """How replab's loop ran: eager, through torch.compile, replayed as CUDA graphs (older files: eager or ?)."""
    run = result.get("run", {})
    parts = [f"torch.compile {run['compile']}"] if run.get("compile") else []
    parts += ["one CUDA graph per iteration"] if run.get("cuda_graph") else []
    return " + ".join(parts) or "eager"


def _cell(result: dict, key: str, fmt: str | None) -> str:
    if key == "loop":
        return _loop(result)
    if key == "load":  # host-wide, so against the host's cores (`cpus`: also another machine's, under --show)
        load, cores = result["run"].get("load_avg_1m"), result["run"].get("cpus")
        if load is None:
            return "–"
        busy = cores is not None and load > cores + BUSY_MARGIN
        return f"{load:.1f}" + (f" on {cores} cores" if cores else "") + " (incl. bench)" + f" {BUSY_MARK}" * busy
    if result.get(key) is None:  # not measured (no peer, no --seeds), or a file of an older bench without it
        return "–"
    if key == "flops_per_step":
        return f"{result[key] / 1e9:.4f}"
    if key == "compile_counters":
        return string.Formatter().vformat(fmt, (), _Fields(result[key]))
    if key == "host_reads_per_step":  # with the lines that read, most first
        where = sorted((result.get("host_reads_where") or {}).items(), key=lambda kv: -kv[1])
        return str(result[key]) + (f" ({', '.join(f'{n} {at}' for at, n in where)})" if where else "")
    if key == "peer_ratio_rounds":  # how far the ratio moved between the alternating rounds of this one run
        ratios = result[key]
        apart = len(ratios) > 1 and max(ratios) > ROUNDS_APART * min(ratios)
        return ", ".join(f"{ratio:.2f}×" for ratio in ratios) + (f" {ROUNDS_APART_MARK}" if apart else "")
    text = string.Formatter().vformat(fmt, (result[key],), _Fields(result))
    if key == "kernels_alone_fraction_of_matmul" and result[key] > 1:  # no ceiling: the reference is off
        text += f" {ABOVE_ONE_MARK}"  # explained below the table (`format_table`), not in a column-wide cell
    if (key == "fraction_of_matmul" and result.get("matmul_kernel", "torch.mm") != "torch.mm"
            and result.get("fraction_of_torch_mm") is not None):
        text += f" ({result['fraction_of_torch_mm']:.3g} of torch.mm)"  # where the BLAS is not the fastest
    return text


def format_table(results: list[dict]) -> str:
    """One column per paper; the device above the table when every paper ran on the same one, else a row."""
    devices = [_device(r) for r in results]
    one_device = len(set(devices)) == 1
    header = ["metric", *(r["paper"] for r in results)]
    shown = {"seeds_": "seeds_together", "compile_": "compile_counters",  # rows of an option: only when it ran
             "sweep_": "sweep", "sweep_hours_seeds": "sweep_hours_seeds_together"}
    rows = [[label, *(_cell(r, key, fmt) for r in results)] for label, key, fmt in ROWS
            if not any(key.startswith(p) and not any(r.get(k) for r in results) for p, k in shown.items())
            and (key != "loop" or any(_loop(r) != "eager" for r in results))]
    if not one_device:
        rows.insert(1, ["device", *devices])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    top = [f"device: {devices[0]}"] if one_device else []
    marks = ((BUSY_MARK, BUSY_NOTE), (ABOVE_ONE_MARK, ABOVE_ONE_NOTE), (ROUNDS_APART_MARK, ROUNDS_APART_NOTE))
    notes = [note for mark, note in marks if any(mark in cell for row in rows for cell in row[1:])]
    return "\n".join([*top, line(header), line(["-" * w for w in widths]), *map(line, rows), *notes])


def check_seeds_device(seeds: int, device) -> None:
    """ParamError unless `device` can train `seeds` seeds together (`replab.ensemble`: cpu or cuda)."""
    if device.type not in ("cpu", "cuda"):
        raise ParamError(f"bench --seeds {seeds}: seeds trained together run on cpu or cuda, not {device.type} "
                         "(runtime.device)")


def known_papers(papers: list[str]) -> list[str]:
    """`papers` once each, in order; a ParamError naming any that is not a paper."""
    from replab.papers import PAPERS

    if unknown := [p for p in papers if p not in PAPERS]:
        raise ParamError(f"bench: unknown paper {', '.join(map(repr, unknown))} (allowed: {', '.join(PAPERS)})")
    return list(dict.fromkeys(papers))  # a paper named twice is benchmarked once


def show(paths: list[str], papers: list[str] | None = None, markdown: bool = False) -> list[dict]:
    """`replab bench [paper …] --show A.json B.json …`: the results of earlier `--json` runs (other machines, other
    days: a CPU's and a GPU's, say) as one table, one column per paper (of `papers`, default all) and file, named
    by the path as given ("aae_ssl · bench-gpu/paper-eager.json"), each column's device named; a field an older
    bench did not write shows as "–" or "?". With `markdown`, README's table of step times instead
    (`format_step_times`: `papers` choose its rows). A file that is not such a result, or holds a value the table
    cannot show, is a DataError naming the file and the key; a run that stopped before its last paper, or in which
    papers failed, is said on stderr, and one that stopped before its first (bench writes its JSON at the start), or a
    result of a paper replab does not have, is left out with a line there (and below the Markdown table); none of
    `papers` in any file is a ParamError."""
    from replab.papers import PAPERS

    wanted = set(known_papers(papers or list(PAPERS)))
    results, by_file, notes = [], [], []

    def note(text: str) -> None:  # on stderr now, and below the Markdown table
        notes.append(text)
        print(f"bench --show: {text}", file=sys.stderr)

    for path in paths:
        if not Path(path).is_file():
            what = "not a file" if Path(path).exists() else "no such file"
            raise DataError(f"bench --show {path}: {what} (give JSON files written by `replab bench --json`)")
        data = read_json(path, expect=dict, remedy="write it with `replab bench --json`")
        for key in ("not_run", "failed"):  # lists where bench writes them (their items are shown as text)
            if data.get(key) is not None and not isinstance(data[key], list):
                raise DataError(f"{path}: {key} = {_short(data[key])}: not a value bench writes (a list; a hand "
                                "edit, or a file of another program)")
        found = data.get("results")
        if found == [] and data.get("complete") is False:  # a run stopped (timed out, failed) before its first paper
            note(f"{path}: no results (the run stopped before its first paper); left out")
            continue
        if not isinstance(found, list) or not found or not all(
                isinstance(r, dict) and isinstance(r.get("paper"), str) and isinstance(r.get("run"), dict)
                for r in found):
            raise DataError(f"{path}: not a `replab bench --json` file with results (a list of them, each with its "
                            "paper and run)")
        if data.get("complete") is False:
            left = ", ".join(map(str, data.get("not_run") or [])) or "its last paper"
            note(f"{path}: the run stopped before {left}")
        if failed := [str(f.get("paper")) for f in data.get("failed") or [] if isinstance(f, dict)]:
            note(f"{path}: failed in that run: {', '.join(failed)}")
        for i, result in enumerate(found):
            if result["paper"] not in PAPERS:  # (a hand edit, or a paper this checkout does not have)
                note(f"{path}: results[{i}] is of {result['paper']!r}, not a paper of replab; left out")
            if result["paper"] not in wanted:
                continue
            # the path as given: two machines' .ci/gpu-bench folders hold files of the same names
            result = {**result, "paper": f"{result['paper']} · {path}"}
            # every field the step-time table reads, then every cell this file gives: a damaged value names itself
            if (bad := (_step_time_fault(result) if markdown else None) or _cell_fault(result)) is not None:
                raise DataError(f"{path}: results[{i}].{bad} = {_short(result.get(bad))}: not a value bench writes "
                                "(a hand edit, or a file of another program)")
            results.append(result)
            by_file.append((path, found[i]))
    if not results:
        raise ParamError(f"bench --show: no results of {', '.join(sorted(wanted))} in {', '.join(paths)}")
    print(format_step_times(by_file, notes) if markdown else format_table(results))
    return results


def _positive(value: Any) -> bool:
    """A finite JSON number > 0 (`io.finite`: not a boolean, nor an integer beyond a float)."""
    return (number := finite(value)) is not None and number > 0


def _cell_fault(result: dict) -> str | None:
    """The key of the first row of the wide table (ROWS) whose cell `result` cannot give, or None."""
    for _, key, fmt in ROWS:
        try:
            _cell(result, key, fmt)
        except (KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError):
            return key
    return None


def _step_time_fault(result: dict) -> str | None:
    """The first key `format_step_times` reads from `result` that holds no value bench writes, or None: the step
    always, the optional ratio, seeds and sweep fields as a group where present (each a finite number > 0, counts
    and the sweep's name as such), and the case (a string) where present."""
    if not _positive(result.get("ms_per_step")):
        return "ms_per_step"
    for key in ("peer_ratio", "seeds_ms_per_step", "sweep_hours", "sweep_hours_seeds_together"):
        if result.get(key) is not None and not _positive(result[key]):
            return key
    if result.get("seeds_ms_per_step") is not None and not _positive(result.get("seeds_together")):
        return "seeds_together"
    if result.get("sweep_hours") is not None:
        if not isinstance(result.get("sweep"), str):
            return "sweep"
        for key in ("sweep_runs", "sweep_steps_per_run"):
            if not _positive(result.get(key)):
                return key
    if result.get("case") is not None and not isinstance(result["case"], str):
        return "case"
    return None


def format_step_times(entries: list[tuple[str, dict]], notes: list[str] = ()) -> str:
    """README's table of measured step times, in Markdown, from (file, result) pairs whose fields passed
    `_step_time_fault`: a row per paper (its case as in the first file that has it: "?" if none says), a column
    per file (its device, sizes and how replab's loop ran: eager, replayed as CUDA graphs, compiled), each cell the
    median training step in ms, its samples/s over the peer loop's where the run had one, and the step of the seeds
    trained together where it timed them; a case other than the row's is named in its cell; a paper a file
    holds twice (a hand edit) shows its first result. Below, a row per projected sweep (paper, sweep, runs × steps
    per run): the training steps' hours, one seed after another and seeds together; then `notes` (runs that stopped
    early or whose papers failed), a line each. Text from the files is escaped for Markdown's table cells."""
    files = list(dict.fromkeys(path for path, _ in entries))
    papers = list(dict.fromkeys(result["paper"] for _, result in entries))
    found: dict[tuple[str, str], dict] = {}
    for path, result in entries:
        found.setdefault((path, result["paper"]), result)

    from replab.report import md_cell  # (a cell's text: one line, no column separator)

    def head(r: dict) -> str:
        sizes = f"{r['profile']} sizes" if r.get("profile") else "params.yaml's sizes"
        return f"{_device(r)}, {sizes}, {_loop(r)}"

    def cell(result: dict | None, case: str) -> str:
        if result is None:
            return "–"
        line = f"{result['ms_per_step']:.2f} ms"
        if result.get("peer_ratio") is not None:
            line += f", {result['peer_ratio']:.2f}× the peer"
        if result.get("seeds_ms_per_step") is not None:
            line += f"; {result['seeds_together']} seeds together {result['seeds_ms_per_step']:.2f} ms"
        own = md_cell(result.get("case") or "?")  # (compared as the row shows it)
        return line + (f" ({own})" if own != case else "")

    def hours(h: float) -> str:  # hundredths, or two significant digits below them (a smoke profile's sweep)
        return f"{h:.2f} h" if h >= 0.01 else f"{h:.2g} h"

    def sweep_cell(r: dict) -> str:
        together = r.get("sweep_hours_seeds_together")
        return hours(r["sweep_hours"]) + (f", {hours(together)} seeds together" if together is not None else "")

    heads = {path: next(head(r) for p, r in entries if p == path) for path in files}
    lines = ["| paper (case) | " + " | ".join(f"{md_cell(heads[f])} (`{md_cell(f)}`)" for f in files) + " |",
             "|---|" + "---|" * len(files)]
    for paper in papers:
        case = md_cell(next(found[f, paper].get("case") or "?" for f in files if (f, paper) in found))
        lines.append(f"| {paper} ({case}) | " + " | ".join(cell(found.get((f, paper)), case) for f in files) + " |")
    sweeps: dict[tuple, dict[str, dict]] = {}  # (paper, sweep, runs, steps per run) → {file: result}
    for (path, paper), result in found.items():
        if result.get("sweep_hours") is not None:
            what = (paper, md_cell(result["sweep"]), result["sweep_runs"], result["sweep_steps_per_run"])
            sweeps.setdefault(what, {})[path] = result
    for (paper, sweep, runs, steps), by_path in sweeps.items():
        lines.append(f"| {paper}, {sweep}: training steps projected ({runs:,} × {steps:,}) | "
                     + " | ".join(sweep_cell(by_path[f]) if f in by_path else "–" for f in files) + " |")
    return "\n".join([*lines, *(["", *(f"- {md_cell(note)}" for note in notes)] if notes else [])])


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:40] + "…"


def _holds_results(path: str) -> bool:
    """Whether the file at `path` is a bench JSON holding measured results (which a run measuring none keeps)."""
    try:
        return bool(read_json(path).get("results"))
    except Exception:  # missing, unreadable, not JSON or not an object: nothing measured to keep
        return False


def main(papers: list[str], steps: int, profile: str | None = None, json_path: str | None = None,
         process_defaults: bool = False, compile_mode: str | None = None, seeds: int | None = None,
         cuda_graph: bool = False) -> list[dict]:
    """Benchmark each paper in turn; one line for a paper without a benchmark; then one table on stdout (and
    the results as JSON at `json_path`, written at the start and after every paper: `complete` false and the papers
    `not_run` until the last; never over an earlier run's results with none, so a run that measures nothing, killed
    or failed, keeps such a file as it was). An unknown paper, `steps` outside 1 … MAX_STEPS, `seeds` outside
    2 … MAX_SEEDS or for none of the papers, a bad key or value in any named paper's params, an absent
    `runtime.device`, or a `json_path` that cannot be written is a ParamError before anything runs; bad input that
    shows only while a paper runs (its `--seeds` beyond the device's memory) is one after the table and JSON of
    what ran before it. A paper that fails, or a JSON write that fails midway (the papers after it are not run), is
    a PartialFailure after the table of what ran."""
    papers = known_papers(papers)
    if not 1 <= steps <= MAX_STEPS:
        raise ParamError(f"bench --steps {steps}: allowed: 1 … {MAX_STEPS} (timed steps per round)")
    if seeds is not None and not 2 <= seeds <= MAX_SEEDS:
        raise ParamError(f"bench --seeds {seeds}: allowed: 2 … {MAX_SEEDS} (seeds of one variant trained together)")
    if seeds is not None and compile_mode is not None:
        raise ParamError(f"bench --seeds with --compile {compile_mode}: seeds trained together are never compiled, "
                         "so their step would be compared with a compiled one; give one of the two")
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ParamError(f"bench --compile {compile_mode}: unknown mode (allowed: {', '.join(COMPILE_MODES)})")
    if cuda_graph and compile_mode in GRAPH_COMPILE_MODES:
        raise ParamError(f"bench --cuda-graph with --compile {compile_mode}: both capture CUDA graphs and one "
                         "cannot hold the other (allowed with --cuda-graph: --compile "
                         f"{', '.join(GRAPHLESS_COMPILE_MODES)}, or none)")
    if cuda_graph and not set(papers) & set(CUDA_GRAPH_PAPERS):
        raise ParamError(f"bench --cuda-graph: none of {', '.join(papers)} replays its training step as a CUDA graph "
                         f"(allowed with: {', '.join(CUDA_GRAPH_PAPERS)})")
    if seeds is not None and not set(papers) & set(SEEDS_TOGETHER):
        raise ParamError(f"bench --seeds {seeds}: none of {', '.join(papers)} trains seeds together (allowed with: "
                         f"{', '.join(SEEDS_TOGETHER)})")
    if json_path is not None:
        check_writable(json_path, "bench --json")
    params = profile_params(profile)
    # every named paper's params, the device and --seeds' device before any paper runs
    runtime = bench_runtime(params, compile_mode, cuda_graph, seeds)
    device = rt.choose_device(runtime.device)
    if seeds is not None:
        check_seeds_device(seeds, device)
    for paper in papers:
        try:
            load_section(find_case(paper)[0].Config, paper, params=params)
        except NoBenchmark:
            pass  # said when its turn comes
    results, failed, skipped = [], [], []
    kept = json_path is not None and _holds_results(json_path)  # an earlier run's: replaced only by measurements

    def save(not_run: list[str]) -> str | None:
        """The JSON of what ran so far, naming the papers not run yet (`complete` once none is left), so that a
        run killed midway leaves a file that says so; the reason it could not be written, or None."""
        if kept and not results:
            return None
        try:
            write_json(json_path, {"profile": profile, "steps": steps, "complete": not not_run, "not_run": not_run,
                                   "results": results, "failed": failed, "skipped": skipped})
        except OSError as err:  # e.g. a full disk mid-run: the table of what ran still comes below
            return f"{json_path}: cannot be written ({err.strerror or err})"
        return None

    json_error = save(papers) if json_path is not None else None  # (replaces an older run's file at once)
    for i, paper in enumerate(papers):
        if json_error is not None:
            json_error += f"; stopped before {', '.join(papers[i:])}"
            break
        try:
            results.append(run_bench(paper, steps, params, profile, process_defaults, compile_mode, seeds,
                                     cuda_graph))
        except NoBenchmark as err:  # (no case, or none for this option): said, and named in the JSON
            print(err, flush=True)
            skipped.append({"paper": paper, "reason": str(err)})
        except (ParamError, DataError):  # bad input found only now (--seeds beyond the memory): the one-line error,
            if results:                     # after the table of what ran and a JSON that keeps it
                print(format_table(results), flush=True)
            if json_path is not None:
                save(papers[i:])
            raise
        except Exception as err:  # one paper's failure (e.g. on a device its loop was never run on) stops no other
            if (message := out_of_memory(err, paper)) is not None:  # sizes in params.yaml: one line, as train says
                failed.append({"paper": paper, "error": message})
                print(f"bench {paper}: {message}; going on with the others", file=sys.stderr, flush=True)
            else:  # a bug: its traceback
                traceback.print_exc()
                failed.append({"paper": paper, "error": f"{type(err).__name__}: {' '.join(str(err).split())}"})
                print(f"bench {paper}: failed ({failed[-1]['error'][:300]}); going on with the others",
                      file=sys.stderr, flush=True)
        if json_path is not None:  # after every paper: a later failure or a kill loses none of these
            json_error = save(papers[i + 1:])
    if results:
        if profile is not None:
            print(f"profile: {profile}")
        if compile_mode is not None:
            print(f"replab's loop through torch.compile, mode {compile_mode} (the peer's eager)")
        if rt.cuda_graph_on(runtime, device):
            replayed = [r["paper"] for r in results if r["run"].get("cuda_graph")] or ["none of these papers"]
            print(f"replab's loop replayed as one CUDA graph per iteration: {', '.join(replayed)} (the others' and the "
                  "peers' eager)")
        elif runtime.cuda_graph:
            print(f"runtime.cuda_graph: no effect on {device.type} (CUDA graphs need a CUDA device)")
        print(format_table(results))
    problems = [f"bench --json {json_error}"] if json_error is not None else []
    if failed:
        memory = [f["error"].startswith("out of memory") for f in failed]  # the rest printed a traceback
        names = [f"{f['paper']} (out of memory)" if oom else f["paper"] for f, oom in zip(failed, memory, strict=True)]
        unwritten = kept and not results
        notes = (["tracebacks above"] * (not all(memory))
                 + ["the JSON lists them"] * (json_path is not None and json_error is None and not unwritten)
                 + [f"{json_path} kept: it holds an earlier run's results, this run measured none"] * unwritten)
        problems.append(f"bench: {len(failed)} paper(s) failed: {', '.join(names)}"
                        + (f" ({'; '.join(notes)})" if notes else ""))
    if problems:
        raise PartialFailure("; ".join(problems))
    return results
