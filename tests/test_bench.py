"""`replab bench`: one short run of aae_ssl on synthetic data against the repository's params.yaml."""

from __future__ import annotations

import math
import os
import re
import warnings

import pytest
import torch

from conftest import REPO
from replab import bench
from replab import runtime as rt

NUMBERS = ("ms_per_step", "samples_per_s", "flops_per_step", "gflops_per_s", "matmul_gflops_per_s",
           "fraction_of_matmul", "fetch_index_us", "fetch_dataloader_us", "fetch_speedup", "peer_ms_per_step",
           "peer_samples_per_s", "peer_fraction_of_matmul", "peer_ratio", "kernel_calls", "kernels_alone_ms",
           "kernels_alone_fraction_of_matmul", "step_over_kernels_alone")
PAPERS_WITH_PEERS = ("aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat")


@pytest.fixture
def in_repo(monkeypatch):
    """Repository root (its params.yaml), with torch on one CPU thread: on a busy machine (parallel dvc
    stages, other tests) a 2-thread intra-op pool waits on descheduled threads and a step takes seconds."""
    monkeypatch.chdir(REPO)
    setup, threads_before = rt.setup, torch.get_num_threads()

    def one_thread(runtime, seed, **kwargs):
        device = setup(runtime, seed, **kwargs)
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
    run = result["run"]
    first = f"device: cpu {run['device_name']}, {run['cpu_capability']}, {run['threads']} threads"
    assert table.splitlines()[0] == first
    assert table.splitlines()[1].split() == ["metric", "aae_ssl"]
    assert "fraction of matmul" in table and "replab ÷ peer" in table
    kernels = next(row for row in table.splitlines() if row.startswith("replab's CPU kernels"))
    assert kernels.split(None, 3)[3] == result["cpu_kernels"] == bench.cpu_kernels()
    other = {**result, "paper": "gpu_run", "run": {**result["run"], "device": "cuda", "device_name": "H200"}}
    rows = bench.format_table([result, other]).splitlines()
    assert rows[0].split()[0] == "metric" and rows[3].split()[:2] == ["device", "cpu"]  # a row once devices differ


def test_bench_names_the_cpu_kernels_replab_takes_here(monkeypatch):
    from replab import functional

    for onednn, sigmoid, expected in [(True, True, "oneDNN linear, sigmoid-form tanh/BCE"),
                                      (False, False, "PyTorch's linear, PyTorch's tanh/BCE")]:
        monkeypatch.setattr(functional, "ONEDNN_LINEAR", onednn)
        monkeypatch.setattr(functional, "SIGMOID_FORMS", sigmoid)
        assert bench.cpu_kernels() == expected


@pytest.mark.parametrize("paper", PAPERS_WITH_PEERS[1:])
def test_bench_runs_each_papers_loop_and_its_peer(in_repo, paper, monkeypatch):
    monkeypatch.setattr(bench, "FETCH_MIN_BATCHES", 2)
    result = bench.run_bench(paper, steps=1)
    for key in NUMBERS:
        value = result[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (paper, key, value)


def test_bench_profile_and_json(in_repo, tmp_path, monkeypatch, capsys):
    """`--profile paper` reads the paper profile's sizes (hidden 1000 for aae_ssl) without touching params.yaml;
    `--json` writes the table's results."""
    from replab.io import read_json
    from replab.params import ParamError

    params = bench.profile_params("paper")
    assert params["meta"]["profile"] == "paper" and params["aae_ssl"]["hidden"] == 1000
    captured = {}
    monkeypatch.setattr(bench, "run_bench",
                        lambda paper, steps, params, profile, process_defaults, compile_mode, seeds, cuda_graph:
                        captured.update(paper=paper, hidden=params["aae_ssl"]["hidden"], profile=profile,
                                        process_defaults=process_defaults, compile_mode=compile_mode, seeds=seeds)
                        or {"paper": paper, "x": 1.5})
    monkeypatch.setattr(bench, "format_table", lambda results: "table")
    out = tmp_path / "bench.json"
    bench.main(["aae_ssl"], 2, "paper", str(out))
    assert captured == {"paper": "aae_ssl", "hidden": 1000, "profile": "paper", "process_defaults": False,
                        "compile_mode": None, "seeds": None}
    assert read_json(out) == {"profile": "paper", "steps": 2, "complete": True, "not_run": [],
                              "results": [{"paper": "aae_ssl", "x": 1.5}], "failed": [], "skipped": []}
    with pytest.raises(ParamError, match="no conf/profile/nonesuch.yaml"):
        bench.profile_params("nonesuch")


def test_unknown_paper_or_bad_steps_is_one_line_error_before_anything_runs(in_repo, capsys, tmp_path,
                                                                          monkeypatch):
    from replab.cli import main as cli

    ran = []
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: ran.append(a))
    out = tmp_path / "bench.json"
    assert cli(["bench", "split_vae", "no_such_paper", "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: bench: unknown paper 'no_such_paper' (allowed: aae_ssl, split_vae, censor, autoencoder, "
                   "attention_vat)"]
    for n in ("0", "100001", "100000000000000000000"):  # 10**20 was an OverflowError in run_bench, as a failed paper
        assert cli(["bench", "split_vae", "--steps", n]) == 2
        assert capsys.readouterr().err.strip() == (f"error: bench --steps {n}: allowed: 1 … 100000 (timed steps per "
                                                   "round)")
    for n in ("1", "99999999999"):
        assert cli(["bench", "aae_ssl", "--seeds", n]) == 2
        assert capsys.readouterr().err.strip() == (f"error: bench --seeds {n}: allowed: 2 … 100 (seeds of one variant "
                                                   "trained together)")
    assert cli(["bench", "aae_ssl", "--seeds", "2", "--compile", "default"]) == 2
    assert capsys.readouterr().err.strip() == ("error: bench --seeds with --compile default: seeds trained together "
                                               "are never compiled, so their step would be compared with a compiled "
                                               "one; give one of the two")
    assert cli(["bench", "aae_ssl", "--cuda-graph", "--compile", "reduce-overhead"]) == 2
    assert capsys.readouterr().err.strip() == ("error: bench --cuda-graph with --compile reduce-overhead: both capture "
                                               "CUDA graphs and one cannot hold the other (allowed with --cuda-graph: "
                                               "--compile default, max-autotune-no-cudagraphs, or none)")
    # (every paper's loop replays its step; a paper whose loop would not is refused alone)
    monkeypatch.setattr(bench, "CUDA_GRAPH_PAPERS", ("aae_ssl", "split_vae", "censor", "autoencoder"))
    assert cli(["bench", "attention_vat", "--cuda-graph"]) == 2
    assert capsys.readouterr().err.strip() == ("error: bench --cuda-graph: none of attention_vat replays its "
                                               "training step as a CUDA graph (allowed with: aae_ssl, split_vae, "
                                               "censor, autoencoder)")
    assert ran == [] and not out.exists()  # split_vae did not run first; no JSON of nothing
    with pytest.raises(bench.NoBenchmark, match="no benchmark for no_such_paper"):
        bench.find_case("no_such_paper")


def test_bench_seeds_together_times_the_batched_loop_beside_the_single_seed_step(in_repo, monkeypatch, capsys):
    """`--seeds 2`: aae_ssl's step of 2 seeds trained together (fit_seeds) against 2 single-seed steps; a paper
    without a batched loop shows "–", and a table without --seeds has no such rows."""
    monkeypatch.setattr(bench, "FETCH_MIN_BATCHES", 2)
    aae, split = bench.main(["aae_ssl", "split_vae"], 1, seeds=2)
    assert aae["seeds_together"] == 2 and aae["seeds_ms_per_step"] > 0
    assert aae["seeds_speedup"] == pytest.approx(2 * aae["ms_per_step"] / aae["seeds_ms_per_step"])
    assert aae["seeds_samples_per_s"] == pytest.approx(2 * aae["samples_per_step"] / aae["seeds_ms_per_step"] * 1e3)
    assert split["seeds_together"] is None and split["seeds_speedup"] is None
    # Table 1 projected: models × N_l × seeds runs of `iterations` steps; seeds together: each variant's seeds in
    # batched groups of 2 (seeds_together_hours, tested by hand below)
    cfg = bench.load_section(bench.find_case("aae_ssl")[0].Config, "aae_ssl")
    variants, runs = len(cfg.models) * len(cfg.n_labeled), len(cfg.models) * len(cfg.n_labeled) * len(cfg.seeds)
    assert (aae["sweep"], aae["sweep_runs"], aae["sweep_steps_per_run"]) == ("Table 1", runs, cfg.iterations)
    assert aae["sweep_hours"] == pytest.approx(runs * cfg.iterations * aae["ms_per_step"] / 1e3 / 3600)
    assert aae["sweep_hours_seeds_together"] == pytest.approx(bench.seeds_together_hours(
        variants, len(cfg.seeds), cfg.iterations, 2, aae["seeds_ms_per_step"] / 1e3, aae["ms_per_step"] / 1e3))
    assert split["sweep_hours"] is None and "sweep's training steps" not in bench.format_table([split])
    rows = capsys.readouterr().out.splitlines()
    assert "bench split_vae: no loop of seeds trained together (--seeds: aae_ssl)" in rows
    together = next(row for row in rows if row.startswith("seeds together ms / step"))
    assert "(2 seeds, " in together and together.split()[-1] == "–"
    assert "seeds together" not in bench.format_table([split])


def test_bench_censor_runs_the_sct_loop(in_repo):
    result = bench.run_bench("censor", steps=2)
    assert result["paper"] == "censor" and result["case"].startswith("SCT")
    assert result["ms_per_step"] > 0 and result["flops_per_step"] > 0


def toy_bench(monkeypatch, peer_ticks=lambda: 3, step_reads: int = 0) -> tuple[list, list]:
    """bench on a loop of one (8 × 16) @ (16 × 4) matmul per step (2·8·16·4 = 1,024 FLOPs) and a clock that
    advances 1 ms per reading, with a peer whose step takes `peer_ticks()` ticks (read at the step's start);
    returns the lists that count replab's and the peer's steps."""
    from types import SimpleNamespace

    from replab.papers import censor

    steps_run, peer_steps = [], []

    def toy_setup(cfg, device):
        a, b = torch.ones(8, 16), torch.ones(16, 4)

        def train(iterations, runtime):
            for _ in rt.progress(range(iterations)):
                torch.mm(a, b)
                for _ in range(step_reads):  # a value read into Python (a GPU sync), no FLOPs counted
                    a.sum().item()
                steps_run.append(1)

        return bench.BenchCase(label="toy", samples_per_step=8, train=train, x=torch.zeros(64, 3),
                               y=torch.zeros(64), batch_size=8, sweep=("toy sweep", 2, 3, 1000))

    def toy_peer(cfg, case, device):
        while True:
            peer_steps.append(1)
            for _ in range(peer_ticks() - 1):  # the peer's step reads the clock this many times more
                bench.time.perf_counter()
            yield

    ticks = iter(range(100_000))
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 1e-3))
    monkeypatch.setattr(bench, "find_case", lambda paper: (censor, toy_setup))
    monkeypatch.setattr(bench, "find_peer", lambda paper: toy_peer)
    return steps_run, peer_steps


