"""Shared training helpers of replab.runtime against the PyTorch calls they stand in for."""

from __future__ import annotations

import math
import os
import platform
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
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC or "malloc" in os.environ.get("LD_PRELOAD", ""),
                    reason="glibc's own malloc (mallopt)")
def test_keep_freed_memory_lets_a_per_step_buffer_reuse_its_pages():
    """By default a 64 MB buffer is a fresh mmap every step (its pages fault in each time; glibc adapts its
    threshold only up to 32 MB); with keep_freed_memory the freed block is reused. (A ratio, not a page count:
    with transparent huge pages a step faults 32 pages instead of 16k.)"""
    env = {k: v for k, v in os.environ.items() if k not in rt.MALLOC_ENV}

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS_PROBE, mode], capture_output=True, text=True, check=True,
                             env=env)
        return int(out.stdout.strip())

    default = faults("default")
    assert default >= 10  # the reason for the setting: every step faults its buffer in again
    assert faults("keep") * 20 <= default


class FakeLibc:
    """libc.mallopt that takes an mmap threshold up to `max_mmap` bytes (older glibc: 32 MiB) and records calls."""

    def __init__(self, max_mmap: int):
        self.calls = []

        def mallopt(param: int, value: int) -> int:  # a function: keep_freed_memory sets its argtypes
            self.calls.append((param, value))
            return int(param != -3 or value <= max_mmap)
        self.mallopt = mallopt


@pytest.mark.skipif(not GLIBC, reason="glibc")
@pytest.mark.parametrize("max_mmap, expected", [
    (1 << 40, [(-3, 256 << 20), (-1, 512 << 20)]),
    (32 << 20, [(-3, 256 << 20), (-3, 32 << 20), (-1, 512 << 20)]),  # older glibc: the 32 MiB it allows
    (0, [(-3, 256 << 20), (-3, 32 << 20)]),  # no mmap threshold taken: no trim threshold alone either
])
def test_keep_freed_memory_falls_back_to_what_glibc_allows(monkeypatch, max_mmap, expected):
    import ctypes

    libc = FakeLibc(max_mmap)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    for name in rt.MALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert rt.keep_freed_memory() is (max_mmap > 0)
    assert libc.calls == expected


