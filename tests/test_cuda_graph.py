"""runtime.cuda_graph: each training iteration replayed as one CUDA graph (`rt.StepGraph`: every paper's training
loop, one graph per batch shape for attention_vat, and aae_ssl's seeds trained together). Real replays need a CUDA
device and are skipped without one; the params, the plain-call path and the loops' plumbing (with the capture
emulated) are checked anywhere."""

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
    assert seen == [0, 1, 2, 3, 4] and step.captures == {}


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


GRAPH_PAPERS = ("aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat")  # loops on rt.StepGraph
STEP_GRAPHS = {"censor": 2}  # StepGraphs a bench case's loop makes (censor: its step 1 and its step 2), else 1


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


def train_both_ways(train, device: str) -> tuple[list, list]:
    """`train(runtime, device)` without and with runtime.cuda_graph, each after rt.setup (seed 0) → (eager, with the
    param) tensors (`test_runtime.tensors_of`)."""
    from test_runtime import tensors_of

    results = []
    for cuda_graph in (False, True):
        runtime = Runtime(device=device, progress=False, cuda_graph=cuda_graph)
        results.append(tensors_of(train(runtime, rt.setup(runtime, 0))))
    return results[0], results[1]


@pytest.fixture
def eager_and_replayed(monkeypatch):
    """`run(train)`: `train(runtime, device)` on CUDA without and with runtime.cuda_graph → (eager, replayed) tensors,
    after checking that the replayed run made StepGraphs and replayed exactly their graphed calls past the warm-ups
    (CUDAGraph.replay counted), at least once."""
    replays = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda graph: replays.append(1) or replay(graph))
    monkeypatch.setattr(rt, "StepGraph", Recorded)
    monkeypatch.setattr(Recorded, "made", [])

    def fresh(train):  # the replayed run's StepGraphs only
        return lambda runtime, device: Recorded.made.clear() or train(runtime, device)

    def run(train):
        eager, replayed = train_both_ways(fresh(train), "cuda")
        assert Recorded.made and all(g.enabled for g in Recorded.made)
        assert len(replays) == sum(g.replays for g in Recorded.made) > 0
        assert len(eager) == len(replayed) > 0
        return eager, replayed

    return run