def test_bench_numbers_from_a_toy_case_and_a_fake_clock(in_repo, monkeypatch):
    """Every number bench derives from `toy_bench` (a 1 ms replab step, a 3 ms peer step) is known by hand,
    independent of the machine's speed."""
    steps_run, peer_steps = toy_bench(monkeypatch)
    result = bench.run_bench("censor", steps=4)
    # per round: warm-up, timed steps, the untimed final step
    assert len(steps_run) == bench.ROUNDS * (bench.WARMUP_STEPS + 4 + 1)
    assert len(peer_steps) == bench.ROUNDS * (bench.WARMUP_STEPS + 4)
    assert result["flops_per_step"] == 2 * 8 * 16 * 4  # one step's FLOPs, not the loop's
    assert result["ms_per_step"] == pytest.approx(1.0)  # one clock reading per step: one tick (1 ms) each
    assert result["ms_per_step_mean"] == pytest.approx(1.0)
    assert result["samples_per_s"] == pytest.approx(8 / 1e-3)
    assert result["matmul_gflops_per_s"] == pytest.approx(2 * 1024**3 / 1e-3 / 1e9)  # best of one-tick repeats
    assert result["fraction_of_matmul"] == pytest.approx((1024 / 1e-3) / (2 * 1024**3 / 1e-3))
    assert result["fraction_of_torch_mm"] == pytest.approx(result["fraction_of_matmul"])  # every product 1 tick
    faster = {**result, "matmul_kernel": "oneDNN", "fraction_of_matmul": 0.5, "fraction_of_torch_mm": 1.1}
    assert bench._cell(faster, "fraction_of_matmul", "{:.3g}") == "0.5 (1.1 of torch.mm)"
    blas = {**faster, "matmul_kernel": "torch.mm", "fraction_of_torch_mm": 0.5}
    assert bench._cell(blas, "fraction_of_matmul", "{:.3g}") == "0.5"  # the reference already is torch.mm
    assert result["kernel_calls"] == 1  # the step's one mm, replayed alone: one tick per repeat
    assert result["kernels_alone_ms"] == pytest.approx(1.0)
    assert result["kernels_alone_fraction_of_matmul"] == pytest.approx(result["fraction_of_matmul"])
    key, fmt = "kernels_alone_fraction_of_matmul", "{:.3g}"
    assert bench._cell({**result, key: 0.8}, key, fmt) == "0.8"
    assert bench._cell({**result, key: 1.23}, key, fmt) == "1.23 (†)"  # the note below the table says why
    assert bench.format_table([{**result, key: 1.23}]).endswith(
        "\n(†) above 1: the square product ran slower than these kernels (e.g. under load); rerun when idle for a "
        "ceiling")
    assert "(†)" not in bench.format_table([result])
    assert result["step_over_kernels_alone"] == pytest.approx(1.0)
    assert result["host_reads_per_step"] == 0 and bench._cell(result, "host_reads_per_step", None) == "0"
    # the sweep projected from the 1 ms step: 6 runs × 1,000 steps = 6 s of training steps
    assert result["sweep_hours"] == pytest.approx(6 / 3600) and result["sweep_hours_seeds_together"] is None
    row = next(r for r in bench.format_table([result]).splitlines() if r.startswith("sweep's training steps"))
    assert row.endswith("0.00 h (toy sweep: 6 × 1,000)")  # runs × steps per run
    assert result["peer_ms_per_step"] == pytest.approx(3.0)
    assert result["peer_samples_per_s"] == pytest.approx(8 / 3e-3)
    assert result["peer_ratio"] == pytest.approx(3.0)  # replab's samples/s over the peer's
    assert result["peer_ratio_rounds"] == pytest.approx([3.0] * bench.ROUNDS)  # each round's own medians
    row = next(r for r in bench.format_table([result]).splitlines() if r.startswith("  … each round alone"))
    assert row.endswith("  " + ", ".join(["3.00×"] * bench.ROUNDS))
    assert result["peer_fraction_of_matmul"] == pytest.approx((1024 / 3e-3) / (2 * 1024**3 / 1e-3))
    n = result["fetch_batches"]
    assert n == bench.FETCH_MIN_BATCHES and result["fetch_index_us"] == pytest.approx(1e3 / n)


def test_bench_counts_the_values_a_step_reads_into_python(in_repo, monkeypatch):
    """Each `.item()` (or bool(t), float(t), .tolist(), …) in a step is a synchronisation on a GPU: bench counts
    them in one step and names the line that read."""
    toy_bench(monkeypatch, step_reads=2)
    result = bench.run_bench("censor", steps=2)
    line = next(n for n, text in enumerate(open(__file__).read().splitlines(), 1) if "a.sum().item()" in text)
    assert result["host_reads_per_step"] == 2 and result["host_reads_where"] == {f"test_bench.py:{line}": 2}
    assert bench._cell(result, "host_reads_per_step", None) == f"2 (2 test_bench.py:{line})"
    counter = bench.HostReadCounter()
    with counter:
        t = torch.arange(3.0)
        bool(t.any()), float(t[0]), int(t[1]), t.tolist(), t.numpy(), t.cpu(), t + 1, len(t)
    assert counter.reads == 5  # all but .cpu() of a CPU tensor (no copy), arithmetic and len


