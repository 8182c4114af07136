"""runtime.cuda_graph: each training iteration replayed as one CUDA graph (`rt.StepGraph`: the loops of aae_ssl,
split_vae and autoencoder). Real replays need a CUDA device and are skipped without one; the params, the plain-call
path and the loops' plumbing (with the capture emulated) are checked anywhere."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from conftest import REPO
from replab import runtime as rt
from replab.params import ParamError, Runtime, parse

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_graph_is_off_in_params_yaml_and_a_plain_call_off_cuda():
    runtime = parse(Runtime, yaml.safe_load((REPO / "params.yaml").read_text())["runtime"], "runtime")
    assert runtime.cuda_graph is False
    on = Runtime(cuda_graph=True)
    assert not rt.cuda_graph_on(on, torch.device("cpu"))
    seen = []
    step = rt.StepGraph(lambda x: seen.append(int(x)) or x * 2, on, torch.device("cpu"), "test")
    assert [int(step(torch.tensor(i))) for i in range(5)] == [0, 2, 4, 6, 8]
    assert seen == [0, 1, 2, 3, 4] and step.graph is None


@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_cuda_graph_refuses_compile_modes_that_make_cuda_graphs_too(mode):
    section = {"compile": True, "compile_mode": mode, "cuda_graph": True}
    with pytest.raises(ParamError) as err:
        parse(Runtime, section, "params.yaml: runtime")
    assert str(err.value) == (f"params.yaml: runtime.cuda_graph = true with compile_mode = '{mode}': both capture "
                              "CUDA graphs and one cannot hold the other (allowed with cuda_graph: compile false, or "
                              "compile_mode default, max-autotune-no-cudagraphs)")
    # the mode is only a setting while compile is off; torch.compile's default mode makes no CUDA graphs
    assert parse(Runtime, {**section, "compile": False}, "runtime").cuda_graph
    assert parse(Runtime, {**section, "compile_mode": "default"}, "runtime").cuda_graph


GRAPH_PAPERS = ("aae_ssl", "split_vae", "autoencoder")  # the loops built on rt.StepGraph (bench.CUDA_GRAPH_PAPERS)


def bench_case(paper: str, device):
    """`paper`'s bench case at params.yaml's (quick) sizes: its real training loop on synthetic data."""
    from replab.bench import find_case
    from replab.params import load_section

    module, setup = find_case(paper)
    cfg = load_section(module.Config, paper, params=yaml.safe_load((REPO / "params.yaml").read_text()))
    if paper == "aae_ssl":  # (see test_runtime's note on BatchNorm and Adam)
        cfg = dataclasses.replace(cfg, batchnorm=False)
    return setup(cfg, device)


def partial_batch_fit(device, runtime):
    """autoencoder's loop on 250 images in batches of 64: every epoch ends on a batch of 58, another shape."""
    from replab.papers import autoencoder
    from replab.papers.autoencoder.model import Schedule
    from replab.params import load_section
    from test_aae_ssl import synthetic_images

    cfg = load_section(autoencoder.Config, "autoencoder", params=yaml.safe_load((REPO / "params.yaml").read_text()))
    x = synthetic_images(250).x["train"].to(device)
    return autoencoder.fit(cfg, "simple", Schedule(epochs=3, batch_size=64), x, x, {}, rt.seeded_generator(0), device,
                           runtime)


