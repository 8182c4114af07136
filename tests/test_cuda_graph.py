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
    return setup(load_section(module.Config, paper, params=yaml.safe_load((REPO / "params.yaml").read_text())), device)


def partial_batch_fit(paper: str, device, runtime):
    """The trained model of `paper`'s loop (split_vae, autoencoder) on 250 images in batches of 64: every epoch ends
    on a batch of 58, another shape; split_vae also draws its epochs' permutations and that batch's noise eagerly
    from the generator its replays draw from."""
    from replab.papers import autoencoder, split_vae
    from replab.papers.autoencoder.model import Schedule
    from replab.params import load_section
    from test_aae_ssl import synthetic_images

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    data = synthetic_images(250)
    x, y = data.x["train"].to(device), data.y["train"].to(device)
    if paper == "split_vae":
        cfg = dataclasses.replace(load_section(split_vae.Config, paper, params=params), batch_size=64)
        return split_vae.fit(cfg, 4, 3, x, y, rt.seeded_generator(0, device), device, runtime)[0]
    cfg = load_section(autoencoder.Config, paper, params=params)
    return autoencoder.fit(cfg, "simple", Schedule(epochs=3, batch_size=64), x, x, {}, rt.seeded_generator(0), device,
                           runtime)[0]


class Recorded(rt.StepGraph):
    """rt.StepGraph, keeping every one made (in `made`)."""

    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Recorded.made.append(self)


@needs_cuda
@pytest.mark.parametrize("paper", GRAPH_PAPERS)
def test_replayed_iterations_give_the_eager_numbers(paper, monkeypatch):
    """20 or more iterations (whole epochs) of each graph paper's loop at the quick sizes, params.yaml's config
    (aae_ssl's BatchNorm on), with and without runtime.cuda_graph: every iteration after the eager warm-up ones a
    replay, and the weights of the eager loop to float rounding (dropout masks, prior samples and split_vae's VAE
    noise drawn alike: a replay advances the default and the registered generators as the eager iteration does)."""
    from test_runtime import tensors_of

    replays = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda graph: replays.append(1) or replay(graph))
    monkeypatch.setattr(rt, "StepGraph", Recorded)
    monkeypatch.setattr(Recorded, "made", [])
    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cuda", progress=False, cuda_graph=cuda_graph)
        device = rt.setup(runtime, 0)
        results[cuda_graph] = tensors_of(bench_case(paper, device).train(20, runtime))
    graph = Recorded.made[-1]
    assert graph.calls >= 20 and len(replays) == graph.calls - rt.StepGraph.WARMUP
    eager, replayed = results[False], results[True]
    assert len(eager) == len(replayed) > 0
    for a, b in zip(eager, replayed, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("paper", ["split_vae", "autoencoder"])
def test_a_partial_batch_between_replays_runs_eagerly_with_the_eager_numbers(paper):
    from test_runtime import tensors_of

    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cuda", progress=False, cuda_graph=cuda_graph)
        results[cuda_graph] = tensors_of(partial_batch_fit(paper, rt.setup(runtime, 0), runtime))
    for a, b in zip(results[False], results[True], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@pytest.fixture
def emulated_capture(monkeypatch):
    """PyTorch's CUDA-graph capture emulated on the CPU: `cuda_graph_on` follows the param alone, a capture runs
    the step once (on a GPU it runs nothing) and the replay that follows it is skipped, and every later replay reruns
    the captured step on the captured inputs and writes its results into the captured outputs, as a real replay
    overwrites them. Yields (StepGraphs made, replays). A real replay reruns no Python: state the step changes in
    Python (a flag, a counter) would change once, at capture, which this emulation cannot show."""
    import contextlib

    from torch.utils._pytree import tree_leaves

    made, replays = [], []
    monkeypatch.setattr(Recorded, "made", made)

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
    def capture(graph, stream=None):
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


@pytest.mark.parametrize("paper", ["split_vae", "autoencoder"])
def test_a_partial_batch_runs_eagerly_between_emulated_replays(paper, emulated_capture):
    """250 images in batches of 64, 3 epochs: the 3 batches of 58 run eagerly (no replay), the 9 full ones are 3
    warm-ups, a capture and 5 more replays, and the weights equal the eager loop's bit for bit."""
    from test_runtime import tensors_of

    made, replays = emulated_capture
    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cpu", progress=False, cuda_graph=cuda_graph)
        results[cuda_graph] = tensors_of(partial_batch_fit(paper, rt.setup(runtime, 0), runtime))
    assert made[1].calls == 9 and len(replays) == 9 - rt.StepGraph.WARMUP
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))


def test_bench_names_a_loop_replayed_only_for_the_graph_papers_on_cuda():
    """runtime.cuda_graph from params.yaml reaches every paper's bench; only the graph papers' loops replay (censor
    and attention_vat train eagerly under it), and nothing replays off CUDA."""
    from replab.bench import replays_iterations

    on = Runtime(cuda_graph=True)
    assert not any(replays_iterations(paper, on, torch.device("cpu")) for paper in GRAPH_PAPERS)
    cuda = torch.device("cuda")  # (a device name: nothing here asks for a GPU)
    assert [p for p in ("aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat")
            if replays_iterations(p, on, cuda)] == list(GRAPH_PAPERS)
    assert not replays_iterations("aae_ssl", Runtime(), cuda)


def test_a_checkpoint_without_cuda_graph_resumes_with_capturable_optimizers(monkeypatch):
    """Optimizer.load_state_dict restores the saved groups' `capturable`; keep_capturable sets this run's back (a
    checkpoint of a run without runtime.cuda_graph, resumed with it, would otherwise fail its capture)."""
    params = [torch.nn.Parameter(torch.ones(3))]
    saved = torch.optim.Adam(params, fused=True).state_dict()
    monkeypatch.setattr(rt, "cuda_graph_on", lambda runtime, device: runtime.cuda_graph)
    opt = rt.optimizer(torch.optim.Adam, params, fused=True, capturable=True)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["capturable"] is False  # (PyTorch's behaviour this guards against)
    rt.keep_capturable(Runtime(cuda_graph=True), torch.device("cpu"), opt, None)
    assert opt.param_groups[0]["capturable"] is True
    rt.keep_capturable(Runtime(), torch.device("cpu"), opt)
    assert opt.param_groups[0]["capturable"] is False