def test_bench_gives_the_ratio_of_each_round_beside_the_runs(in_repo, monkeypatch):
    """A peer whose steps take 3 ms in the first round and 6 ms in the second (a machine that slowed for the
    peer alone): the run's ratio is that of the medians over both rounds, and each round's own ratio shows the
    spread."""
    steps_run, peer_steps = toy_bench(monkeypatch, peer_ticks=lambda: 3 if len(peer_steps) <= per_round else 6)
    per_round = bench.WARMUP_STEPS + 4
    result = bench.run_bench("censor", steps=4)
    assert bench.ROUNDS == 2 and len(peer_steps) == 2 * per_round
    assert result["peer_ratio_rounds"] == pytest.approx([3.0, 6.0])
    assert result["peer_ratio"] == pytest.approx(4.5)  # the median of 4 steps of 3 ms and 4 of 6 ms
    row = next(r for r in bench.format_table([result]).splitlines() if r.startswith("  … each round alone"))
    assert row.endswith("  3.00×, 6.00× (‡)")  # 2× apart: the note below the table says the load changed
    assert bench.format_table([result]).endswith("\n" + bench.ROUNDS_APART_NOTE)
    assert "(‡)" not in bench.format_table([{**result, "peer_ratio_rounds": [3.0, 3.3]}])  # 10 % apart: noise
    assert result["run"]["cpus"] == os.cpu_count()  # the host's, as the load average is
    # a 2-core host: bench's own 2 threads make a load of about 2; 2.6 means other work beside them, 2.4 noise
    busy, idle = ({**result, "run": {**result["run"], "load_avg_1m": load, "cpus": 2}} for load in (2.6, 2.4))
    assert bench._cell(busy, "load", None) == "2.6 on 2 cores (incl. bench) (!)"
    assert bench.BUSY_NOTE in bench.format_table([busy]) and "(!)" not in bench.format_table([idle])


def test_split_vae_peer_forward_is_the_models_with_torch_tanh():
    """The peer writes SplitVAE's forward with torch.tanh; a change to the model must show here, not silently
    change what bench compares against."""
    from replab.papers.split_vae.model import SplitVAE, sample
    from replab.peers import split_vae_forward

    torch.manual_seed(0)
    model, x = SplitVAE(hidden=20, latent_dim=3), torch.rand(6, 784)
    logits, moments, z_a = split_vae_forward(model, x, torch.Generator().manual_seed(1))
    noise = torch.Generator().manual_seed(1)
    mu_a, lv_a, mu_b, lv_b = model.encode(x)
    z = sample(mu_a, lv_a, noise), sample(mu_b, lv_b, noise)
    for ours, peers in zip((model.decode(*z), mu_a, lv_a, mu_b, lv_b, z[0]), (logits, *moments, z_a)):
        assert torch.allclose(ours, peers, rtol=0, atol=1e-6)  # replab.functional.tanh: within 2.4e-7


def test_attention_vat_peer_packed_bilstm_is_the_models_encoder():
    """The peer runs the BiLSTM as the papers' code does (PackedSequence, one bidirectional nn.LSTM); it must be
    the same function as AttentionClassifier.encode (within-length reversal over two LSTMs), gradients included."""
    from replab.papers.attention_vat.model import AttentionClassifier, real_mask
    from replab.peers import PackedBiLSTMClassifier

    torch.manual_seed(0)
    model = AttentionClassifier(vocab_size=50, embedding_dim=8, hidden=6, attention_dim=5)
    peer = PackedBiLSTMClassifier(model)
    lengths = torch.tensor([7, 3, 1, 5])
    tokens = torch.randint(2, 50, (4, 7)) * real_mask(lengths, 7)
    ours, theirs = model.encode(tokens, lengths), peer.encode(tokens, lengths)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=1e-6)
    assert theirs.h[1, 3:].abs().max() == 0 and theirs.scores[2, 1:].abs().max() == 0  # padding stays 0
    trained = {name.split(".")[0] for name, _ in peer.named_parameters()}
    assert trained == {"embedding", "lstm", "attention_w", "attention_c", "decoder"}  # not the unused two LSTMs
    grads = []
    for net in (model, peer):
        net.zero_grad()
        enc = net.encode(tokens, lengths)
        net.attend(enc.h, enc.scores, enc.mask)[0].sum().backward()
        grads.append((net.embedding.weight.grad.clone(), net.attention_w.weight.grad.clone()))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-5)
    assert torch.allclose(peer.lstm.weight_ih_l0_reverse.grad, model.lstm_backward.weight_ih_l0.grad, atol=1e-5)


def test_peer_networks_use_pytorchs_own_layers_with_the_same_parameters():
    from replab.functional import Linear
    from replab.papers.aae_ssl.model import Dropout, build
    from replab.peers import textbook

    encoder = build("aae_yz", 12, 2, False, 0.3)[0]
    before = dict(encoder.named_parameters())
    assert {Linear, Dropout} <= {type(m) for m in encoder.modules()}
    x = torch.rand(5, 784)
    expected = encoder.eval()(x)
    assert textbook(encoder) is encoder
    kinds = {type(m) for m in encoder.modules()}
    assert Linear not in kinds and Dropout not in kinds and {torch.nn.Linear, torch.nn.Dropout} <= kinds
    assert all(p is before[name] for name, p in encoder.named_parameters())  # shared, not copied
    assert [m.p for m in encoder.modules() if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]
    for ours, plain in zip(expected, encoder(x)):
        assert torch.allclose(ours, plain, rtol=0, atol=1e-5)


@pytest.mark.parametrize("measured", [(37.0, 67.0), (67.0, 37.0)], ids=["slow before", "slow after"])
def test_the_matmul_reference_is_the_faster_of_its_measurements_before_and_after_the_steps(in_repo, monkeypatch,
                                                                                         measured):
    """A product that ran slow once (another process, the clock) must not set the reference: on an idle machine a
    first measurement of 37 against 67 GFLOP/s read a fraction of matmul of 1.45."""
    readings = iter(measured)
    monkeypatch.setattr(bench, "matmul_gflops", lambda device: (1024, {"torch.mm": next(readings)}))
    result = bench.run_bench("split_vae", steps=1)
    assert next(readings, None) is None  # measured twice
    assert result["matmul_gflops_per_s"] == 67.0 and result["matmul_kernels_gflops_per_s"] == {"torch.mm": 67.0}
    assert result["fraction_of_matmul"] == pytest.approx(result["gflops_per_s"] / 67.0)
    assert "best of 5 before and 5 after the steps" in bench.format_table([result])


def test_bench_process_defaults_runs_without_replabs_process_settings(in_repo, monkeypatch):
    """`--process-defaults` measures what rt.setup's malloc and NaN-fill settings are worth: neither may apply."""
    calls = []
    monkeypatch.setattr(rt, "keep_freed_memory", lambda: calls.append("mallopt") or True)
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        plain = bench.run_bench("split_vae", steps=1)
        assert calls and plain["run"]["keep_freed_memory"] is True
        assert plain["run"]["fill_uninitialized_memory"] is False
        calls.clear()
        defaults = bench.run_bench("split_vae", steps=1, process_defaults=True)
        assert calls == [] and defaults["run"]["keep_freed_memory"] is False
        assert defaults["run"]["fill_uninitialized_memory"] is True
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = fill