@needs_cuda
@pytest.mark.parametrize("paper", GRAPH_PAPERS)
def test_replayed_iterations_give_the_eager_numbers(paper, monkeypatch):
    """20 iterations of each graph paper's loop at the quick sizes with and without runtime.cuda_graph: 18 replays
    after the 2 eager warm-up iterations, and the weights of the eager loop to float rounding (dropout masks, prior
    samples and split_vae's VAE noise drawn alike: a replay advances the default and the registered generators as
    the eager iteration does)."""
    from test_runtime import tensors_of

    replays = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda graph: replays.append(1) or replay(graph))
    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cuda", progress=False, cuda_graph=cuda_graph)
        device = rt.setup(runtime, 0)
        results[cuda_graph] = tensors_of(bench_case(paper, device).train(20, runtime))
    assert len(replays) == 20 - rt.StepGraph.WARMUP
    eager, replayed = results[False], results[True]
    assert len(eager) == len(replayed) > 0
    for a, b in zip(eager, replayed, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@needs_cuda
def test_a_partial_batch_between_replays_runs_eagerly_with_the_eager_numbers():
    from test_runtime import tensors_of

    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cuda", progress=False, cuda_graph=cuda_graph)
        results[cuda_graph] = tensors_of(partial_batch_fit(rt.setup(runtime, 0), runtime)[0])
    for a, b in zip(results[False], results[True], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@pytest.fixture
def emulated_capture(monkeypatch):
    """PyTorch's CUDA-graph capture emulated on the CPU: `cuda_graph_on` follows the param alone, a capture runs
    the step once (on a GPU it runs nothing) and the replay that follows it is skipped, and every later replay reruns
    the captured step on the captured inputs and writes its results into the captured outputs, as a real replay
    overwrites them. Yields (StepGraphs made, replays)."""
    import contextlib

    from torch.utils._pytree import tree_leaves

    made, replays = [], []

    class Recorded(rt.StepGraph):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    class FakeGraph:
        just_captured = False

        def register_generator_state(self, generator):
            pass

        def replay(self):
            replays.append(1)
            owner = next(m for m in made if m.graph is self)
            if self.just_captured:  # the emulated capture ran this call's iteration
                self.just_captured = False
                return
            outputs = owner.step(*owner.inputs)
            with torch.no_grad():
                for captured, new in zip(tree_leaves(owner.outputs), tree_leaves(outputs), strict=True):
                    captured.copy_(new)

    @contextlib.contextmanager
    def capture(graph):
        yield
        graph.just_captured = True

    class FakeStream:
        def wait_stream(self, other):
            pass

    monkeypatch.setattr(rt, "StepGraph", Recorded)
    monkeypatch.setattr(rt, "cuda_graph_on", lambda runtime, device: runtime.cuda_graph)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    return made, replays


@pytest.mark.parametrize("paper", ["aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat"])
def test_step_graph_plumbing_with_the_capture_emulated_on_a_cpu(paper, emulated_capture):
    """Each paper's loop (its bench case, quick sizes) with runtime.cuda_graph and the capture emulated: the graph
    papers make one StepGraph whose replays (all but the first 2 of 12 or more iterations) give the eager numbers
    bit for bit (each call's
    index batch copied into the captured inputs, the losses read from the captured outputs after every replay, 2
    eager warm-up iterations and one capture first; it fails when the inputs are not copied), and exactly they do
    (bench.CUDA_GRAPH_PAPERS lists them); the others train as without the param."""
    from replab.bench import CUDA_GRAPH_PAPERS
    from test_runtime import tensors_of

    made, replays = emulated_capture
    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cpu", progress=False, cuda_graph=cuda_graph)
        device = rt.setup(runtime, 0)
        results[cuda_graph] = tensors_of(bench_case(paper, device).train(12, runtime))
    assert set(CUDA_GRAPH_PAPERS) == set(GRAPH_PAPERS)
    if paper in GRAPH_PAPERS:
        # (the eager run's, then the emulated one's; split_vae and autoencoder run whole epochs: 12 steps or more)
        assert len(made) == 2 and not made[0].enabled and made[1].calls >= 12
        assert len(replays) == made[1].calls - rt.StepGraph.WARMUP
    else:
        assert made == [] and replays == []
    assert len(results[True]) == len(results[False]) > 0
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))


def test_a_partial_batch_runs_eagerly_between_emulated_replays(emulated_capture):
    """autoencoder on 250 images in batches of 64, 3 epochs: the 3 batches of 58 run eagerly (no replay), the 9 full
    ones are 2 warm-ups, a capture and 6 more replays, and the weights equal the eager loop's bit for bit."""
    from test_runtime import tensors_of

    made, replays = emulated_capture
    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cpu", progress=False, cuda_graph=cuda_graph)
        results[cuda_graph] = tensors_of(partial_batch_fit(rt.setup(runtime, 0), runtime)[0])
    assert made[1].calls == 9 and len(replays) == 7
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))