def assert_close_all(eager: list, replayed: list) -> None:
    for a, b in zip(eager, replayed, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("paper", GRAPH_PAPERS)
def test_replayed_iterations_give_the_eager_numbers(paper, eager_and_replayed):
    """20 or more iterations (whole epochs) of each paper's loop at the quick sizes, params.yaml's config (aae_ssl's
    BatchNorm on), with and without runtime.cuda_graph: every iteration after the eager warm-up ones a replay, and the
    weights of the eager loop to float rounding (dropout masks, prior samples and split_vae's VAE noise drawn alike: a
    replay advances the default and the registered generators as the eager iteration does)."""
    assert_close_all(*eager_and_replayed(lambda runtime, device: bench_case(paper, device).train(20, runtime)))
    assert all(g.calls >= 20 for g in Recorded.made)


@needs_cuda
@pytest.mark.parametrize("paper", ["split_vae", "autoencoder"])
def test_a_partial_batch_between_replays_runs_eagerly_with_the_eager_numbers(paper, eager_and_replayed):
    assert_close_all(*eager_and_replayed(lambda runtime, device: partial_batch_fit(paper, device, runtime)))


@needs_cuda
def test_seeds_trained_together_replay_with_the_eager_numbers_on_cuda(eager_and_replayed):
    """aae_ssl's 2 seeds trained together for 20 iterations, eager and replayed (each seed's stream registered)."""
    assert_close_all(*eager_and_replayed(
        lambda runtime, device: bench_case("aae_ssl", device).train_seeds(20, 2, runtime)))


@needs_cuda
@pytest.mark.parametrize("method", ["afl_mlp", "sct", "lsm"])
def test_censor_steps_replay_with_the_eager_numbers_on_cuda(method, eager_and_replayed):
    """censor's pretraining (partial batches between replays) and both post-processing steps, eager and replayed."""
    assert_close_all(*eager_and_replayed(lambda runtime, device: censor_training(method, runtime, device)))


@needs_cuda
@pytest.mark.parametrize("method", ["word_ivat", "attention_vat", "attention_iat"])
def test_attention_vat_graphs_per_batch_shape_give_the_eager_numbers_on_cuda(method, eager_and_replayed):
    """attention_vat's iterations replayed, one graph per batch shape (cuDNN's LSTM, VAT's inner autograd.grad and its
    random start from the registered generator inside), eager and replayed."""
    assert_close_all(*eager_and_replayed(lambda runtime, device: attention_vat_training(method, runtime, device)))


@pytest.fixture
def emulated_capture(monkeypatch):
    """PyTorch's CUDA-graph capture emulated on the CPU: `cuda_graph_on` follows the param alone, a capture runs
    the step once (on a GPU it runs nothing) and the replay that follows it is skipped, and every later replay reruns
    the captured step on the captured inputs and writes its results into the captured outputs, as a real replay
    overwrites them. A replay reads the tensors the capture read: the step's closure variables are set back to what
    they held at capture while it reruns (a loop that rebinds one to a new tensor would train on the captured one,
    as on a GPU). A host read inside the capture (`.item()`, `bool(t)`, `.cpu()`, … of a tensor: a sync on CUDA,
    which a capture refuses) fails it, the steps taking their CUDA branches there. Yields (StepGraphs made, replays).
    Beyond its reach: tensors the step reaches through other objects than its own closure variables; state the step
    changes in Python (a flag, a counter), which a real replay does not rerun; and capturable unfused optimizers
    (built without `capturable` here: the CPU has no capturable path for them)."""
    import contextlib
    import functools
    import sys

    from torch.utils._pytree import tree_leaves

    from replab.functional import rescale_underflowing_rows
    from replab.papers.attention_vat import model as attention_vat_model

    made, replays = [], []
    monkeypatch.setattr(Recorded, "made", made)

    class FakeGraph:
        just_captured = False

        def __init__(self):
            self.registered = []

        def register_generator_state(self, generator):
            self.registered.append(generator)

        def replay(self):
            replays.append(1)
            owner, capture = next((m, c) for m in made for c in m.captures.values() if c.graph is self)
            cells = [c for c in owner.step.__closure__ or () if c.cell_contents is not None]
            if self.just_captured:  # the emulated capture ran this call's iteration
                self.just_captured = False
                self.captured = [c.cell_contents for c in cells]
                return
            now = [c.cell_contents for c in cells]
            for cell, value in zip(cells, self.captured, strict=True):
                cell.cell_contents = value
            try:
                outputs = owner.step(*capture.inputs)
            finally:
                for cell, value in zip(cells, now, strict=True):
                    cell.cell_contents = value
            with torch.no_grad():
                for captured, new in zip(tree_leaves(capture.outputs), tree_leaves(outputs), strict=True):
                    captured.copy_(new)

    def host_read(name):  # a Tensor method that copies a value to the host: on CUDA a sync, refused in a capture
        real = getattr(torch.Tensor, name)

        def refused(self, *args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("torch.optim"):  # unfused optimizers built here without `capturable`, which they
                return real(self, *args, **kwargs)  # have on CUDA (their capturable path reads nothing)
            raise RuntimeError(f"operation not permitted when stream is capturing (emulated: Tensor.{name} reads a "
                               f"value into Python, called from {caller})")
        return refused

    @contextlib.contextmanager
    def capture(graph, stream=None):
        # the CUDA branches of replab's device-dependent steps: the library's clip_grad_norm_, the unconditional
        # rescale of underflowing rows (the same values as their CPU branches, which read a value to skip work)
        with pytest.MonkeyPatch.context() as capturing:
            capturing.setattr(rt, "clip_grad_norm_", torch.nn.utils.clip_grad_norm_)
            capturing.setattr(attention_vat_model, "rescale_underflowing_rows",
                              functools.partial(rescale_underflowing_rows, sync_free=True))
            for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__"):
                capturing.setattr(torch.Tensor, name, host_read(name))
            yield
        graph.just_captured = True

    class FakeStream:
        def wait_stream(self, other):
            pass

    optimizer = rt.optimizer

    def cpu_optimizer(optimizer_class, params, **kwargs):  # capturable unfused optimizers need CUDA tensors
        return optimizer(optimizer_class, params, **{**kwargs, "capturable": kwargs.get("capturable", False)
                                                     and bool(kwargs.get("fused"))})

    monkeypatch.setattr(rt, "StepGraph", Recorded)
    monkeypatch.setattr(rt, "cuda_graph_on", lambda runtime, device: runtime.cuda_graph)
    monkeypatch.setattr(rt, "optimizer", cpu_optimizer)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    return made, replays


def test_the_emulated_capture_shows_a_rebound_tensor_and_refuses_a_host_read(emulated_capture):
    """What the emulation is there to catch, on toy steps: a loop that binds a new tensor to a name its step reads
    trains, from the capture on, on the captured one (as a GPU would), unlike one that refills it in place; and a step
    that reads a value into Python cannot be captured (one line naming the run and the read)."""
    scale = torch.zeros(())

    def step(x):
        return x * scale

    rebound, seen = rt.StepGraph(step, Runtime(cuda_graph=True), torch.device("cpu"), "rebound"), []
    for i in range(6):
        scale = torch.full((), float(i))
        seen.append(float(rebound(torch.ones(()))))
    assert seen == [0.0, 1.0, 2.0, 3.0, 3.0, 3.0]  # 3 warm-ups, the capture (i = 3), 2 replays of it
    scale = torch.zeros(())
    refill, refilled = rt.StepGraph(step, Runtime(cuda_graph=True), torch.device("cpu"), "refilled"), []
    for i in range(6):
        scale.copy_(torch.full((), float(i)))
        refilled.append(float(refill(torch.ones(()))))
    assert refilled == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    reads = rt.StepGraph(lambda x: x * float(x.sum()), Runtime(cuda_graph=True), torch.device("cpu"), "toy run")
    for _ in range(rt.StepGraph.WARMUP):
        reads(torch.ones(2))
    with pytest.raises(ParamError, match=r"^toy run: runtime.cuda_graph: the training iteration cannot be captured as "
                                         r"a CUDA graph \(RuntimeError: operation not permitted when stream is "
                                         r"capturing \(emulated: Tensor.__float__ reads"):
        reads(torch.ones(2))


def test_eager_calls_hide_only_pytorchs_advice_against_capturable_optimizers(emulated_capture):
    """A capturable optimizer's first uncaptured step warns "If you never intend to graph-capture this instance …
    set capturable=False" (torch.optim.Optimizer, on CUDA): StepGraph's warm-up steps are uncaptured on purpose, so
    that advice is dropped there; any other warning of the step still shows."""
    import warnings

    advice = ("This instance was constructed with capturable=True or some of all the param_groups came with "
              "capturable=True, but step() is running without CUDA graph capture. If you never intend to graph-capture "
              "this instance, capturable=True can impair performance, and you should set capturable=False.")

    def step(x):
        warnings.warn(advice, UserWarning, stacklevel=2)
        warnings.warn("the step's own warning", UserWarning, stacklevel=2)
        return x * 2

    graph = rt.StepGraph(step, Runtime(cuda_graph=True), torch.device("cpu"), "test")
    with pytest.warns(UserWarning) as seen:
        graph(torch.ones(2))
    assert [str(w.message) for w in seen] == ["the step's own warning"]
    with pytest.warns(UserWarning) as seen:  # outside StepGraph's eager calls it still shows
        step(torch.ones(2))
    assert [str(w.message) for w in seen] == [advice, "the step's own warning"]


@pytest.mark.parametrize("paper", GRAPH_PAPERS)
def test_step_graph_plumbing_with_the_capture_emulated_on_a_cpu(paper, emulated_capture):
    """Each paper's loop (its bench case, quick sizes) with runtime.cuda_graph and the capture emulated: it makes its
    StepGraphs (censor: one for step 1, one for step 2) whose replays (all but the first 3 calls of a shape, of 12 or
    more iterations) give the eager numbers bit for bit (each call's index batch copied into the captured inputs,
    the losses read from the captured outputs after every replay; it fails when the inputs are not copied). Every
    paper's loop does (bench.CUDA_GRAPH_PAPERS)."""
    from replab.bench import CUDA_GRAPH_PAPERS

    made, replays = emulated_capture
    results = dict(zip((False, True), train_both_ways(
        lambda runtime, device: bench_case(paper, device).train(12, runtime), "cpu"), strict=True))
    assert CUDA_GRAPH_PAPERS == GRAPH_PAPERS
    # (the eager run's, then the emulated one's; split_vae and autoencoder run whole epochs: 12 steps or more)
    n = STEP_GRAPHS.get(paper, 1)
    assert len(made) == 2 * n and not any(g.enabled for g in made[:n]) and all(g.calls >= 12 for g in made[n:])
    assert len(replays) == sum(g.replays for g in made[n:])
    assert len(results[True]) == len(results[False]) > 0
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))