def test_flop_count_includes_onednn_lstm_layers():
    """FlopCounterMode misses oneDNN's LSTM kernels; bench adds them: 2·T·B·4h·(in + h) forward, twice that
    backward (T = 7, B = 4, in = 5, h = 3: 2·28·12·8 = 5,376 and 10,752)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 3, batch_first=True)
    x = torch.randn(4, 7, 5)
    counter = FlopCounterMode(display=False, custom_mapping=bench.ONEDNN_FLOPS)
    with counter:
        out = lstm(x)[0]
    if not any("mkldnn_rnn_layer" in str(op) for op in counter.get_flop_counts()["Global"]):
        pytest.skip("this build's CPU LSTM does not run through oneDNN")
    assert counter.get_total_flops() == 5376
    with counter:
        out.sum().backward()
    assert counter.get_total_flops() == 10752


def test_flop_count_of_cudnn_rnn_calls_and_no_replay_of_them():
    """CUDA's LSTM is one `_cudnn_rnn` call for every layer and direction (weights in groups of weight_stride0:
    W_ih, W_hh, b_ih, b_hh), which FlopCounterMode does not count. 2 layers × 2 directions, in = 5, h = 3, T·B =
    28: layer 1 2·28·12·(5 + 3) = 5,376 per direction, layer 2 (in = 6) 2·28·12·9 = 6,048; backward twice."""
    layer1, layer2 = [(12, 5), (12, 3), (12,), (12,)], [(12, 6), (12, 3), (12,), (12,)]
    weights = [torch.Size(s) for s in layer1 * 2 + layer2 * 2]
    assert bench.cudnn_rnn_flops(torch.Size([7, 4, 5]), weights, 4) == 2 * 5376 + 2 * 6048
    assert bench.cudnn_rnn_backward_flops(torch.Size([7, 4, 5]), weights, 4) == 2 * (2 * 5376 + 2 * 6048)
    rest = [None] * 18  # weight_buf … reserve, then output_mask (∂input, ∂hx, ∂cx, ∂weights)
    assert bench.cudnn_rnn_backward_flops(torch.Size([7, 4, 5]), weights, 4, *rest, [True, True, True, True]) \
        == 2 * (2 * 5376 + 2 * 6048)
    # VAT's ∂KL/∂r: input gradients only, the forward's products once
    assert bench.cudnn_rnn_backward_flops(torch.Size([7, 4, 5]), weights, 4, *rest, [True, False, False, False]) \
        == 2 * 5376 + 2 * 6048
    no_bias = [w for i, w in enumerate(weights) if i % 4 < 2]
    assert bench.cudnn_rnn_flops(torch.Size([28, 5]), no_bias, 2) == 2 * 5376 + 2 * 6048  # packed: Σ lengths rows
    assert {torch.ops.aten._cudnn_rnn, torch.ops.aten._cudnn_rnn_backward} <= set(bench.ONEDNN_FLOPS)
    # its cuDNN weight buffer, reserve space and dropout state cannot be stood in for: the step has no
    # "kernels alone" time rather than one that leaves out its LSTM
    mm = (torch.ops.aten.mm.default, (bench.TensorSpec((4, 4), (4, 1), torch.float32),) * 2, {})
    assert bench.kernels_alone_seconds([mm], torch.device("cpu"), repeats=1) > 0
    assert bench.kernels_alone_seconds([mm, (torch.ops.aten._cudnn_rnn.default, (), {})], torch.device("cpu")) is None


def test_seeds_together_projection_counts_groups_and_the_seeds_left_over():
    """12 variants × 5 seeds in groups of 2 at 183.5 ms a batched step (92.7 ms a single one), 50,000 steps: two
    full groups, and the fifth seed alone (92.7 ms, cheaper than a group's 183.5) = 12 × 0.4597 s × 50,000."""
    assert bench.seeds_together_hours(12, 5, 50_000, 2, 0.1835, 0.0927) == pytest.approx(12 * 0.4597 * 50_000 / 3600)
    # fewer seeds than the batch: them alone, at the cheaper of their single steps and the measured batch
    assert bench.seeds_together_hours(12, 2, 600, 5, 0.1, 0.03) == pytest.approx(12 * 0.06 * 600 / 3600)
    assert bench.seeds_together_hours(12, 2, 600, 5, 0.05, 0.03) == pytest.approx(12 * 0.05 * 600 / 3600)


def test_json_path_is_written_to_before_the_run_and_a_paper_named_twice_runs_once(tmp_path, monkeypatch):
    """os.access says yes for root on /proc: check_writable writes a file to be sure."""
    with pytest.raises(bench.ParamError, match=r"bench --json /proc/x.json: /proc is not writable \("):
        bench.check_writable("/proc/x.json", "bench --json")
    bench.check_writable(str(tmp_path / "out.json"), "bench --json")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    # paths os.stat cannot look up raised OSError (a traceback) from the check itself
    (tmp_path / "loop").symlink_to("loop")
    for path, why in ((tmp_path / "loop", "Too many levels of symbolic links"),
                      (tmp_path / ("a" * 300 + ".json"), "File name too long")):
        with pytest.raises(bench.ParamError, match=rf"is a path the system cannot look up \({why}\) \(give a file"):
            bench.check_writable(str(path), "bench --json")
    (tmp_path / "loop").unlink()
    ran = []
    monkeypatch.setattr(bench, "run_bench", lambda paper, *a: ran.append(paper) or {"paper": paper})
    monkeypatch.setattr(bench, "format_table", lambda results: "")
    bench.main(["aae_ssl", "censor", "aae_ssl"], 1)
    assert ran == ["aae_ssl", "censor"]


def test_a_json_write_that_fails_mid_run_keeps_the_table_of_what_ran(tmp_path, monkeypatch, capsys):
    """A full disk after the first paper: the run stops, the measured table is still printed, and the one error
    line names the JSON's path, the cause and the papers not run (not a failed paper "(JSON)"); exit status 1."""
    from replab.cli import main as cli
    from replab.io import read_json, write_json

    monkeypatch.setattr(bench, "run_bench", lambda paper, *a: {"paper": paper})
    monkeypatch.setattr(bench, "format_table", lambda results: "table of " + " ".join(r["paper"] for r in results))
    writes = []

    def full_disk_after_two(path, payload):  # the file at the start and after aae_ssl fit, then the disk is full
        writes.append(payload["not_run"])
        if len(writes) > 2:
            raise OSError(28, "No space left on device")
        write_json(path, payload)

    monkeypatch.setattr(bench, "write_json", full_disk_after_two)
    out = tmp_path / "b.json"
    assert cli(["bench", "aae_ssl", "censor", "autoencoder", "--json", str(out)]) == 1
    captured = capsys.readouterr()
    assert "table of aae_ssl censor" in captured.out and "autoencoder" not in captured.out
    assert captured.err == (f"error: bench --json {out}: cannot be written (No space left on device); stopped "
                            "before autoencoder\n")
    assert writes == [["aae_ssl", "censor", "autoencoder"], ["censor", "autoencoder"], ["autoencoder"]]
    assert read_json(out)["not_run"] == ["censor", "autoencoder"] and not read_json(out)["complete"]


def test_the_json_says_which_papers_a_killed_run_left_out(tmp_path, monkeypatch):
    """Written at the start and after each paper, the JSON names the papers not run yet: a run killed midway
    (here: censor's bench interrupted) leaves a file that says so. Never over an earlier run's results with none:
    killed or failed before any paper was measured, a run keeps such a file as it was (it wrote an empty one at the
    start, and five papers' results were lost)."""
    from replab.io import read_json, write_json

    out = tmp_path / "bench.json"
    write_json(out, {"results": [{"paper": "an older run"}], "complete": True})

    def run_bench(paper, *args):
        if paper == "censor":
            raise KeyboardInterrupt  # (a kill that Python sees; SIGKILL leaves the same file)
        return {"paper": paper}

    monkeypatch.setattr(bench, "run_bench", run_bench)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["aae_ssl", "censor", "autoencoder"], 1, json_path=str(out))
    assert read_json(out) == {"profile": None, "steps": 1, "complete": False, "not_run": ["censor", "autoencoder"],
                              "results": [{"paper": "aae_ssl"}], "failed": [], "skipped": []}

    older = {"results": [{"paper": "an older run"}], "complete": True}
    write_json(out, older)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["censor", "autoencoder"], 1, json_path=str(out))
    assert read_json(out) == older

    def failing(paper, *args):
        raise RuntimeError("value cannot be converted to type float without overflow")

    monkeypatch.setattr(bench, "run_bench", failing)
    with pytest.raises(bench.PartialFailure) as err:
        bench.main(["censor"], 1, json_path=str(out))
    assert str(err.value) == (f"bench: 1 paper(s) failed: censor (tracebacks above; {out} kept: it holds an earlier "
                              "run's results, this run measured none)")
    assert read_json(out) == older


def test_every_named_papers_params_and_seeds_are_checked_before_any_runs(in_repo, tmp_path, monkeypatch):
    """A bad key in any named paper's section, or --seeds for papers none of which trains seeds together, is a
    one-line error before any paper runs (and before the JSON is written)."""
    import yaml

    from replab.params import ParamError

    ran = []
    monkeypatch.setattr(bench, "run_bench", lambda paper, *a: ran.append(paper) or {"paper": paper})
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["split_vae"]["bogus"] = 1
    monkeypatch.setattr(bench, "profile_params", lambda profile: params)
    with pytest.raises(ParamError, match=r"split_vae\.bogus"):
        bench.main(["aae_ssl", "split_vae"], 1, json_path=str(tmp_path / "b.json"))
    with pytest.raises(ParamError, match=r"^bench --seeds 2: none of split_vae, censor trains seeds together "
                                         r"\(allowed with: aae_ssl\)$"):
        bench.main(["split_vae", "censor"], 1, seeds=2)
    assert ran == [] and not (tmp_path / "b.json").exists()


