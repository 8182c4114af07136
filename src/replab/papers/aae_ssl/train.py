"""aae_ssl training: one labeled and one unlabeled batch per iteration, a discriminator step on prior samples vs
encoder outputs, then the encoder/decoder step on Eq. 3; model selection by validation error."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from replab import runtime as rt
from replab.batches import EndlessBatches, rows
from replab.checkpoint import Checkpoints
from replab.ensemble import Stacked, clip_grad_norm_per_seed, global_stream
from replab.loaders.images import Images, load_images
from replab.papers.aae_ssl.model import (
    N_CLASSES,
    Config,
    arch,
    build,
    discriminator_loss,
    error_rate,
    iteration_objective,
    labeled_subset,
    prior_sample,
)

LOSS_HINT = "lower aae_ssl.lr, .lambda_nll, .lambda_rec, .lambda_reg?"  # a non-finite loss's error names its knobs

def adam_optimizers(cfg: Config, autoencoder_params: list, disc, device, capturable: bool = False):
    """(Adam over the encoder and decoder, Adam over D or None without one), with cfg's lr and β's. Fused: one
    kernel for all parameters (the same update rule; the unfused update was 9 % of a paper-size step).
    `capturable`: step counts kept on the device, for a step replayed as a CUDA graph (`rt.StepGraph`)."""
    kwargs = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "fused": device.type in ("cpu", "cuda"),
              "capturable": capturable}
    opt_ae = rt.optimizer(torch.optim.Adam, autoencoder_params, **kwargs)
    opt_d = rt.optimizer(torch.optim.Adam, disc.parameters(), **kwargs) if disc is not None else None
    return opt_ae, opt_d


def clip_groups(cfg: Config, encoder, decoder) -> list[list]:
    """The parameter lists whose gradients are each clipped to the L2 norm `grad_clip` after the encoder/decoder
    step: both networks together, the Adam of Eq. 3's one loss (`grad_clip_per: optimizer`), or each alone
    (`module`, as musyoku's code with an optimizer per module). Either way D's own step clips D alone."""
    if cfg.grad_clip_per == "module":
        return [list(encoder.parameters()), list(decoder.parameters())]
    return [[*encoder.parameters(), *decoder.parameters()]]


def fit(cfg: Config, model: str, z_dim: int, n_labeled: int, iterations: int, seed: int,
        data: Images, device, runtime, live=None, ckpt=None, name: str = ""):
    """Train one model; returns (encoder, decoder, best validation record, clock). With `ckpt`
    (replab.checkpoint.Checkpoints) it resumes from and periodically saves the loop's state; a non-finite loss
    stops the run (ParamError naming `name` and the iteration)."""
    is_labeled = labeled_subset(data.y["train"].cpu().numpy(), n_labeled, seed)
    x_lab = data.x["train"][torch.from_numpy(is_labeled).to(device)]
    y_lab = data.y["train"][torch.from_numpy(is_labeled).to(device)]
    x_unl = data.x["train"][torch.from_numpy(~is_labeled).to(device)]
    if len(x_unl) == 0:  # every training image labeled: the unlabeled stream reuses them without labels
        x_unl = x_lab

    encoder, decoder, disc = (m.to(device) if m is not None else None
                              for m in build(model, cfg.hidden, z_dim, cfg.batchnorm, cfg.dropout))
    lambda_reg = 0.0 if model == "ae" else cfg.lambda_reg
    autoencoder_params = [*encoder.parameters(), *decoder.parameters()]
    opt_ae, opt_d = adam_optimizers(cfg, autoencoder_params, disc, device, rt.cuda_graph_on(runtime, device))
    clipped = clip_groups(cfg, encoder, decoder)

    # Training calls go through (optionally) compiled wrappers; weights are shared with the originals.
    enc_step, dec_step, disc_step = (rt.maybe_compile(m, runtime) for m in (encoder, decoder, disc))
    gen = rt.seeded_generator(seed, device)
    labeled_batches = EndlessBatches(len(x_lab), cfg.batch_labeled, gen, device)
    unlabeled_batches = EndlessBatches(len(x_unl), cfg.batch_unlabeled, gen, device)
    clock = rt.RunClock() if ckpt is None else ckpt.track(rt.RunClock())
    best = {"val_error": float("inf"), "iteration": 0}
    best_state = None
    guard = rt.LossGuard(f"aae_ssl {name or model}", device, hint=LOSS_HINT,
                         watch={"encoder": encoder, "decoder": decoder, "disc": disc})
    modules = {"encoder": encoder, "decoder": decoder, "disc": disc, "opt_ae": opt_ae, "opt_d": opt_d,
               "labeled_batches": labeled_batches, "unlabeled_batches": unlabeled_batches}
    start = 1
    if ckpt is not None and (saved := ckpt.resume("fit")) is not None:
        for key, module in modules.items():
            if module is not None:
                module.load_state_dict(saved[key])
        rt.keep_capturable(runtime, device, opt_ae, opt_d)
        gen.set_state(saved["generator"])
        best, best_state, start = saved["best"], saved["best_state"], saved["iteration"] + 1
        clock.samples = saved["samples"]

    def state() -> dict:
        return {**{k: m.state_dict() for k, m in modules.items() if m is not None}, "generator": gen.get_state(),
                "best": best, "best_state": best_state, "iteration": it, "samples": clock.samples}

    def iteration(il, iu):  # one training iteration on index batches il, iu → (loss, D's loss, Eq. 3's terms)
        xl, yl, xu = rows(x_lab, il), rows(y_lab, il), rows(x_unl, iu)
        x = torch.cat([xl, xu])  # one pass so BatchNorm sees labeled and unlabeled images together
        # One encoder pass per iteration (BatchNorm statistics and dropout masks are drawn once).
        y_logits, z = enc_step(x)
        y_soft = F.softmax(y_logits, 1)

        # Discriminator step: prior samples vs the (detached) encoder outputs, in one pass through D.
        d_loss = None
        if disc is not None:
            y_prior, z_prior = prior_sample(len(x), z_dim, device)
            d = disc_step(torch.cat([y_prior, y_soft.detach()]), torch.cat([z_prior, z.detach()]))
            d_loss = discriminator_loss(d[:len(x)], d[len(x):])
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            rt.clip_grad_norm_(disc.parameters(), cfg.grad_clip)
            opt_d.step()

        # Encoder/decoder step against the updated D: Eq. 3 on the labeled batch (1, 7, 1) plus the unlabeled
        # batch (0, 7, 1).
        x_rec = dec_step(y_soft, z)
        if disc is not None:
            disc.requires_grad_(False)  # D is a fixed critic here: no weight gradients to compute
        loss, terms_l, terms_u = iteration_objective(cfg, lambda_reg, x, y_logits, z, x_rec, yl, disc_step)
        opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        for group in clipped:
            rt.clip_grad_norm_(group, cfg.grad_clip)
        opt_ae.step()
        if disc is not None:
            disc.requires_grad_(True)
        return loss, d_loss, terms_l, terms_u

    step = rt.StepGraph(iteration, runtime, device, f"aae_ssl {name or model}")
    label = f"{name} ({model}, Nl={n_labeled}, z {z_dim})" if name else f"{model} Nl={n_labeled}"  # style: its own
    bar = rt.progress(range(start, iterations + 1), initial=start - 1, total=iterations, enabled=runtime.progress,
                      desc=f"aae_ssl {label}")
    for it in bar:
        rt.new_iteration(runtime)  # D's backward runs between the encoder's outputs and their use
        encoder.train(), decoder.train()
        il, iu = next(labeled_batches), next(unlabeled_batches)
        loss, d_loss, terms_l, terms_u = step(il, iu)
        clock.add(len(il) + len(iu))
        guard.update(it, loss, *([d_loss] if disc is not None else []))

        if it % cfg.eval_every == 0 or it == iterations:
            guard.check()
            val_error = error_rate(encoder, data.x["val"], data.y["val"])
            if val_error < best["val_error"]:
                best = {"val_error": val_error, "iteration": it}
                best_state = copy.deepcopy((encoder.state_dict(), decoder.state_dict()))
            bar.set_postfix(val_error=f"{val_error:.2f}", best=f"{best['val_error']:.2f}")
            if live is not None:
                live.step = it
                live.log_metric("val_error", val_error)
                live.log_metric("loss/rec", terms_u["rec"].item())
                live.log_metric("loss/nll", terms_l["nll"].item())
                if disc is not None:
                    live.log_metric("loss/discriminator", d_loss.item())
                    live.log_metric("loss/generator", terms_u["reg"].item())
                live.make_summary()
        if ckpt is not None:
            ckpt.maybe_save("fit", state, guard, where=f"iteration {it}")
    guard.check()
    encoder.load_state_dict(best_state[0])
    decoder.load_state_dict(best_state[1])
    return encoder, decoder, best, clock


def fit_seeds(cfg: Config, model: str, z_dim: int, n_labeled: int, iterations: int, seeds: list[int],
              data: Images, device, runtime):
    """`fit` for several seeds at once, trained together as one batched model (`replab.ensemble`). Each seed gets
    the labeled subset, batches, initial weights, dropout masks and prior samples that `fit` gets in a process
    seeded with `torch.manual_seed(seed)` (`rt.setup`), so the results equal `fit`'s up to the rounding of batched
    matrix products. Returns ([(encoder, decoder, best validation record)] in `seeds` order, clock over all
    seeds' samples). Without torch.compile, checkpoints or DVCLive (those are `fit`'s); CPU or CUDA. With
    runtime.cuda_graph on CUDA each iteration of all seeds is replayed as one CUDA graph (rt.StepGraph, each seed's
    stream registered with it)."""
    labels = data.y["train"].cpu().numpy()
    subsets = [labeled_subset(labels, n_labeled, seed) for seed in seeds]
    rows_lab = torch.stack([torch.from_numpy(np.flatnonzero(m)) for m in subsets]).to(device)  # [S, Nl]
    # every training image labeled: the unlabeled stream reuses them without labels (as in `fit`)
    rows_unl = (torch.stack([torch.from_numpy(np.flatnonzero(~m)) for m in subsets]).to(device)
                if (~subsets[0]).any() else rows_lab)
    nets, streams = [], []
    for seed in seeds:
        torch.manual_seed(seed)  # `fit` builds its networks from the global RNG right after rt.setup(seed) ...
        nets.append([m.to(device) if m is not None else None
                     for m in build(model, cfg.hidden, z_dim, cfg.batchnorm, cfg.dropout)])
        streams.append(global_stream(device))  # ... and then draws its dropout masks and prior samples from it
    encoder, decoder = Stacked([n[0] for n in nets]), Stacked([n[1] for n in nets])
    disc = Stacked([n[2] for n in nets]) if model != "ae" else None
    lambda_reg = 0.0 if model == "ae" else cfg.lambda_reg
    autoencoder_params = [*encoder.parameters(), *decoder.parameters()]
    opt_ae, opt_d = adam_optimizers(cfg, autoencoder_params, disc, device, rt.cuda_graph_on(runtime, device))
    clipped = clip_groups(cfg, encoder, decoder)
    gens = [rt.seeded_generator(seed, device) for seed in seeds]
    labeled_batches = [EndlessBatches(rows_lab.shape[1], cfg.batch_labeled, g, device) for g in gens]
    unlabeled_batches = [EndlessBatches(rows_unl.shape[1], cfg.batch_unlabeled, g, device) for g in gens]
    n_noise, hidden = nets[0][0].n_dropout, cfg.hidden
    clock = rt.RunClock()
    best = [{"val_error": float("inf"), "iteration": 0} for _ in seeds]
    best_state: list = [None] * len(seeds)
    guard = rt.LossGuard(f"aae_ssl {model} Nl={n_labeled} seeds {seeds}", device, hint=LOSS_HINT,
                         watch={"encoder": encoder, "decoder": decoder, "disc": disc})

    def objective(critic: dict, x, y_logits, z, x_rec, yl):  # one seed's Eq. 3, vmapped over the seeds
        return iteration_objective(cfg, lambda_reg, x, y_logits, z, x_rec, yl,
                                   disc.one_seed(critic, {}) if disc is not None else None)[0]

    def uniform(shape) -> torch.Tensor:  # [S, *shape]: each seed's draw from its own stream
        return torch.stack([torch.rand(shape, generator=g, device=device) for g in streams])

    def iteration(rl, ru):  # one training iteration of every seed on rows rl, ru [S, B] → (losses [S], D's [S])
        x = torch.cat([data.x["train"][rl], data.x["train"][ru]], 1)
        yl, b2 = data.y["train"][rl], x.shape[1]
        dropout_noise = tuple(uniform((b2, hidden)) for _ in range(n_noise))
        y_logits, z = encoder(x, dropout_noise)
        y_soft = F.softmax(y_logits, -1)

        d_loss = None
        if disc is not None:
            y_prior, z_prior = (torch.stack(t) for t in zip(*(prior_sample(b2, z_dim, device, g) for g in streams)))
            d = disc(torch.cat([y_prior, y_soft.detach()], 1), torch.cat([z_prior, z.detach()], 1))
            d_loss = torch.func.vmap(discriminator_loss)(d[:, :b2], d[:, b2:])
            opt_d.zero_grad(set_to_none=True)
            d_loss.sum().backward()  # seeds share no weights: the sum's gradient is each seed's own
            clip_grad_norm_per_seed(disc.parameters(), cfg.grad_clip)
            opt_d.step()

        x_rec = decoder(y_soft, z)
        critic = disc.detached() if disc is not None else {}  # D is a fixed critic here (after its update)
        loss = torch.func.vmap(objective)(critic, x, y_logits, z, x_rec, yl)  # [S]
        opt_ae.zero_grad(set_to_none=True)
        loss.sum().backward()
        for group in clipped:
            clip_grad_norm_per_seed(group, cfg.grad_clip)
        opt_ae.step()
        return loss, d_loss

    step = rt.StepGraph(iteration, runtime, device, f"aae_ssl {model} Nl={n_labeled} seeds {seeds}", streams)
    bar = rt.progress(range(1, iterations + 1), total=iterations, enabled=runtime.progress,
                      desc=f"aae_ssl {model} Nl={n_labeled} {len(seeds)} seeds together")
    for it in bar:
        # each seed's batches, as rows of the training set: [S, B]
        rl = rows_lab.gather(1, torch.stack([next(b) for b in labeled_batches]))
        ru = rows_unl.gather(1, torch.stack([next(b) for b in unlabeled_batches]))
        encoder.train(), decoder.train()
        loss, d_loss = step(rl, ru)
        clock.add((rl.shape[1] + ru.shape[1]) * len(seeds))
        guard.update(it, loss.sum(), *([d_loss.sum()] if disc is not None else []))

        if it % cfg.eval_every == 0 or it == iterations:
            guard.check()
            for s, val_error in enumerate(stacked_error_rates(encoder, data.x["val"], data.y["val"])):
                if val_error < best[s]["val_error"]:
                    best[s] = {"val_error": val_error, "iteration": it}
                    best_state[s] = (encoder.state_dict(s), decoder.state_dict(s))
            bar.set_postfix(best=" ".join(f"{b['val_error']:.2f}" for b in best))
    guard.check()
    for (enc, dec, _), state in zip(nets, best_state):
        enc.load_state_dict(state[0])
        dec.load_state_dict(state[1])
    return [(n[0], n[1], b) for n, b in zip(nets, best)], clock


@torch.no_grad()
def stacked_error_rates(encoder: Stacked, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> list[float]:
    """`error_rate` (%) of every seed's encoder on one split x [N, 784], y [N]."""
    encoder.eval()
    pred = torch.cat([encoder(x[i:i + batch_size], in_dims=(None,))[0].argmax(-1)
                      for i in range(0, len(x), batch_size)], 1)
    return [100.0 * errors / len(y) for errors in (pred != y).sum(1).tolist()]


def train(cfg: Config, runtime, variant) -> None:
    if variant.key == "style":
        model, z_dim, n_labeled, iterations, seed = ("aae_yz", cfg.style.z_dim, cfg.style.n_labeled,
                                                     cfg.style.iterations, cfg.style.seed)
        n_labeled_key = "style.n_labeled"
    else:
        model, n_labeled, seed = variant.axes["model"], variant.axes["n_labeled"], variant.axes["seed"]
        z_dim, iterations, n_labeled_key = cfg.z_dim, cfg.iterations, "n_labeled"
    device = rt.setup(runtime, seed)
    data = load_images(cfg.dataset, device)
    labeled_subset(data.y["train"].cpu().numpy(), n_labeled, seed, n_labeled_key)  # a bad Nl fails before any output
    ckpt = Checkpoints(variant, cfg, runtime)
    with ckpt.open_live() as live:
        encoder, decoder, best, clock = fit(cfg, model, z_dim, n_labeled, iterations, seed, data, device,
                                            runtime, live, ckpt, name=variant.key)
    state = {"arch": arch(cfg, model, z_dim), "encoder": encoder.state_dict(), "decoder": decoder.state_dict()}
    record = {"model": model, "n_labeled": n_labeled, "seed": seed, "iterations": iterations,
              "best_iteration": best["iteration"], "val_error": best["val_error"],
              "run": rt.run_metadata(device, seed, f"{data.name} ({data.source})", clock)}
    rt.save_trained(variant.model_dir, state, record)
    ckpt.finish()


def check_data(cfg: Config) -> None:
    """The check_data stage's part (`replab.papers.check_data`): the class-balanced subsets of `n_labeled` (the
    largest) and `style.n_labeled` drawn from the prepared training set, `labeled_subset`'s limit."""
    labels = load_images(cfg.dataset, torch.device("cpu")).y["train"].numpy()
    for key, n_labeled in (("n_labeled", max(cfg.n_labeled)), ("style.n_labeled", cfg.style.n_labeled)):
        labeled_subset(labels, n_labeled, 0, key)


def bench_setup(cfg: Config, device):
    """`replab bench`: the full model AAE(y,z) (encoder, decoder and the joint discriminator) at the configured
    sizes, through `fit` on a synthetic MNIST-shaped set (3500 train / 500 val, like mnist5k)."""
    from replab.bench import BenchCase, synthetic_images

    model = "aae_yz" if "aae_yz" in cfg.models else cfg.models[-1]
    n_labeled = min(cfg.n_labeled)
    x_train, y_train = synthetic_images(3500, N_CLASSES, device, seed=0)
    x_val, y_val = synthetic_images(500, N_CLASSES, device, seed=1)
    data = Images(x={"train": x_train, "val": x_val}, y={"train": y_train, "val": y_val}, source="synthetic",
                  name="bench")

    def train(iterations: int, runtime):
        run_cfg = dataclasses.replace(cfg, iterations=iterations, eval_every=iterations + 1)
        return fit(run_cfg, model, cfg.z_dim, n_labeled, iterations, 0, data, device, runtime)

    def train_seeds(iterations: int, n_seeds: int, runtime):
        run_cfg = dataclasses.replace(cfg, iterations=iterations, eval_every=iterations + 1)
        return fit_seeds(run_cfg, model, cfg.z_dim, n_labeled, iterations, list(range(n_seeds)), data, device,
                         runtime)

    # Table 1 at this profile: every model × N_l, each seed, for cfg.iterations (AE's and AAE(z)'s steps cost less)
    variants = len(cfg.models) * len(cfg.n_labeled)
    return BenchCase(label=f"{model} Nl={n_labeled} hidden={cfg.hidden} z={cfg.z_dim}",
                     samples_per_step=cfg.batch_labeled + cfg.batch_unlabeled, train=train,
                     x=x_train, y=y_train, batch_size=cfg.batch_unlabeled, train_seeds=train_seeds,
                     sweep=("Table 1", variants, len(cfg.seeds), cfg.iterations))