@pytest.mark.parametrize("paper", ["split_vae", "autoencoder"])
def test_a_partial_batch_runs_eagerly_between_emulated_replays(paper, emulated_capture):
    """250 images in batches of 64, 3 epochs: the 3 batches of 58 run eagerly (no replay), the 9 full ones are 3
    warm-ups, a capture and 5 more replays, and the weights equal the eager loop's bit for bit."""

    made, replays = emulated_capture
    results = dict(zip((False, True), train_both_ways(
        lambda runtime, device: partial_batch_fit(paper, device, runtime), "cpu"), strict=True))
    assert made[1].calls == 9 and len(replays) == 9 - rt.StepGraph.WARMUP
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))


def test_seeds_trained_together_replay_with_the_eager_numbers(emulated_capture):
    """aae_ssl's seeds trained together (`fit_seeds`, bench's `--seeds`; quick sizes, 2 seeds, 12 iterations): one
    StepGraph for all seeds' iteration, each seed's noise stream registered with it, the weights of the eager loop
    bit for bit."""

    made, replays = emulated_capture
    results = dict(zip((False, True), train_both_ways(
        lambda runtime, device: bench_case("aae_ssl", device).train_seeds(12, 2, runtime), "cpu"), strict=True))
    assert len(made) == 2 and made[1].calls == 12 and len(replays) == 12 - rt.StepGraph.WARMUP
    (capture,) = made[1].captures.values()
    registered = capture.graph.registered
    assert len(registered) == 2 and all(isinstance(g, torch.Generator) for g in registered)
    assert len(results[True]) == len(results[False]) > 0
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))