def test_cuda_graph_runs_only_the_papers_that_replay_their_step_and_says_so_on_a_cpu(in_repo, tmp_path, monkeypatch,
                                                                                     capsys):
    """`--cuda-graph` sets runtime.cuda_graph for aae_ssl's loop; a paper without a whole-step graph (attention_vat's
    loop taken to be one) is left out with a line and named in the JSON, a params.yaml whose runtime compiles to CUDA
    graphs too is refused before anything runs (and one that compiles, beside --seeds), and on a CPU the table says
    the flag changed nothing."""
    import yaml

    from replab.io import read_json
    from replab.params import ParamError

    runtimes, real_run_bench = [], bench.run_bench
    monkeypatch.setattr(bench, "CUDA_GRAPH_PAPERS", ("aae_ssl", "split_vae", "censor", "autoencoder"))

    def run_bench(paper, steps, params, profile, process_defaults, compile_mode, seeds, cuda_graph):
        if paper != "aae_ssl":  # (attention_vat) refused before anything runs
            return real_run_bench(paper, steps, params, profile, process_defaults, compile_mode, seeds, cuda_graph)
        runtimes.append(bench.bench_runtime(params, compile_mode, cuda_graph))
        return {"paper": paper, "run": {"device": "cpu", "compile": False,
                                        "cuda_graph": rt.cuda_graph_on(runtimes[-1], torch.device("cpu"))}}

    monkeypatch.setattr(bench, "run_bench", run_bench)
    bench.main(["attention_vat", "aae_ssl"], 1, json_path=str(tmp_path / "b.json"), cuda_graph=True)
    out = capsys.readouterr().out
    skip = ("bench attention_vat: its loop replays no whole-step CUDA graph (--cuda-graph: aae_ssl, split_vae, censor, "
            "autoencoder)")
    assert out.startswith(skip + "\n")
    assert "runtime.cuda_graph: no effect on cpu (CUDA graphs need a CUDA device)\n" in out
    assert read_json(tmp_path / "b.json")["skipped"] == [{"paper": "attention_vat", "reason": skip}]
    assert [r.cuda_graph for r in runtimes] == [True]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["runtime"].update(cuda_graph=True)
    monkeypatch.setattr(bench, "profile_params", lambda profile: params)
    with pytest.raises(ParamError) as err:
        bench.main(["aae_ssl"], 1, compile_mode="reduce-overhead")
    assert str(err.value) == ("bench --compile reduce-overhead: with params' runtime (cuda_graph: true, compile: "
                              "false, compile_mode: default) the loop would capture CUDA graphs inside torch.compile's "
                              "own (allowed with CUDA graphs per iteration: --compile default, "
                              "max-autotune-no-cudagraphs)")
    params["runtime"].update(cuda_graph=False, compile=True)
    with pytest.raises(ParamError) as err:  # the single-seed loop would be compiled, the seeds together not
        bench.main(["aae_ssl"], 1, seeds=2)
    assert str(err.value) == ("bench --seeds 2: params' runtime makes the single-seed loop run through torch.compile, "
                              "but seeds trained together are never compiled, so the speed-up would compare two "
                              "kinds of loop (set runtime.compile to false for --seeds)")
    assert len(runtimes) == 1  # refused before any paper ran


def test_the_table_names_how_replabs_loop_ran_when_any_was_not_eager():
    eager = {"paper": "aae_ssl", "run": {"device": "cuda", "compile": False}}
    assert "replab's loop" not in bench.format_table([eager])
    graph = {"paper": "aae_ssl", "run": {"device": "cuda", "compile": "default", "cuda_graph": True}}
    old = {"paper": "censor", "run": {"device": "cuda", "compile": "reduce-overhead"}}  # a file without cuda_graph
    row = next(line for line in bench.format_table([eager, graph, old]).splitlines()
               if line.startswith("replab's loop"))
    cells = [c.strip() for c in row[len("replab's loop"):].split("  ") if c.strip()]
    assert cells == ["eager", "torch.compile default + one CUDA graph per iteration", "torch.compile reduce-overhead"]


def test_a_loop_that_raises_mid_step_leaves_no_flop_counter_or_warning_filter_behind():
    """The FLOP-counted step's context managers span a `yield`: `attached` closes the step generator on the way
    out, so an exception in the training step restores the warning filters (and pops the counter) at once."""
    filters = list(warnings.filters)
    probe = bench.StepProbe(warmup=1, steps=1, device=torch.device("cpu"))

    def loop():
        bar = rt.progress(range(probe.iterations))  # an enabled bar held in a local, as the papers' loops hold it
        for _ in bar:
            assert warnings.filters != filters  # inside the counted step: the filter is in place
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged") as caught:  # its traceback keeps the loop's frame alive,
        with probe.attached():                                      # as bench's own error report does
            loop()
    assert warnings.filters == filters and caught.traceback
    assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).sum() == 8  # and no dispatch mode left counting


def test_bad_input_inside_a_papers_bench_is_still_the_one_line_error(monkeypatch, capsys):
    """A ParamError from within run_bench (e.g. --seeds that do not fit in memory) is bad input, not a failed
    measurement: one line, exit status 2, no traceback."""
    from replab.cli import main as cli

    def run_bench(paper, *args):
        raise bench.ParamError("bench --seeds 100: aae_ssl's 100 seeds do not fit in cpu memory (give fewer)")

    monkeypatch.setattr(bench, "run_bench", run_bench)
    assert cli(["bench", "aae_ssl", "censor", "--seeds", "100"]) == 2
    err = capsys.readouterr().err
    assert err == "error: bench --seeds 100: aae_ssl's 100 seeds do not fit in cpu memory (give fewer)\n"


def test_a_failing_paper_stops_no_other_and_the_json_keeps_what_ran(tmp_path, monkeypatch, capsys):
    """One paper's bench raising (a loop never run on this device) is reported with its traceback; the others
    still run, the JSON is written after every paper, and the command then exits 1 naming the failed ones."""
    from replab.cli import main as cli
    from replab.io import read_json

    def run_bench(paper, *args):
        if paper == "censor":
            raise RuntimeError("accessing tensor output of CUDAGraphs that has been overwritten\nby a subsequent run")
        return {"paper": paper, "x": 1.0}

    monkeypatch.setattr(bench, "run_bench", run_bench)
    monkeypatch.setattr(bench, "format_table", lambda results: "table of " + " ".join(r["paper"] for r in results))
    out = tmp_path / "bench.json"
    assert cli(["bench", "aae_ssl", "censor", "autoencoder", "--json", str(out)]) == 1
    captured = capsys.readouterr()
    assert "table of aae_ssl autoencoder" in captured.out
    assert "Traceback" in captured.err and "bench censor: failed (RuntimeError: accessing" in captured.err
    assert captured.err.strip().splitlines()[-1] == ("error: bench: 1 paper(s) failed: censor (tracebacks above; "
                                                     "the JSON lists them)")
    assert read_json(out) == {"profile": None, "steps": 30, "complete": True, "not_run": [],
                              "results": [{"paper": "aae_ssl", "x": 1.0}, {"paper": "autoencoder", "x": 1.0}],
                              "failed": [{"paper": "censor", "error": "RuntimeError: accessing tensor output of "
                                          "CUDAGraphs that has been overwritten by a subsequent run"}],
                              "skipped": []}


def test_flop_count_includes_replabs_onednn_linear_layers(monkeypatch):
    """x [5, 7] · W [3, 7]ᵀ: 2·5·7·3 = 210 FLOPs forward; ∂x and ∂W are 210 each."""
    from torch.utils.flop_counter import FlopCounterMode

    from replab import functional

    monkeypatch.setattr(functional, "ONEDNN_MIN_MACS", 0)  # oneDNN's path for this small product too,
    monkeypatch.setattr(functional, "ONEDNN_LINEAR", True)  # on any x86 CPU
    x, weight = torch.randn(5, 7, requires_grad=True), torch.randn(3, 7, requires_grad=True)
    counter = FlopCounterMode(display=False, custom_mapping=bench.ONEDNN_FLOPS)
    with counter:
        out = functional.linear(x, weight)
    if torch.backends.mkldnn.is_available():
        assert "mkldnn._linear_pointwise" in {str(op) for op in counter.get_flop_counts()["Global"]}
    assert counter.get_total_flops() == 210
    with counter:
        out.sum().backward()
    assert counter.get_total_flops() == 420


def test_bench_checks_the_json_path_before_running(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: ran.append(a) or {})
    (tmp_path / "file").write_text("x")
    for bad, why in ((tmp_path, "is a directory"), (tmp_path / "file" / "out.json", "is not a directory"),
                     (f"{tmp_path}/new/", "a folder's path")):  # (it became a file named new)
        with pytest.raises(bench.ParamError, match=why) as err:
            bench.main(["aae_ssl"], 1, json_path=str(bad))
        assert "\n" not in str(err.value) and f"--json {bad}" in str(err.value)
    assert ran == [] and not (tmp_path / "new").exists()
    # missing folders are created later
    bench.check_writable(str(tmp_path / "new" / "dir" / "out.json"), "bench --json")