@pytest.mark.skipif(not GLIBC, reason="glibc")
@pytest.mark.parametrize("name, value", [("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0"),
                                         ("MALLOC_MMAP_THRESHOLD_", "131072"),
                                         ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")])
def test_keep_freed_memory_leaves_a_users_malloc_settings_alone(monkeypatch, name, value):
    import ctypes

    libc = FakeLibc(1 << 40)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    monkeypatch.setenv(name, value)
    assert rt.keep_freed_memory() is False
    assert libc.calls == []


THREADS_PROBE = """
import json
from threadpoolctl import threadpool_info
import torch
from replab import runtime as rt
from replab.params import Runtime
before = [i["num_threads"] for i in threadpool_info()]
rt.setup(Runtime(device="cpu", progress=False, threads=1), 0)
import scipy.linalg, sklearn.cluster, sklearn.mixture  # pools loaded after setup, as an evaluation loads them
after = [(i["user_api"], i["filepath"], i["num_threads"]) for i in threadpool_info()]
print(json.dumps({"before": before, "after": after, "torch": torch.get_num_threads()}))
"""


def test_runtime_threads_hold_for_every_cpu_thread_pool_also_those_loaded_later():
    """`runtime.threads` (and a queued run's share of the CPUs) limited torch's pool alone: numpy's and scipy's
    OpenBLAS and scikit-learn's OpenMP still started a thread per CPU, beside the queue's other runs."""
    import json

    if rt.available_cpus() < 2:
        pytest.skip("one CPU: every pool has one thread anyway, the check could not fail")
    env = {k: v for k, v in os.environ.items() if k not in rt.THREAD_POOL_ENV}
    probe = subprocess.run([sys.executable, "-c", THREADS_PROBE], env=env, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert max(result["before"]) > 1  # numpy's OpenBLAS before setup: a thread per CPU
    assert result["torch"] == 1
    assert {api for api, _, _ in result["after"]} >= {"blas", "openmp"}
    assert [path for _, path, n in result["after"] if n != 1] == []


@pytest.mark.parametrize("compile_", [False, True])
def test_setup_keeps_deterministic_algorithms_without_the_nan_fill_of_new_tensors(compile_):
    from replab.params import Runtime

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        rt.setup(Runtime(device="cpu", deterministic=True, compile=compile_, progress=False, threads=1), 0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        # a freed tensor of ones: a later allocation of that size usually takes its memory (ones, or NaN if
        # filled); malloc may hand back another freed block first (an earlier NaN fill), so a few tries
        unfilled = []
        for _ in range(10):
            torch.ones(4096)
            unfilled.append(not torch.empty(4096).isnan().all())
        assert any(unfilled)
        torch.utils.deterministic.fill_uninitialized_memory = True  # what the setting saves: a fill per allocation
        assert torch.empty(4096).isnan().all()
    finally:
        torch.set_num_threads(threads)
        torch._C._set_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def tensors_of(result) -> list[torch.Tensor]:
    """Every tensor a training function returned: modules by their state_dict, containers recursively."""
    if isinstance(result, torch.Tensor):
        return [result.detach()]
    if isinstance(result, torch.nn.Module):
        return tensors_of(result.state_dict())
    if isinstance(result, dict):
        return [t for v in result.values() for t in tensors_of(v)]
    if isinstance(result, (list, tuple)):
        return [t for v in result for t in tensors_of(v)]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("paper", ["aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat"])
def test_runtime_compile_trains_through_torch_compile_with_the_eager_numbers(paper):
    """`runtime.compile: true` compiles the models every paper trains (attention_vat says, once, that it trains
    eagerly), and 3 compiled steps at the quick profile's sizes (bench's synthetic case) give the eager weights
    to float rounding. (censor and attention_vat once ignored the param silently.)"""
    import dataclasses
    import warnings

    import yaml
    from torch._dynamo.utils import counters

    from conftest import REPO
    from replab.bench import find_case
    from replab.params import Runtime, load_section

    module, setup = find_case(paper)
    cfg = load_section(module.Config, paper, params=yaml.safe_load((REPO / "params.yaml").read_text()))
    if paper == "aae_ssl":
        # BatchNorm cancels the bias of the layer before it: that bias's gradient is zero up to rounding, which Adam
        # turns into ±lr steps whose signs the two paths draw differently: compared without it
        cfg = dataclasses.replace(cfg, batchnorm=False)
    results = {}
    for compile_ in (False, True):
        runtime = Runtime(device="cpu", threads=2, progress=False, compile=compile_)
        device = rt.setup(runtime, 0)
        torch._dynamo.reset()
        counters.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results[compile_] = tensors_of(setup(cfg, device).train(3, runtime))
        graphs = counters["stats"]["unique_graphs"]
        said_eager = any("trains eagerly, without runtime.compile" in str(w.message) for w in caught)
        if paper == "attention_vat":
            assert (graphs, said_eager) == (0, compile_)
        else:
            assert (graphs > 0, said_eager) == (compile_, False)
    eager, compiled = results[False], results[True]
    assert len(eager) == len(compiled) > 0
    for a, b in zip(eager, compiled):
        if a.is_floating_point():
            # Adam turns a near-zero gradient's rounding into an update of up to lr (≤ 3e-3 here) per step: a rare
            # weight may differ by more than the rest; every one stays within 3 such steps
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-2)
            off = ~torch.isclose(b, a, rtol=1e-4, atol=1e-4)
            assert off.sum() <= max(1, off.numel() // 1000), f"{int(off.sum())} of {off.numel()} weights differ"
        else:
            assert torch.equal(a, b)


def test_run_block_names_the_cpu_model_and_its_simd_level(tmp_path):
    """CPU results differ between SIMD levels (AVX2 vs AVX512 rounding) for the same seed: the run block says
    which the run had. `platform.processor()` is empty on Linux, so the name comes from /proc/cpuinfo."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: avx2\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
    assert rt.cpu_name(cpuinfo) == "AMD EPYC 7B13"
    assert rt.cpu_name(tmp_path / "missing") == (platform.processor() or platform.machine())
    assert (rt.cpu_vendor(cpuinfo), rt.cpu_vendor(tmp_path / "missing")) == ("AuthenticAMD", "")
    meta = rt.run_metadata(torch.device("cpu"), seed=0, data_source="synthetic")
    assert meta["device_name"] == rt.cpu_name() and meta["device_name"]
    assert meta["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert rt.device_label(meta) == f"{meta['device_name']}, {meta['cpu_capability']}"
    assert rt.device_label({**meta, "device": "cuda", "device_name": "NVIDIA H200"}) == "NVIDIA H200"


def adam_and_rmsprop_runs(make_optimizer) -> list[torch.Tensor]:
    """Three steps of each optimizer setting the papers use on one small model; the weights and state after."""
    out = []
    for cls, kwargs in [(torch.optim.Adam, {"lr": 1e-2, "betas": (0.1, 0.999), "fused": True}),
                        (torch.optim.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-4}),
                        (torch.optim.RMSprop, {"lr": 1e-3})]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
        x = torch.randn(16, 5)
        opt = make_optimizer(cls, model.parameters(), **kwargs)
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            opt.step()
        state = opt.state_dict()
        opt.load_state_dict(state)
        out += [*model.parameters(), *(t for s in state["state"].values() for t in s.values())]
    return out


OPTIMIZER_PROBE = """
import sys, torch
from replab import runtime as rt
sys.path.insert(0, sys.argv[1])
from test_runtime import adam_and_rmsprop_runs
ours = adam_and_rmsprop_runs(rt.optimizer)
print("torch._dynamo" in sys.modules)
theirs = adam_and_rmsprop_runs(lambda cls, params, **kw: cls(params, **kw))
print(all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)))
"""


def test_optimizer_is_pytorchs_without_importing_torch_dynamo():
    """`rt.optimizer(torch.optim.X, …)` gives PyTorch's weights and state bit for bit (fused, amsgrad + weight
    decay, RMSprop; state_dict round trip) without importing torch._dynamo, whose import is seconds of every
    training process's start-up; PyTorch's own optimizer imports it on its first use, which the probe shows."""
    out = subprocess.run([sys.executable, "-c", OPTIMIZER_PROBE, os.path.dirname(__file__)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    opt = rt.optimizer(torch.optim.Adam, [torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    assert isinstance(opt, torch.optim.Adam) and type(opt).__name__ == "Adam"
    with pytest.raises(ValueError, match="Invalid learning rate"):
        rt.optimizer(torch.optim.Adam, [torch.nn.Parameter(torch.zeros(2))], lr=-1.0)


TRAINING_PROBE = """
import sys, yaml
from pathlib import Path
from replab import runtime as rt
from replab.bench import find_case
from replab.params import Runtime, load_section
params = yaml.safe_load(Path(sys.argv[1]).read_text())
runtime = Runtime(device="cpu", threads=1, progress=False)
for paper in sys.argv[2:]:
    module, setup = find_case(paper)
    setup(load_section(module.Config, paper, params=params), rt.setup(runtime, 0)).train(2, runtime)
    print(paper, "torch._dynamo" in sys.modules)
"""


@pytest.mark.slow
def test_no_paper_training_imports_torch_dynamo():
    """Two training steps of every paper (bench's case: the paper's own step and optimizers) leave torch._dynamo
    unimported: a paper that builds `torch.optim.X(…)` directly pays its import at start-up again."""
    from conftest import REPO
    from replab.papers import PAPERS

    out = subprocess.run([sys.executable, "-c", TRAINING_PROBE, str(REPO / "params.yaml"), *PAPERS],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [f"{paper} False" for paper in PAPERS]


def fake_proc(root, tree: dict[int, tuple[int, list[str]]]):
    """A /proc of {pid: (ppid, argv)}: `stat` as Linux writes it (the command name in parentheses may hold spaces
    and parentheses) and NUL-separated `cmdline`."""
    for pid, (ppid, argv) in tree.items():
        (root / str(pid)).mkdir()
        (root / str(pid) / "stat").write_text(f"{pid} (py (x) y) S {ppid} {pid} {pid} 0 -1 4194560 0 0\n")
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / "self").mkdir()  # not a process
    return root


def worker(node: str) -> list[str]:
    return ["/venv/bin/python3", "/venv/bin/dvc", "exp", "queue-worker", node]


def queue_start(*jobs: str) -> list[str]:  # the forked daemon of `dvc queue start` keeps its command line
    return ["/venv/bin/python3", "/venv/bin/dvc", "queue", "start", *jobs]


@pytest.mark.parametrize("starter, jobs", [(queue_start("-j", "2"), 2), (queue_start("--jobs=3"), 3),
                                           (queue_start("-j4"), 4), (queue_start(), 1),
                                           (queue_start("-j=2"), 2), (queue_start("--job", "2"), 2),
                                           (queue_start("--jo=3"), 3), (queue_start("-j", "2", "--jobs", "3"), 3),
                                           (queue_start("-j", "0"), 0), (queue_start("-j"), 0),
                                           (["dvc", "exp", "run", "--run-all", "--jobs", "2"], 2),
                                           (queue_start("-j", "²"), 0), (["bash"], 0)])
def test_dvc_queue_jobs_reads_the_n_of_the_queue_a_stage_runs_under(tmp_path, monkeypatch, starter, jobs):
    """The chain DVC 3 runs a queued stage in: `dvc queue start -j N`'s daemon → worker → `dvc exp exec-run` → the
    stage. The queue's N, however many workers are alive (an idle one exits only at DVC's next poll: counting
    them made a lone queued run's threads, and so its rounding, a race); 0 for a parent that is no DVC command."""
    monkeypatch.setattr(os, "getpid", lambda: 40)
    tree = {9: (1, starter), 10: (9, worker("dvc-exp-1dca85-1@localhost")),
            30: (10, ["/venv/bin/python3", "/venv/bin/dvc", "exp", "exec-run", "--infofile", "x.run"]),
            40: (30, ["python", "src/replab", "train", "aae_ssl", "ae-100-0"])}
    assert rt.dvc_queue_jobs(fake_proc(tmp_path, tree)) == jobs


def test_dvc_queue_jobs_is_0_outside_a_queue_worker_and_where_it_cannot_tell(tmp_path, monkeypatch):
    tree = {9: (1, queue_start("-j", "2")), 10: (9, worker("dvc-exp-1dca85-1@localhost")),
            50: (1, ["bash"]), 51: (50, ["python", "src/replab", "train"]),  # `dvc repro` beside the queue
            60: (9, ["grep", "exp", "queue-worker", "foo"]), 61: (60, ["python"]),  # no worker node: not DVC's
            70: (71, ["python"]), 71: (70, ["python"])}  # a loop in the parent chain
    proc = fake_proc(tmp_path, tree)
    (proc / "10" / "stat").write_bytes(b"10 (dvc \xff) S 9 0 0\n")  # comm bytes need not be UTF-8
    for pid, expected in [(51, 0), (61, 0), (70, 0)]:
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        assert rt.dvc_queue_jobs(proc) == expected
    monkeypatch.setattr(os, "getpid", lambda: 10)
    assert rt.dvc_queue_jobs(str(proc)) == 2  # a path as str works too
    assert rt.dvc_queue_jobs(tmp_path / "absent") == 0  # no /proc (macOS, Windows)


@pytest.mark.parametrize("cpus, jobs, threads", [(2, 0, 2), (2, 1, 2), (2, 2, 1), (2, 3, 1), (16, 3, 5)])
def test_default_threads_share_the_cpus_among_the_queue_workers(monkeypatch, cpus, jobs, threads):
    monkeypatch.setattr(rt, "available_cpus", lambda: cpus)
    monkeypatch.setattr(rt, "dvc_queue_jobs", lambda: jobs)
    assert rt.default_threads() == threads


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stages_of_experiments_queued_by_hand_see_their_queues_n(tmp_path):
    """Two experiments queued by hand and `dvc queue start -j 2` (README's example), against real DVC: each
    stage finds the queue's 2; `dvc repro` in the workspace 0."""
    import json

    from conftest import REPO, sh, stop_queue

    (tmp_path / "probe.py").write_text(f"import json, sys\nsys.path.insert(0, {str(REPO / 'src')!r})\n"
                                       "from replab.runtime import dvc_queue_jobs\n"
                                       "json.dump({'jobs': dvc_queue_jobs()}, open('w.json', 'w'))\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  probe:\n    cmd: python probe.py\n    deps: [probe.py]\n"
                                       "    params: [x]\n    metrics: [{w.json: {cache: false}}]\n")
    (tmp_path / "params.yaml").write_text("x: 1\n")
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "dvc", "repro")
    assert json.loads((tmp_path / "w.json").read_text()) == {"jobs": 0}
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "probe")
    for x in (2, 3):
        sh(tmp_path, "dvc", "exp", "run", "--queue", "-S", f"x={x}", "-n", f"q{x}")
    try:
        sh(tmp_path, "dvc", "queue", "start", "-j", "2", detached=True)
        from test_isolation import wait_done

        assert [wait_done(tmp_path, f"q{x}", timeout=300) for x in (2, 3)] == ["Success", "Success"]
        shown = json.loads(sh(tmp_path, "dvc", "exp", "show", "--json").stdout)
        found = {r["name"]: r["data"]["metrics"]["w.json"]["data"]["jobs"]
                 for c in shown for e in c.get("experiments") or [] for r in e["revs"] if r.get("name")}
        assert found == {"q2": 2, "q3": 2}, found
    finally:
        stop_queue(tmp_path)