def censor_training(method: str, runtime, device=None) -> list:
    """censor's pretraining (3 epochs of 45 windows in batches of 10: each ends on a batch of 5) and 5 repetitions
    of `method`'s post-processing (2 step-1 and 3 step-2 batches each) on tiny windows: the checkpoints after each
    repetition and step 1's history."""
    from replab.papers import censor as cs

    device = device or torch.device("cpu")
    x = torch.randn(45, 1, 2, 8, generator=torch.Generator().manual_seed(0)).to(device)
    y, s = (torch.arange(45) % 3).to(device), ((torch.arange(45) // 3) % 4).to(device)
    data = cs.Windows({"train": x}, {"train": y}, {"train": s}, 3, 4, "test", "tiny")
    gen = rt.seeded_generator(0, device)
    cfg = parse(cs.Config, {"encoder": {"filters": [2], "fc": 8}, "pretrain": {"epochs": 3, "batch_size": 10},
                            "adversarial": {"lr": 1e-3, "batch_size": 10, "adversary_samples": 20,
                                            "encoder_samples": 30, "repetitions": 5, "adversary_hidden": [16],
                                            "adversary_hidden_dnn": [16, 8], "similarity_hidden": [16, 8]}}, "censor")
    torch.manual_seed(0)
    encoder, classifier, _ = cs.pretrain(cfg, data, device, runtime, gen)
    checkpoints, _, history = cs.adversarial_postprocess(cfg, method, 1.0, encoder, classifier, data, device, runtime,
                                                         gen)
    return [checkpoints, torch.tensor([history["adversary_loss"], history["adversary_accuracy"]])]


@pytest.mark.parametrize("method", ["afl_mlp", "afl_dnn", "sct", "lsm"])
def test_censor_pretraining_and_both_steps_replay_with_the_eager_numbers(method, emulated_capture):
    """Each method's step 1 and step 2 as two StepGraphs: pairs drawn outside them and copied in, z of the fixed E
    refilled into the tensor the step-1 capture read, every repetition's checkpoint and step-1 history (losses and
    correct guesses, read from the captured outputs) as eager bit for bit; pretraining's graph runs its partial
    batches eagerly."""

    made, replays = emulated_capture
    results = dict(zip((False, True), train_both_ways(
        lambda runtime, device: censor_training(method, runtime, device), "cpu"), strict=True))
    pretrain, step1, step2 = made[3:]  # (after the eager run's three)
    assert (pretrain.calls, step1.calls, step2.calls) == (12, 10, 15)  # full batches; 5 repetitions × 2 and × 3
    assert len(replays) == 12 + 10 + 15 - 3 * rt.StepGraph.WARMUP
    assert len(results[True]) == len(results[False]) == 6 * 6 + 1  # 6 checkpoints of E (4 tensors) + M (2), history
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))


