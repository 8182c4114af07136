"""autoencoder training: Keras `fit` (shuffled batches, the last one partial, fixed epochs, final weights) for the
four blog models, and the per-class models of the anomaly stage."""

from __future__ import annotations

import math

import torch

from replab import runtime as rt
from replab.batches import index_batches, rows
from replab.checkpoint import Checkpoints
from replab.io import DataError
from replab.loaders.images import Images, load_images
from replab.papers.autoencoder.model import (
    ANOMALY,
    N_CLASSES,
    AutoEncoder,
    Config,
    Schedule,
    add_noise,
    bce_loss,
    build,
    fixed_noisy,
    mean_loss,
    place,
)


def fit(cfg: Config, model_name: str, schedule: Schedule, x_in: torch.Tensor, target: torch.Tensor,
        curves: dict[str, tuple[torch.Tensor, torch.Tensor]], generator: torch.Generator, device, runtime,
        live=None, prefix: str = "", desc: str = "", ckpt=None, name: str = "") -> tuple[AutoEncoder, dict, int]:
    """Keras `fit(x_in, target, epochs, batch_size, shuffle=True)`; after every epoch, logs the epoch's training
    loss and the loss on each `curves` split. Returns (model, last epoch's losses, samples seen). With `ckpt`
    (replab.checkpoint.Checkpoints) it resumes from and saves the loop's state at epoch ends; a non-finite loss
    stops the run (ParamError naming `name` and the iteration)."""
    model = place(build(model_name), device)
    step_model = rt.maybe_compile(model, runtime)  # shares its weights with `model`
    # fused: one kernel for all parameters (2.6× faster steps on CPU for these small models; same update rule);
    # capturable: its step counts on the device, for iterations replayed as CUDA graphs (rt.StepGraph)
    opt = rt.optimizer(torch.optim.Adam, model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                       fused=device.type in ("cpu", "cuda"), capturable=rt.cuda_graph_on(runtime, device))
    n = len(x_in)
    steps_per_epoch = math.ceil(n / schedule.batch_size)
    guard = rt.LossGuard(f"autoencoder {name or model_name}", device, hint="lower autoencoder.lr?",
                         watch={"model": model})
    loop, first, last = f"fit/{name or model_name}", 1, {}
    if ckpt is not None and (saved := ckpt.resume(loop)) is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        rt.keep_capturable(runtime, device, opt)
        generator.set_state(saved["generator"])
        first, last = saved["epoch"] + 1, saved["last"]

    def batches():
        for epoch in range(first, schedule.epochs + 1):
            for idx in index_batches(n, schedule.batch_size, generator, device):
                yield epoch, idx

    def state() -> dict:
        return {"model": model.state_dict(), "opt": opt.state_dict(), "generator": generator.get_state(),
                "epoch": epoch, "last": last}

    def iteration(idx):  # one Adam step on the rows idx → the batch's loss
        loss = bce_loss(step_model(rows(x_in, idx)), rows(target, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    step_graph = rt.StepGraph(iteration, runtime, device, f"autoencoder {name or model_name}")
    done = (first - 1) * steps_per_epoch
    bar = rt.progress(batches(), initial=done, total=schedule.epochs * steps_per_epoch, enabled=runtime.progress,
                      desc=desc or model_name)
    total = torch.zeros((), device=device)
    model.train()
    for step, (epoch, idx) in enumerate(bar, done + 1):
        rt.new_iteration(runtime)
        loss = step_graph(idx)
        guard.update(step, loss)
        total += loss.detach() * len(idx)  # Keras' epoch loss: the sample-weighted mean of batch losses
        if step % steps_per_epoch:
            continue
        guard.check()
        last = {"train": float(total.item() / n)}
        total.zero_()
        last.update({split: mean_loss(model, xi, xt) for split, (xi, xt) in curves.items()})
        model.train()
        bar.set_postfix({"epoch": epoch, **{k: f"{v:.4f}" for k, v in last.items()}})
        if live is not None:
            live.step = epoch
            for split, value in last.items():
                live.log_metric(f"{prefix}loss/{split}", value)
            live.make_summary()
        if ckpt is not None:
            ckpt.maybe_save(loop, state, where=f"epoch {epoch}")
    guard.check()
    return model, last, n * schedule.epochs


def model_inputs(cfg: Config, model_name: str, data: Images, generator: torch.Generator):
    """(training inputs, curve splits {name: (inputs, targets)}): noisy inputs for the denoising model.
    The curve is the blog's validation loss on the test set."""
    x_train, x_test = data.x["train"], data.x["test"]
    if model_name != "denoising":
        return x_train, {"test": (x_test, x_test)}
    noisy_train = add_noise(x_train, cfg.denoising.noise_factor, generator)  # drawn once, as the blog does
    return noisy_train, {"test": (fixed_noisy(x_test, cfg, "test"), x_test)}


def train(cfg: Config, runtime, variant) -> None:
    if variant.key == ANOMALY:
        return train_anomaly(cfg, runtime, variant)
    model_name, seed = variant.axes["model"], variant.axes["seed"]
    schedule = cfg.schedule(model_name)
    device = rt.setup(runtime, seed)
    data = load_images(cfg.dataset, device)
    generator = rt.seeded_generator(seed)
    x_in, curves = model_inputs(cfg, model_name, data, generator)
    ckpt = Checkpoints(variant, cfg, runtime)
    clock = ckpt.track(rt.RunClock())
    with ckpt.open_live() as live:
        model, last, samples = fit(cfg, model_name, schedule, x_in, data.x["train"], curves, generator, device,
                                   runtime, live, desc=f"autoencoder {model_name} seed={seed}", ckpt=ckpt,
                                   name=variant.key)
    clock.add(samples)
    state = {"arch": {"model": model_name}, "weights": model.state_dict()}
    record = {"model": model_name, "seed": seed, "epochs": schedule.epochs, "batch_size": schedule.batch_size,
              "final_loss": last, "run": rt.run_metadata(device, seed, f"{data.name} ({data.source})", clock)}
    rt.save_trained(variant.model_dir, state, record)
    ckpt.finish()


def held_out_classes(cfg: Config, data: Images) -> list[int]:
    present = set(torch.unique(data.y["train"]).tolist()) & set(torch.unique(data.y["test"]).tolist())
    missing = [k for k in cfg.anomaly.held_out if k not in present]
    if missing:
        raise DataError(f"data/processed/{cfg.dataset}: class {missing[0]} (autoencoder.anomaly.held_out) has "
                        "no training or no test images")
    return list(cfg.anomaly.held_out)


def train_anomaly(cfg: Config, runtime, variant) -> None:
    acfg = cfg.anomaly
    schedule = Schedule(epochs=acfg.epochs, batch_size=acfg.batch_size)
    device = rt.setup(runtime, acfg.seed)
    data = load_images(cfg.dataset, device)
    classes = held_out_classes(cfg, data)
    ckpt = Checkpoints(variant, cfg, runtime)
    clock = ckpt.track(rt.RunClock())
    # the finished class models are the outer loop's state: saved with every checkpoint of the next class's fit
    done = ckpt.resumed_context
    weights, final = done.get("weights", {}), done.get("final", {})
    ckpt.context = {"weights": weights, "final": final}
    interrupted = ckpt.loaded["loop"] if ckpt.resuming else None  # the class model a kill stopped mid-fit
    for k in classes:
        if str(k) in weights:  # trained before the kill (every class starts from the seed: skipping is exact)
            clock.add(len(data.x["train"][data.y["train"] != k]) * schedule.epochs)
            continue
        # Every class model starts from the same seed: its result does not depend on the held_out list.
        torch.manual_seed(acfg.seed)
        generator = rt.seeded_generator(acfg.seed)
        normal = data.y["train"] != k
        x_train = data.x["train"][normal]
        val_normal = data.x["val"][data.y["val"] != k]
        curves = {"val_normal": (val_normal, val_normal)}
        name = f"{ANOMALY} {k}"
        # a DVCLive folder per class, the same metric names: the curves stage draws a line per held-out class
        with ckpt.open_live(f"held_out_{k}", resume=interrupted == f"fit/{name}") as live:
            model, last, samples = fit(cfg, acfg.model, schedule, x_train, x_train, curves, generator, device,
                                       runtime, live, prefix=f"{ANOMALY}/",
                                       desc=f"autoencoder anomaly: held out {k}", ckpt=ckpt, name=name)
        clock.add(samples)
        weights[str(k)] = model.state_dict()
        final[str(k)] = last
    state = {"arch": {"model": acfg.model}, "weights": weights}
    record = {"model": acfg.model, "seed": acfg.seed, "epochs": acfg.epochs, "batch_size": acfg.batch_size,
              "held_out": classes, "final_loss": final,
              "run": rt.run_metadata(device, acfg.seed, f"{data.name} ({data.source})", clock)}
    rt.save_trained(variant.model_dir, state, record)
    ckpt.finish()


def check_data(cfg: Config) -> None:
    """The check_data stage's part (`replab.papers.check_data`): every class of `anomaly.held_out` has training and
    test images in the prepared set (`held_out_classes`)."""
    held_out_classes(cfg, load_images(cfg.dataset, torch.device("cpu")))


def bench_setup(cfg: Config, device):
    """`replab bench`: the sweep's costliest training loop (the denoising conv model when swept) at its batch
    size, on synthetic MNIST-shaped images (≈ 3500, like mnist5k), without the per-epoch test curve."""
    from replab.bench import BenchCase, synthetic_images

    model = "denoising" if "denoising" in cfg.models else cfg.models[-1]
    batch_size = cfg.schedule(model).batch_size
    steps_per_epoch = max(1, 3500 // batch_size)  # full batches only: every timed step sees batch_size images
    x, y = synthetic_images(steps_per_epoch * batch_size, N_CLASSES, device)

    def train(iterations: int, runtime):
        schedule = Schedule(epochs=math.ceil(iterations / steps_per_epoch), batch_size=batch_size)
        return fit(cfg, model, schedule, x, x, {}, rt.seeded_generator(0), device, runtime)

    return BenchCase(label=f"{model} batch={batch_size}", samples_per_step=batch_size, train=train, x=x, y=y,
                     batch_size=batch_size)
