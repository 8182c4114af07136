"""`replab bench`: one short run of aae_ssl on synthetic data against the repository's params.yaml."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import REPO
from replab import bench
from replab import runtime as rt

NUMBERS = ("ms_per_step", "samples_per_s", "flops_per_step", "gflops_per_s", "matmul_gflops_per_s",
           "fraction_of_matmul", "fetch_index_us", "fetch_dataloader_us", "fetch_speedup")


@pytest.fixture
def in_repo(monkeypatch):
    """Repository root (its params.yaml), with torch on one CPU thread: on a busy machine (parallel dvc
    stages, other tests) a 2-thread intra-op pool waits on descheduled threads and a step takes seconds."""
    monkeypatch.chdir(REPO)
    setup, threads_before = rt.setup, torch.get_num_threads()

    def one_thread(runtime, seed):
        device = setup(runtime, seed)
        torch.set_num_threads(1)
        return device

    monkeypatch.setattr(rt, "setup", one_thread)
    yield
    torch.set_num_threads(threads_before)


def test_bench_aae_ssl_reports_throughput_flops_and_fetch(in_repo):
    result = bench.run_bench("aae_ssl", steps=3)
    assert result["paper"] == "aae_ssl"
    assert result["steps"] == 3 and result["warmup_steps"] == bench.WARMUP_STEPS
    assert result["data"] == "synthetic"
    for key in NUMBERS:
        value = result[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)
    # one AAE(y,z) step is ≈1.2 GFLOP at hidden 256 (quick profile); a miscount would be off by far more
    assert result["flops_per_step"] > 1e8
    assert result["run"]["data_source"] == "synthetic"

    table = bench.format_table([result])
    assert table.splitlines()[0].split() == ["metric", "aae_ssl"]
    assert "fraction of matmul" in table


def test_unknown_or_unsupported_paper_prints_one_line(in_repo, capsys):
    assert bench.main(["no_such_paper"], 3) == []
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("no benchmark for no_such_paper")
    with pytest.raises(bench.NoBenchmark, match="no benchmark for no_such_paper"):
        bench.run_bench("no_such_paper", 3)


def test_bench_censor_runs_the_sct_loop(in_repo):
    result = bench.run_bench("censor", steps=2)
    assert result["paper"] == "censor" and result["case"].startswith("SCT")
    assert result["ms_per_step"] > 0 and result["flops_per_step"] > 0


def test_bench_numbers_from_a_toy_case_and_a_fake_clock(in_repo, monkeypatch):
    """A loop of one (8 × 16) @ (16 × 4) matmul per step (2·8·16·4 = 1,024 FLOPs) and a clock that advances 1 ms
    per reading: every number bench derives is known by hand, independent of the machine's speed."""
    from types import SimpleNamespace

    from replab.papers import censor

    steps_run = []

    def toy_setup(cfg, device):
        a, b = torch.ones(8, 16), torch.ones(16, 4)

        def train(iterations, runtime):
            for _ in rt.progress(range(iterations)):
                torch.mm(a, b)
                steps_run.append(1)

        return bench.BenchCase(label="toy", samples_per_step=8, train=train, x=torch.zeros(64, 3),
                               y=torch.zeros(64), batch_size=8)

    ticks = iter(range(10_000))
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 1e-3))
    monkeypatch.setattr(bench, "find_case", lambda paper: (censor, toy_setup))
    result = bench.run_bench("censor", steps=4)
    assert len(steps_run) == bench.WARMUP_STEPS + 4 + 1  # warm-up, timed steps, the untimed final step
    assert result["flops_per_step"] == 2 * 8 * 16 * 4  # one step's FLOPs, not the loop's
    assert result["ms_per_step"] == pytest.approx(1.0 / 4)  # t1 − t0 = one tick (1 ms) over 4 steps
    assert result["samples_per_s"] == pytest.approx(8 / 0.25e-3)
    assert result["matmul_gflops_per_s"] == pytest.approx(2 * 1024**3 / 1e-3 / 1e9)  # best of one-tick repeats
    assert result["fraction_of_matmul"] == pytest.approx((1024 / 0.25e-3) / (2 * 1024**3 / 1e-3))
    n = result["fetch_batches"]
    assert n == bench.FETCH_MIN_BATCHES and result["fetch_index_us"] == pytest.approx(1e3 / n)