def attention_vat_training(method: str, runtime, device=None) -> list:
    """`method` trained for 6 epochs of 6 batches (4 labeled sentences of 5 … 12 tokens each, and for the VAT methods 4
    of a 24-sentence pool of 5 … 9): batches cut to their longest sentence take several shapes, each called often
    enough for a graph of its own. Returns the model and its record's history."""
    from replab.bench import synthetic_sentences
    from replab.loaders.text import TextData
    from replab.papers import attention_vat as av
    from replab.papers.attention_vat.train import fit

    device = device or torch.device("cpu")
    (tok, ln, y), (ut, ul, _), (dt, dl, dy) = (synthetic_sentences(n, 40, length, device, seed=s)
                                               for n, length, s in ((24, 12, 1), (24, 9, 2), (8, 12, 3)))
    data = TextData({"train": tok, "dev": dt, "unlabeled": ut}, {"train": ln, "dev": dl, "unlabeled": ul},
                    {"train": y, "dev": dy}, 40, {"pad": 0, "unk": 1}, None, "synthetic", "tiny")
    # (lr 0.05: the embeddings move enough for Word iAT's neighbours to change every epoch)
    cfg = parse(av.Config, {"dataset": "rt_snippets", "datasets": ["rt_snippets"], "embedding_dim": 8, "hidden": 6,
                            "attention_dim": 5, "dropout": 0.2, "lr": 0.05, "epochs": 6, "batch_size": 4,
                            "batch_unlabeled": 4, "neighbours": 3}, "attention_vat")
    model, record = fit(cfg, method, data, 24 if method.endswith("vat") else 0, 0, device, runtime)
    return [model, torch.tensor([[h[k] for k in ("loss", "nll", "adv", "dev_auc")] for h in record["history"]])]


@pytest.mark.parametrize("method", ["vanilla", "word_at", "word_iat", "word_vat", "word_ivat", "attention_at",
                                    "attention_iat", "attention_vat", "attention_ivat"])