@pytest.mark.slow
def test_bench_compile_runs_replabs_loop_through_torch_compile(in_repo, tmp_path, capsys):
    """`replab bench --compile MODE`: replab's loop compiled (graphs made, the mode in the JSON), the peer eager;
    an unknown mode is a one-line error before anything runs."""
    from torch._dynamo.utils import counters

    from replab.io import read_json

    torch._dynamo.reset()
    counters.clear()
    out = tmp_path / "bench.json"
    (result,) = bench.main(["split_vae"], 1, json_path=str(out), compile_mode="reduce-overhead")
    assert counters["stats"]["unique_graphs"] > 0
    assert result["host_reads_per_step"] is None  # not counted under torch.compile (a function mode recompiles)
    assert result["compile_counters"] == {"graphs": counters["stats"]["unique_graphs"],
                                          "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}
    assert "torch.compile graphs" in bench.format_table([result])
    assert result["run"]["compile"] == "reduce-overhead" and result["peer_ratio"] > 0
    assert read_json(out)["results"][0]["run"]["compile"] == "reduce-overhead"
    assert "torch.compile, mode reduce-overhead" in capsys.readouterr().out
    with pytest.raises(bench.ParamError, match="bench --compile fast: unknown mode"):
        bench.main(["split_vae"], 1, compile_mode="fast")
    eager = bench.run_bench("split_vae", 1)
    assert eager["run"]["compile"] is False and eager["compile_counters"] is None
    assert "torch.compile graphs" not in bench.format_table([eager])


def test_the_flop_counted_step_of_a_compiled_module_does_not_warn_about_the_counters_hooks():
    """FlopCounterMode's global module hooks made torch.compile warn, once per compiled module, that hooks fire an
    extra time: harmless for the one counted step, alarming in a GPU run's log."""
    torch._dynamo.reset()
    module = torch.compile(torch.nn.Linear(3, 2), backend="eager")  # the warning is Dynamo's, any backend
    probe = bench.StepProbe(warmup=1, steps=1, device=torch.device("cpu"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in probe.wrap(range(probe.iterations)):
            module(torch.ones(4, 3)).sum().backward()
    assert probe.flops == 2 * (2 * 4 * 3 * 2)  # forward and ∂W of the counted step (the input needs no ∂x)
    assert not [w for w in caught if "global hooks" in str(w.message)]


def test_kernel_recorder_replays_a_steps_flop_kernels_alone():
    """A step of a linear layer, a convolution and a batched product, forward and backward: the recorder keeps
    exactly the calls FlopCounterMode counts, with their layouts (a transposed weight stays transposed), and
    replaying them counts the same FLOPs again, on fresh tensors, with nothing else run."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    linear, conv = torch.nn.Linear(6, 4), torch.nn.Conv1d(2, 3, kernel_size=3)
    x, signal, a, b = torch.randn(5, 6), torch.randn(5, 2, 9), torch.randn(2, 3, 4), torch.randn(2, 4, 7)

    def step():
        loss = linear(x).relu().sum() + conv(signal).tanh().sum() + torch.bmm(a, b).sum()
        loss.backward()

    counter = FlopCounterMode(display=False, custom_mapping=bench.ONEDNN_FLOPS)
    recorder = bench.KernelRecorder(counter.flop_registry)
    with counter, recorder:
        step()
    ops = [str(func) for func, _, _ in recorder.calls]
    assert sorted(ops) == sorted(["aten.addmm.default", "aten.convolution.default", "aten.bmm.default",
                                  "aten.mm.default", "aten.convolution_backward.default"])  # ∂W of linear
    addmm_args = next(args for func, args, _ in recorder.calls if str(func) == "aten.addmm.default")
    assert addmm_args[0] == bench.TensorSpec((4,), (1,), torch.float32)  # the bias
    assert addmm_args[2] == bench.TensorSpec((6, 4), (1, 6), torch.float32)  # Wᵀ: a transposed view

    replay = FlopCounterMode(display=False, custom_mapping=bench.ONEDNN_FLOPS)
    with replay:
        seconds = bench.kernels_alone_seconds(recorder.calls, torch.device("cpu"), repeats=1)
    assert seconds > 0
    assert replay.get_total_flops() == 2 * counter.get_total_flops()  # the untimed run and the one repeat
    assert bench.kernels_alone_seconds([], torch.device("cpu")) == 0.0


@pytest.mark.parametrize("paper", ("aae_ssl", "split_vae", "censor", "autoencoder"))
def test_compiled_loops_mark_each_iteration_for_cuda_graphs(in_repo, paper, monkeypatch):
    """Under `reduce-overhead` PyTorch starts a CUDA-graph generation at the first compiled call after any
    backward, freeing the last one's outputs: aae_ssl reads the encoder's z after D's backward, censor runs the
    adversary's backward between compiled calls. So every compiled training loop marks its iterations itself
    (`rt.new_iteration`), once per optimiser step, and an eager one never does."""
    import dataclasses

    from replab.params import load_runtime, load_section

    calls = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: calls.append(1))
    monkeypatch.setattr(rt, "maybe_compile", lambda module, runtime: module)  # the loop as compiled, without Inductor
    module, setup = bench.find_case(paper)
    runtime = dataclasses.replace(load_runtime(), progress=False)
    case = setup(load_section(module.Config, paper), rt.setup(runtime, 0))
    steps = []
    from torch.optim.optimizer import register_optimizer_step_post_hook

    hook = register_optimizer_step_post_hook(lambda *args: steps.append(1))
    try:
        case.train(2, runtime)
        assert calls == [] and steps
        steps.clear()
        case.train(2, dataclasses.replace(runtime, compile=True))
    finally:
        hook.remove()
    per_step = {"aae_ssl": 2}.get(paper, 1)  # aae_ssl: D's and the autoencoder's optimiser in one iteration
    assert len(calls) * per_step == len(steps) > 0


def test_bench_hides_the_case_loops_bars(monkeypatch, capsys):
    """The timed loop on synthetic data (and any other bar it opens) writes no bar of its own: its validation
    postfix (aae_ssl's val_error near chance) would read as training gone wrong."""
    probe = bench.StepProbe(warmup=1, steps=2, device=torch.device("cpu"), count_flops=False)
    with probe.attached():
        bar = rt.progress(range(probe.iterations), desc="aae_ssl", enabled=True, mininterval=0, miniters=1)
        for _ in bar:
            bar.set_postfix(val_error="91.80")
            list(rt.progress(range(2), desc="evaluate", enabled=True, mininterval=0, miniters=1))
    assert probe.seen == probe.iterations and probe.seconds() > 0
    assert capsys.readouterr().err == ""
    list(rt.progress(range(2), desc="after", mininterval=0, miniters=1))  # detached: bars show again
    assert "after: 100% 2/2" in capsys.readouterr().err


def test_bench_phase_bar_in_a_log_ends_complete_once(in_repo, monkeypatch, capsys):
    """Into a log (stderr not a terminal) bench's phase bar ends on one line at its total; no bar of the paper's
    training loop shows."""
    monkeypatch.setattr(bench, "FETCH_MIN_BATCHES", 2)
    monkeypatch.setattr(rt, "LOG_INTERVAL_S", 0.0)  # every phase a line
    bench.run_bench("aae_ssl", steps=1)
    err = capsys.readouterr().err
    assert "\r" not in err and "val_error" not in err
    bars = [line for line in err.splitlines() if re.search(r"\d+/\d+ \[", line)]
    assert bars and all(line.startswith("bench aae_ssl: ") for line in bars), bars
    total = f"{bench.PHASES}/{bench.PHASES}"
    assert [line for line in bars if total in line] == [bars[-1]]
    assert bars[-1].startswith(f"bench aae_ssl: 100% {total} [") and bars[-1].endswith(", done]")


def test_bench_help_describes_every_option_with_its_default(capsys):
    from replab.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["bench"]
    options = [a for a in sub._actions if a.dest != "help"]
    assert all(a.help for a in options), [a.dest for a in options if not a.help]
    with pytest.raises(SystemExit):
        sub.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    steps = next(a for a in options if a.dest == "steps")
    from replab.cli import BENCH_STEPS

    # (no argparse default: --show refuses any --steps given, also 30; measuring takes BENCH_STEPS)
    assert steps.default is None and BENCH_STEPS == 30 and "(default: 30)" in text
    assert f"after {bench.WARMUP_STEPS} warm-up steps" in text and f"{bench.ROUNDS} rounds" in text


def test_out_of_memory_in_a_papers_bench_is_one_line_naming_its_section(tmp_path, monkeypatch, capsys):
    """attention_vat.batch_size = 1048576 printed the allocator's traceback and "tracebacks above": running out of
    memory is the params' sizes, said in one line naming the section (as the training stage does); a bug in another
    paper still gets its traceback, and the JSON lists both."""
    from replab.cli import main as cli
    from replab.io import read_json

    def run_bench(paper, *args):
        if paper == "attention_vat":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 4398046511104 bytes. Error code 12 (Cannot allocate memory)")
        if paper == "censor":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if paper == "split_vae":
            raise KeyError("a bug")
        return {"paper": paper, "x": 1.0}

    monkeypatch.setattr(bench, "run_bench", run_bench)
    monkeypatch.setattr(bench, "format_table", lambda results: "table of " + " ".join(r["paper"] for r in results))
    assert cli(["bench", "attention_vat", "aae_ssl", "censor"]) == 1
    err = capsys.readouterr().err
    oom = ("(batch sizes, hidden and embedding sizes, data set sizes) are too large for this device's memory; going "
           "on with the others")
    assert err.splitlines() == [
        f"bench attention_vat: out of memory (tried to allocate 4398046511104 bytes): params.yaml's attention_vat "
        f"sizes {oom}",
        f"bench censor: out of memory: params.yaml's censor sizes {oom}",
        "error: bench: 2 paper(s) failed: attention_vat (out of memory), censor (out of memory)"]
    out = tmp_path / "bench.json"
    assert cli(["bench", "attention_vat", "split_vae", "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "KeyError: 'a bug'" in err and "bench attention_vat: out of memory" in err
    assert err.strip().splitlines()[-1] == ("error: bench: 2 paper(s) failed: attention_vat (out of memory), "
                                            "split_vae (tracebacks above; the JSON lists them)")
    assert [f["paper"] for f in read_json(out)["failed"]] == ["attention_vat", "split_vae"]
    assert read_json(out)["failed"][0]["error"].startswith("out of memory (tried to allocate 4398046511104 bytes): "
                                                           "params.yaml's attention_vat sizes")


def test_show_sets_earlier_runs_side_by_side_and_names_a_damaged_value(in_repo, tmp_path, monkeypatch, capsys):
    """`replab bench [paper …] --show A.json B.json`: the results of two --json runs (here the toy case's, the
    second as if from another machine) in one table, a column per paper and file with each device named; a
    damaged value, a file of another kind or a run that stopped early is said, naming the file."""
    from replab.cli import main as cli
    from replab.io import read_json, write_json

    toy_bench(monkeypatch)
    cpu, gpu = tmp_path / "cpu.json", tmp_path / "gpu.json"
    bench.main(["censor"], 4, json_path=str(cpu))
    data = read_json(cpu)
    data["results"][0]["run"] = {**data["results"][0]["run"], "device": "cuda", "device_name": "NVIDIA H100"}
    data["results"][0]["ms_per_step"] = 0.5
    write_json(gpu, data)
    capsys.readouterr()
    assert cli(["bench", "censor", "--show", str(cpu), str(gpu)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["metric", "censor", "·", str(cpu), "censor", "·", str(gpu)]  # the paths as given
    device = next(line for line in table if line.startswith("device "))
    assert "cpu " in device and "cuda NVIDIA H100, 1 threads" in device
    ms = next(line for line in table if line.startswith("ms / step (median)"))
    assert ms.split()[4:] == ["1.00", "(mean", "1.00)", "0.50", "(mean", "1.00)"]  # each file's own numbers
    assert cli(["bench", "aae_ssl", "--show", str(cpu)]) == 2  # no column to show
    assert capsys.readouterr().err == f"error: bench --show: no results of aae_ssl in {cpu}\n"
    # a paper after the files: argparse gave it to --show, which read it as a file ("--show censor: no such file")
    assert cli(["bench", "--show", str(cpu), str(gpu), "censor"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == table[0].split()
    assert cli(["bench", "--show", "censor"]) == 2
    assert capsys.readouterr().err == ("error: bench --show censor: no JSON file given, only papers (give the files "
                                       "written by `replab bench --json`)\n")
    data["results"][0]["ms_per_step"] = "fast"
    write_json(gpu, data)
    for path, error in ((gpu, f"{gpu}: results[0].ms_per_step = \"fast\": not a value bench writes (a hand edit, "
                              "or a file of another program)"),
                        (tmp_path / "none.json", f"bench --show {tmp_path / 'none.json'}: no such file (give JSON "
                                                 "files written by `replab bench --json`)")):
        assert cli(["bench", "--show", str(cpu), str(path)]) == 2
        assert capsys.readouterr().err == f"error: {error}\n"
    write_json(gpu, {"results": []})
    assert cli(["bench", "--show", str(gpu)]) == 2
    assert "not a `replab bench --json` file with results" in capsys.readouterr().err
    write_json(gpu, {**read_json(cpu), "complete": False, "not_run": ["autoencoder"],
                     "failed": [{"paper": "split_vae", "error": "RuntimeError: …"}]})
    assert cli(["bench", "--show", str(gpu)]) == 0
    assert capsys.readouterr().err == (f"bench --show: {gpu}: the run stopped before autoencoder\n"
                                       f"bench --show: {gpu}: failed in that run: split_vae\n")
    for given in (["--steps", "5", "--json", str(gpu)], ["--steps", "30"], ["--seeds", "0"], ["--profile", ""]):
        assert cli(["bench", "--show", str(cpu), *given]) == 2  # it measures nothing: also the default's value
        flags = ", ".join(flag for flag in given if flag.startswith("--"))
        assert capsys.readouterr().err == ("error: bench --show prints earlier results and measures nothing: give "
                                           f"it without {flags}\n")


def test_show_markdown_gives_the_step_time_table_of_each_file(in_repo, tmp_path, monkeypatch, capsys):
    """`--show A.json B.json --markdown`: README's step times, a row per paper and a column per file (its device,
    profile and loop), each cell the file's own step, ratio and seeds-together step; the projected sweep below.
    --markdown alone measures nothing and says so."""
    from replab.cli import main as cli
    from replab.io import read_json, write_json

    toy_bench(monkeypatch)
    cpu, gpu = tmp_path / "cpu.json", tmp_path / "gpu.json"
    bench.main(["censor"], 4, json_path=str(cpu))
    data = read_json(cpu)
    result = data["results"][0]
    result["run"] = {**result["run"], "device": "cuda", "device_name": "NVIDIA H200", "threads": 16,
                     "cuda_graph": True}
    result.update(ms_per_step=0.25, peer_ratio=8.0, seeds_together=5, seeds_ms_per_step=0.5, seeds_speedup=2.5,
                  seeds_samples_per_s=80000.0, sweep_hours=0.02,
                  sweep_hours_seeds_together=0.004, case="toy, other sizes")
    write_json(gpu, data)
    capsys.readouterr()
    assert cli(["bench", "--show", str(cpu), str(gpu), "--markdown"]) == 0
    device = bench._device(read_json(cpu)["results"][0])
    assert capsys.readouterr().out.splitlines() == [
        f"| paper (case) | {device}, params.yaml's sizes, eager (`{cpu}`) | cuda NVIDIA H200, 16 threads, "
        f"params.yaml's sizes, one CUDA graph per iteration (`{gpu}`) |",
        "|---|---|---|",
        "| censor (toy) | 1.00 ms, 3.00× the peer | 0.25 ms, 8.00× the peer; 5 seeds together 0.50 ms (toy, other "
        "sizes) |",
        "| censor, toy sweep: training steps projected (6 × 1,000) | 0.0017 h | 0.02 h, 0.004 h seeds together |"]
    assert cli(["bench", "censor", "--markdown"]) == 2
    assert capsys.readouterr().err == ("error: bench --markdown: only with --show (it formats earlier results; "
                                       "measure with --json first)\n")


@pytest.mark.parametrize(("edit", "key", "shown"), [
    ({"ms_per_step": None}, "ms_per_step", "null"),
    ({"ms_per_step": "fast"}, "ms_per_step", '"fast"'),
    ({"peer_ratio": [1.2]}, "peer_ratio", "[1.2]"),
    ({"seeds_ms_per_step": 0.5, "seeds_together": None, "seeds_samples_per_s": 1.0, "seeds_speedup": 1.0},
     "seeds_together", "null"),
    ({"sweep": None}, "sweep", "null"),
    ({"sweep_steps_per_run": "many"}, "sweep_steps_per_run", '"many"'),
    ({"ms_per_step": 10 ** 400}, "ms_per_step", "1" + "0" * 39 + "…"),  # beyond a float
    ({"ms_per_step": True}, "ms_per_step", "true"),
    ({"ms_per_step": -1.0}, "ms_per_step", "-1.0"),
    ({"case": ["toy"]}, "case", '["toy"]'),
])
def test_show_markdown_names_a_damaged_value_it_reads(edit, key, shown, in_repo, tmp_path, monkeypatch, capsys):
    """--markdown reads fields the wide table shows as "–" when absent: each damaged one is a one-line DataError
    naming the file and key, never a traceback."""
    from replab.cli import main as cli
    from replab.io import read_json, write_json

    toy_bench(monkeypatch)
    path = tmp_path / "cpu.json"
    bench.main(["censor"], 4, json_path=str(path))
    data = read_json(path)
    data["results"][0].update(edit)
    write_json(path, data)
    capsys.readouterr()
    assert cli(["bench", "--show", str(path), "--markdown"]) == 2
    assert capsys.readouterr().err == (f"error: {path}: results[0].{key} = {shown}: not a value bench writes (a "
                                       "hand edit, or a file of another program)\n")


def test_show_markdown_leaves_out_a_run_that_stopped_before_its_first_paper(in_repo, tmp_path, monkeypatch, capsys):
    """bench writes its JSON at the start: a run that timed out in its first paper leaves `results: []`, which the
    table leaves out with a line on stderr (the other files' columns stay); sweeps of other sizes get rows of their
    own; a paper a hand edit repeats shows its first result."""
    from replab.io import read_json, write_json

    toy_bench(monkeypatch)
    cpu, quick, stopped = tmp_path / "cpu.json", tmp_path / "quick.json", tmp_path / "stopped.json"
    bench.main(["censor"], 4, json_path=str(cpu))
    data = read_json(cpu)
    first = {**data["results"][0], "ms_per_step": 2.0, "sweep_runs": 12, "sweep_steps_per_run": 600}
    write_json(quick, {**data, "results": [first, {**first, "ms_per_step": 9.0}]})
    write_json(stopped, {**data, "results": [], "complete": False, "not_run": ["censor"]})
    capsys.readouterr()
    bench.show([str(cpu), str(stopped), str(quick)], markdown=True)
    out, err = capsys.readouterr()
    assert err == f"bench --show: {stopped}: no results (the run stopped before its first paper); left out\n"
    rows = out.splitlines()
    assert rows[0].count("(`") == 2 and str(stopped) not in rows[0]
    assert rows[2:] == ["| censor (toy) | 1.00 ms, 3.00× the peer | 2.00 ms, 3.00× the peer |",
                        "| censor, toy sweep: training steps projected (6 × 1,000) | 0.0017 h | – |",
                        "| censor, toy sweep: training steps projected (12 × 600) | – | 0.0017 h |",
                        "", f"- {stopped}: no results (the run stopped before its first paper); left out"]


def test_show_names_what_is_wrong_with_a_file_in_one_line(in_repo, tmp_path, monkeypatch, capsys):
    """A folder, a binary file, a NaN token, lists bench writes given as other values, a step beyond a float in the
    wide table: one line each naming the file, advice for a bench file (not a DVC stage's); text with Markdown's
    column separator or a line break stays in its cell; two --show options add up."""
    from replab.cli import main as cli
    from replab.io import read_json, write_json

    toy_bench(monkeypatch)
    good = tmp_path / "good.json"
    bench.main(["censor"], 4, json_path=str(good))
    data = read_json(good)
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (tmp_path / "nan.json").write_text('{"results": NaN}')
    write_json(tmp_path / "not_run.json", {**data, "complete": False, "not_run": "censor"})
    write_json(tmp_path / "failed.json", {**data, "failed": 5})
    write_json(tmp_path / "huge.json", {**data, "results": [{**data["results"][0], "ms_per_step": 10 ** 400}]})
    capsys.readouterr()
    remedy = "write it with `replab bench --json`"
    for name, message in (
            (".", f"bench --show {tmp_path}/.: not a file (give JSON files written by `replab bench --json`)"),
            ("binary.json", f"{tmp_path}/binary.json: not UTF-8 text, as JSON is (an undecodable byte at offset 0); "
                            f"{remedy}"),
            ("nan.json", f"{tmp_path}/nan.json: holds the number NaN, which replab never writes (a missing value is "
                         f"null); {remedy}"),
            ("not_run.json", f'{tmp_path}/not_run.json: not_run = "censor": not a value bench writes (a list; a hand '
                             "edit, or a file of another program)"),
            ("failed.json", f"{tmp_path}/failed.json: failed = 5: not a value bench writes (a list; a hand edit, or a "
                            "file of another program)"),
            ("huge.json", f"{tmp_path}/huge.json: results[0].ms_per_step = 1{'0' * 39}…: not a value bench writes (a "
                          "hand edit, or a file of another program)")):
        assert cli(["bench", "--show", f"{tmp_path}/{name}"]) == 2, name
        assert capsys.readouterr().err == f"error: {message}\n"
    write_json(tmp_path / "other.json", {**data, "results": [*data["results"], {**data["results"][0], "paper": "gan"}]})
    assert cli(["bench", "--show", f"{tmp_path}/other.json"]) == 0
    assert capsys.readouterr().err == (f"bench --show: {tmp_path}/other.json: results[1] is of 'gan', not a paper of "
                                       "replab; left out\n")
    odd = tmp_path / "odd|name.json"
    write_json(odd, {**data, "results": [{**data["results"][0], "case": "a | b\nc"}]})
    assert cli(["bench", "--show", str(good), "--show", str(odd), "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].endswith(f"(`{str(odd).replace('|', chr(92) + '|')}`) |") and table[0].count("(`") == 2
    assert table[2] == "| censor (toy) | 1.00 ms, 3.00× the peer | 1.00 ms, 3.00× the peer (a \\| b c) |"
    assert cli(["bench", "--show", str(odd), "--markdown"]) == 0  # its own row: the case not repeated in its cell
    assert capsys.readouterr().out.splitlines()[2] == "| censor (a \\| b c) | 1.00 ms, 3.00× the peer |"


def test_show_reads_the_json_of_an_older_bench(in_repo, tmp_path, capsys):
    """A file of the first `--json` bench: no matmul_kernel, fraction_of_torch_mm, peer_ratio_rounds, cpus or
    compile fields. Its cells show what it has, "?" for a field a cell's text names but the file lacks."""
    from replab.io import write_json

    old = {"paper": "split_vae", "case": "exp2 hidden=500", "steps": 10, "rounds": 2, "warmup_steps": 3,
           "ms_per_step": 14.6, "ms_per_step_mean": 15.0, "samples_per_s": 17534.0, "flops_per_step": 1049800000,
           "gflops_per_s": 71.9, "matmul_size": 1024, "matmul_gflops_per_s": 148.0, "fraction_of_matmul": 0.486,
           "peer_ms_per_step": 17.6, "peer_ratio": 1.21,
           "run": {"device": "cpu", "device_name": "AMD EPYC", "cpu_capability": "AVX2", "threads": 2,
                   "load_avg_1m": 1.1}}
    write_json(tmp_path / "old.json", {"profile": "paper", "steps": 10, "results": [old], "failed": []})
    (result,) = bench.show([str(tmp_path / "old.json")])
    lines = capsys.readouterr().out.splitlines()
    width = lines[2].index(" ") + 2  # the label column: its dashes and the two spaces after them
    table = {line[:width].rstrip(): line[width:] for line in lines[3:]}
    assert table["fp32 matmul GFLOP/s"] == "148.0 (? 1024², best of ? before and ? after the steps)"
    assert table["replab ÷ peer (samples/s)"] == "1.21×" and table["  … each round alone"] == "–"
    assert table["load (1 min average)"] == "1.1 (incl. bench)"  # (no core count in the file)
    assert table["peer loop ms / step (median)"] == "17.60 (mean ?)"


def test_bad_input_found_while_a_paper_runs_keeps_what_ran_before_it(tmp_path, monkeypatch, capsys):
    """--seeds beyond the memory shows only when that paper runs: the papers measured before it keep their table
    and JSON (it and those after it not run), then the one-line error, exit status 2."""
    from replab.cli import main as cli
    from replab.io import read_json

    def run_bench(paper, *args):
        if paper == "aae_ssl":
            raise bench.ParamError("bench --seeds 90: aae_ssl's 90 seeds do not fit in cpu memory (give fewer)")
        return {"paper": paper}

    monkeypatch.setattr(bench, "run_bench", run_bench)
    monkeypatch.setattr(bench, "format_table", lambda results: "table of " + " ".join(r["paper"] for r in results))
    out = tmp_path / "bench.json"
    assert cli(["bench", "censor", "aae_ssl", "split_vae", "--seeds", "90", "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "table of censor\n"
    assert captured.err == "error: bench --seeds 90: aae_ssl's 90 seeds do not fit in cpu memory (give fewer)\n"
    assert read_json(out) == {"profile": None, "steps": 30, "complete": False, "not_run": ["aae_ssl", "split_vae"],
                              "results": [{"paper": "censor"}], "failed": [], "skipped": []}


def test_seeds_together_names_the_papers_whose_case_trains_seeds_together(in_repo):
    """`--seeds` is refused up front for papers outside SEEDS_TOGETHER: it must list exactly the papers whose
    bench case has a loop of seeds trained together."""
    from replab.papers import PAPERS
    from replab.params import load_section

    for paper in PAPERS:
        module, setup = bench.find_case(paper)
        case = setup(load_section(module.Config, paper), torch.device("cpu"))
        assert (case.train_seeds is not None) == (paper in bench.SEEDS_TOGETHER), paper
