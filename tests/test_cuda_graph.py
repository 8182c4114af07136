"""runtime.cuda_graph: each training iteration replayed as one CUDA graph (`rt.StepGraph`, aae_ssl's loop). The
replays need a CUDA device and are skipped without one; the params and the plain-call path are checked anywhere."""

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


@needs_cuda
@pytest.mark.parametrize("model", ["aae_yz", "ae"])
def test_replayed_aae_ssl_iterations_give_the_eager_numbers(model, monkeypatch):
    """20 iterations of aae_ssl's loop (evaluations at 5, 10, … in between) with and without runtime.cuda_graph:
    18 replays after the 2 eager warm-up iterations, and the weights of the eager loop to float rounding (dropout
    masks and prior samples drawn alike: a replay advances the default generator as the eager iteration does)."""
    from replab.papers import aae_ssl
    from test_aae_ssl import synthetic_images, tiny_cfg
    from test_runtime import tensors_of

    cfg = dataclasses.replace(tiny_cfg(iterations=20, eval_every=5), batchnorm=False)  # (see test_runtime's note)
    replays = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda graph: replays.append(1) or replay(graph))
    results = {}
    for cuda_graph in (False, True):
        runtime = Runtime(device="cuda", progress=False, cuda_graph=cuda_graph)
        device = rt.setup(runtime, 0)
        data = synthetic_images()
        data = dataclasses.replace(data, x={k: v.to(device) for k, v in data.x.items()},
                                   y={k: v.to(device) for k, v in data.y.items()})
        results[cuda_graph] = tensors_of(aae_ssl.fit(cfg, model, cfg.z_dim, 100, 20, 0, data, device, runtime)[:3])
    assert len(replays) == 20 - rt.StepGraph.WARMUP
    eager, replayed = results[False], results[True]
    assert len(eager) == len(replayed) > 0
    for a, b in zip(eager, replayed, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_step_graph_plumbing_with_the_capture_emulated_on_a_cpu(monkeypatch):
    """aae_ssl's loop through rt.StepGraph with PyTorch's capture emulated (no CUDA here): a fake graph whose
    replay reruns the captured step on the captured inputs and writes its results into the captured outputs, as a
    real replay overwrites them. The loop must then give the eager numbers bit for bit: each call's index batch
    copied into the captured inputs, the losses read from the captured outputs after every replay, 2 eager
    warm-up iterations and one capture before the replays (a capture runs nothing on a GPU: here it runs the
    iteration, and the replay that follows it is skipped)."""
    import contextlib

    from torch.utils._pytree import tree_leaves

    from replab.papers import aae_ssl
    from test_aae_ssl import synthetic_images, tiny_cfg
    from test_runtime import tensors_of

    made, replays = [], []

    class Recorded(rt.StepGraph):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    class FakeGraph:
        just_captured = False

        def replay(self):
            replays.append(1)
            owner = made[-1]
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

    cfg = tiny_cfg(iterations=12, eval_every=4)
    results = {}
    for cuda_graph in (False, True):
        with monkeypatch.context() as m:
            if cuda_graph:
                m.setattr(rt, "StepGraph", Recorded)
                m.setattr(rt, "cuda_graph_on", lambda runtime, device: runtime.cuda_graph)
                m.setattr(torch.cuda, "CUDAGraph", FakeGraph)
                m.setattr(torch.cuda, "graph", capture)
                m.setattr(torch.cuda, "Stream", FakeStream)
                m.setattr(torch.cuda, "current_stream", FakeStream)
                m.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
            runtime = Runtime(device="cpu", progress=False, cuda_graph=cuda_graph)
            device = rt.setup(runtime, 0)
            encoder, decoder, best, _ = aae_ssl.fit(cfg, "aae_yz", cfg.z_dim, 100, 12, 0, synthetic_images(), device,
                                                    runtime)
            results[cuda_graph] = (best, tensors_of((encoder, decoder)))
    assert len(made) == 1 and made[0].calls == 12 and len(replays) == 12 - rt.StepGraph.WARMUP
    assert results[True][0] == results[False][0]
    assert all(torch.equal(a, b) for a, b in zip(results[True][1], results[False][1], strict=True))