def test_attention_vat_replays_one_graph_per_batch_shape_with_the_eager_numbers(method, emulated_capture):
    """Every method: a graph for each batch shape (lengths differ from batch to batch), each shape's first 3 calls
    eager, the rest replays; the dropout masks, VAT's random start and the neighbours of Word iAT / iVAT (recomputed
    each epoch into the tensor the capture read) as in the eager loop: its weights and history bit for bit."""

    made, replays = emulated_capture
    results = dict(zip((False, True), train_both_ways(
        lambda runtime, device: attention_vat_training(method, runtime, device), "cpu"), strict=True))
    graph = made[-1]
    assert len(graph.captures) >= 2 and len(replays) == graph.replays > 0
    assert len(results[True]) == len(results[False]) > 0
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False], strict=True))


def test_bench_names_a_loop_replayed_only_for_the_graph_papers_on_cuda():
    """bench.replays_iterations (what bench's table and JSON say of a loop): every paper's loop replays with
    runtime.cuda_graph on a CUDA device, none off CUDA or without the param."""
    from replab.bench import replays_iterations

    on = Runtime(cuda_graph=True)
    assert not any(replays_iterations(paper, on, torch.device("cpu")) for paper in GRAPH_PAPERS)
    cuda = torch.device("cuda")  # (a device name: nothing here asks for a GPU)
    assert [p for p in ("aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat")
            if replays_iterations(p, on, cuda)] == list(GRAPH_PAPERS)
    assert not replays_iterations("aae_ssl", Runtime(), cuda)


@pytest.mark.parametrize("optimizer_class, kwargs", [(torch.optim.Adam, {"fused": True}), (torch.optim.Adam, {}),
                                                     (torch.optim.RMSprop, {})])
def test_a_checkpoint_without_cuda_graph_resumes_with_capturable_optimizers(optimizer_class, kwargs, monkeypatch):
    """Optimizer.load_state_dict restores the saved groups' `capturable`, and an unfused optimizer's step counts where
    the saved setting kept them (a checkpoint of an eager run: on the CPU); keep_capturable sets this run's setting
    and puts the counts on the parameters' device (a "meta" device stands in for CUDA), and a run without the flag
    keeps them on the CPU. (A capturable step refuses step counts off the parameters' device: "params and
    state_steps must be on supported devices", which this CPU cannot show.)"""
    cpu = [torch.nn.Parameter(torch.ones(3))]
    eager = optimizer_class(cpu, **kwargs)
    cpu[0].grad = torch.ones(3)
    eager.step()
    saved = eager.state_dict()
    monkeypatch.setattr(rt, "cuda_graph_on", lambda runtime, device: runtime.cuda_graph)
    params = [torch.nn.Parameter(torch.ones(3, device="meta"))]
    opt = rt.optimizer(optimizer_class, params, **{**kwargs, "capturable": True})
    opt.load_state_dict(saved)
    step = lambda: opt.state[params[0]]["step"]  # noqa: E731
    assert opt.param_groups[0]["capturable"] is False  # (PyTorch's behaviour this guards against)
    assert step().device.type == ("meta" if kwargs.get("fused") else "cpu")
    rt.keep_capturable(Runtime(cuda_graph=True), torch.device("cpu"), opt, None)
    assert opt.param_groups[0]["capturable"] is True
    assert (step().device.type, step().dtype, float(step().to("cpu") if step().device.type != "meta" else 1)) == (
        "meta", torch.float32, 1.0)
    again = rt.optimizer(optimizer_class, cpu, **kwargs)  # a run without the flag resuming a run with it
    again.load_state_dict({**saved, "param_groups": [{**g, "capturable": True} for g in saved["param_groups"]]})
    rt.keep_capturable(Runtime(), torch.device("cpu"), again)
    assert again.param_groups[0]["capturable"] is False and again.state[cpu[0]]["step"].device.type == "cpu"
