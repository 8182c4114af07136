"""split_vae training: Adam on shuffled batches for each experiment's epochs, with the per-epoch training terms
and the one-sample test terms as curves."""

from __future__ import annotations

import math

import torch

from replab import runtime as rt
from replab.batches import index_batches, rows
from replab.checkpoint import Checkpoints
from replab.papers.split_vae.model import (
    EVAL_NOISE_SEED,
    N_CLASSES,
    TERMS,
    Config,
    SplitVAE,
    batch_objective,
    eval_terms,
    experiment_data,
    load_writers,
    loss_terms,
    writer_subset,
)


def fit(cfg: Config, latent_dim: int, epochs: int, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
        device, runtime, curve: tuple[torch.Tensor, torch.Tensor] | None = None, live=None,
        desc: str = "split_vae", ckpt=None, name: str = "") -> tuple[SplitVAE, dict, int]:
    """Adam on shuffled batches (the last one partial) for `epochs` epochs. After every epoch: the epoch's
    mean training terms and, on `curve` (the test split), the one-sample terms and the digit accuracy.
    Returns (model, last epoch's record, samples seen). With `ckpt` (replab.checkpoint.Checkpoints) it resumes
    from and saves the loop's state at epoch ends; a non-finite loss stops the run (ParamError naming `name`)."""
    model = SplitVAE(cfg.hidden, latent_dim).to(device)
    objective = rt.maybe_compile(batch_objective, runtime)  # the terms after the noise draws (a graph takes no RNG)
    opt = rt.optimizer(torch.optim.Adam, model.parameters(), lr=cfg.lr, fused=device.type in ("cpu", "cuda"),
                       capturable=rt.cuda_graph_on(runtime, device))  # (for iterations replayed as CUDA graphs)
    n = len(x)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    guard = rt.LossGuard(f"split_vae {name or desc}", device, hint="lower split_vae.lr, .c1, .c2?",
                         watch={"model": model})
    first, last = 1, {}
    if ckpt is not None and (saved := ckpt.resume("fit")) is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        rt.keep_capturable(runtime, device, opt)
        generator.set_state(saved["generator"])
        first, last = saved["epoch"] + 1, saved["last"]

    def state() -> dict:
        return {"model": model.state_dict(), "opt": opt.state_dict(), "generator": generator.get_state(),
                "epoch": epoch, "last": last}

    def batches():
        for epoch in range(first, epochs + 1):
            for idx in index_batches(n, cfg.batch_size, generator, device):
                yield epoch, idx

    def iteration(idx):  # one Adam step on the rows idx → the batch's terms (ε_A, ε_B drawn from `generator`)
        terms = loss_terms(model, rows(x, idx), rows(y, idx), cfg.c1, cfg.c2, generator, objective)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        return terms

    step_graph = rt.StepGraph(iteration, runtime, device, f"split_vae {name or desc}", generators=(generator,))
    done = (first - 1) * steps_per_epoch
    bar = rt.progress(batches(), initial=done, total=epochs * steps_per_epoch, enabled=runtime.progress, desc=desc)
    sums = torch.zeros(len(TERMS), device=device)
    model.train()
    for step, (epoch, idx) in enumerate(bar, done + 1):
        rt.new_iteration(runtime)
        terms = step_graph(idx)
        guard.update(step, terms["loss"])
        sums += torch.stack([terms[t].detach() for t in TERMS]) * len(idx)
        if step % steps_per_epoch:
            continue
        guard.check()
        last = {"train": dict(zip(TERMS, (sums / n).tolist()))}
        sums.zero_()
        if curve is not None:
            last["test"] = eval_terms(model, *curve, cfg.c1, cfg.c2, 1, rt.seeded_generator(EVAL_NOISE_SEED, device))
            model.train()
        bar.set_postfix(epoch=epoch, loss=f"{last['train']['loss']:.1f}")
        if live is not None:
            live.step = epoch
            for split, values in last.items():
                for term, value in values.items():
                    live.log_metric(f"{term}/{split}", value)
            live.make_summary()
        if ckpt is not None:
            ckpt.maybe_save("fit", state, where=f"epoch {epoch}")
    guard.check()
    return model, last, n * epochs


def train(cfg: Config, runtime, variant) -> None:
    experiment, seed = variant.axes["experiment"], variant.axes["seed"]
    ecfg = cfg.experiment(experiment)
    device = rt.setup(runtime, seed)
    data, writers = experiment_data(cfg, experiment, load_writers(cfg.dataset, device), device)
    generator = rt.seeded_generator(seed, device)
    ckpt = Checkpoints(variant, cfg, runtime)
    clock = ckpt.track(rt.RunClock())
    with ckpt.open_live() as live:
        model, last, samples = fit(cfg, ecfg.latent_dim, ecfg.epochs, data.x["train"], data.y["train"], generator,
                                   device, runtime, (data.x["test"], data.y["test"]), live,
                                   desc=f"split_vae {experiment} seed={seed}", ckpt=ckpt, name=variant.key)
    clock.add(samples)
    state = {"arch": {"hidden": cfg.hidden, "latent_dim": ecfg.latent_dim}, "weights": model.state_dict()}
    record = {"experiment": experiment, "seed": seed, "epochs": ecfg.epochs, "batch_size": cfg.batch_size,
              "latent_dim": ecfg.latent_dim, "n_writers": len(writers), "n_train": len(data.digit["train"]),
              "n_test": len(data.digit["test"]), "writers": writers.tolist() if experiment == "exp2" else None,
              "final": last, "run": rt.run_metadata(device, seed, f"{data.name} ({data.source})", clock)}
    rt.save_trained(variant.model_dir, state, record)
    ckpt.finish()


def check_data(cfg: Config) -> None:
    """The check_data stage's part (`replab.papers.check_data`): Experiment II's `exp2.n_writers` among the prepared
    set's writers with `exp2.min_train` … `max_train` training images (`writer_subset`)."""
    writer_subset(load_writers(cfg.dataset, torch.device("cpu")).writer["train"], cfg.exp2, cfg.dataset)


def bench_setup(cfg: Config, device):
    """`replab bench`: Experiment II's training loop at the configured sizes on ≈ 3500 synthetic images."""
    from replab.bench import BenchCase, synthetic_images

    steps_per_epoch = max(1, 3500 // cfg.batch_size)
    x, y = synthetic_images(steps_per_epoch * cfg.batch_size, N_CLASSES, device)

    def train(iterations: int, runtime):
        epochs = math.ceil(iterations / steps_per_epoch)
        return fit(cfg, cfg.exp2.latent_dim, epochs, x, y, rt.seeded_generator(0, device), device, runtime)

    return BenchCase(label=f"exp2 hidden={cfg.hidden} d={cfg.exp2.latent_dim} batch={cfg.batch_size}",
                     samples_per_step=cfg.batch_size, train=train, x=x, y=y, batch_size=cfg.batch_size)
