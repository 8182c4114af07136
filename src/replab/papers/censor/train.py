"""censor training: pretraining E + M (the CNN baseline), then the alternating adversarial post-processing of
AFL (Eq. 1), SCT (Eq. 2–4) and LSM (Eq. 2, 5), saving a checkpoint after every repetition."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from replab import runtime as rt
from replab.batches import EndlessBatches, index_batches, map_batches, rows
from replab.checkpoint import Checkpoints
from replab.papers.censor.model import (
    BASELINE,
    PAPER,
    SIMILARITY_METHODS,
    Config,
    Encoder,
    Objective,
    PairSampler,
    Windows,
    afl_encoder_loss,
    build_adversary,
    build_model,
    load_windows,
    lsm_encoder_loss,
    sct_encoder_loss,
    similarity_loss,
    snapshot,
    variant_key,
)


def pretrain(cfg: Config, data: Windows, device, runtime, generator, live=None, desc: str = "pretrain", ckpt=None,
             name: str = ""):
    """E + M for label accuracy (Adam). Returns (encoder, classifier, samples seen). With `ckpt`
    (replab.checkpoint.Checkpoints) it resumes from and saves its state at epoch ends; a non-finite loss stops
    the run (ParamError naming `name` and the iteration). With runtime.cuda_graph on CUDA each iteration is replayed
    as one CUDA graph (rt.StepGraph; an epoch's last, partial batch runs eagerly)."""
    encoder, classifier = build_model(cfg, data, device)
    # training calls go through (optionally) compiled wrappers that share the originals' weights
    enc_step, cls_step = rt.maybe_compile(encoder, runtime), rt.maybe_compile(classifier, runtime)
    params = [*encoder.parameters(), *classifier.parameters()]
    opt = rt.optimizer(torch.optim.Adam, params, lr=cfg.pretrain.lr, capturable=rt.cuda_graph_on(runtime, device))
    x, y = data.x["train"], data.y["train"]
    n, pc = len(x), cfg.pretrain
    steps = math.ceil(n / pc.batch_size)
    guard = rt.LossGuard(f"censor {name or desc}", device, hint="lower censor.pretrain.lr?",
                         watch={"encoder": encoder, "classifier": classifier})
    first = 0
    if ckpt is not None and (saved := ckpt.resume("pretrain")) is not None:
        for key, module in (("encoder", encoder), ("classifier", classifier), ("opt", opt)):
            module.load_state_dict(saved[key])
        rt.keep_capturable(runtime, device, opt)
        generator.set_state(saved["generator"])
        first = saved["epoch"] + 1

    def state() -> dict:
        return {"encoder": encoder.state_dict(), "classifier": classifier.state_dict(), "opt": opt.state_dict(),
                "generator": generator.get_state(), "epoch": epoch}

    def iteration(idx):  # one training iteration on index batch idx → the label loss
        loss = F.cross_entropy(cls_step(enc_step(rows(x, idx))), rows(y, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    step_graph = rt.StepGraph(iteration, runtime, device, f"censor {name or desc}")
    bar = rt.progress(range(first, pc.epochs), initial=first, total=pc.epochs, enabled=runtime.progress, desc=desc)
    for epoch in bar:
        encoder.train(), classifier.train()
        total = torch.zeros((), device=device)
        for step, idx in enumerate(index_batches(n, pc.batch_size, generator, device), epoch * steps + 1):
            rt.new_iteration(runtime)
            loss = step_graph(idx)
            guard.update(step, loss)
            total += loss.detach()
        guard.check()
        mean = float(total.item() / steps)
        bar.set_postfix(loss=f"{mean:.4f}")
        if live is not None:
            live.step = epoch + 1
            live.log_metric("pretrain/label_loss", mean)
            live.make_summary()
        if ckpt is not None:
            ckpt.maybe_save("pretrain", state, where=f"epoch {epoch + 1}")
    return encoder, classifier, n * pc.epochs


def step2_objective(method: str, lam: float, encoder: nn.Module, classifier: nn.Module, adversary: nn.Module,
                    x: torch.Tensor, y: torch.Tensor, s: torch.Tensor, batch) -> Objective:
    """Step 2's objective for (E, M) on one batch, as training minimises it. `batch`: indices (B,) into x, y, s
    for AFL (Eq. 1); (i, j, t) pairs for SCT (Eq. 4, t = g) and LSM (Eq. 5, t = same activity)."""
    if method in SIMILARITY_METHODS:
        i, j, t = batch
        # both windows of every pair in one pass through E and M (E runs without dropout in step 2, so rows are
        # independent: the same z as two passes, with half the operator launches)
        z = encoder(rows(x, torch.cat([i, j])))
        z1, z2 = z.chunk(2)
        logits1, logits2 = classifier(z).chunk(2)
        sim_logits = adversary(torch.cat([z1, z2], 1)).squeeze(1)
        loss = sct_encoder_loss if method == "sct" else lsm_encoder_loss
        return loss(logits1, rows(y, i), logits2, rows(y, j), sim_logits, t, lam)
    z = encoder(rows(x, batch))
    return afl_encoder_loss(classifier(z), rows(y, batch), adversary(z), rows(s, batch), lam)


def adversarial_postprocess(cfg: Config, method: str, lam: float, encoder: Encoder, classifier: nn.Module,
                            data: Windows, device, runtime, generator, live=None, desc: str = "", ckpt=None,
                            name: str = ""):
    """Alternate step 1 (adversary, E fixed) and step 2 (E, M against the adversary) for `repetitions`;
    returns the checkpoints after each repetition (index 0 = the pretrained model), samples seen and step 1's
    history per repetition: `adversary_loss` (mean step-1 loss: Eq. 2's BCE for D_sim, ln 2 ≈ 0.693 at chance;
    the user CE for AFL's D) and `adversary_accuracy` (% of step-1 pairs / windows D got right, on its
    training batches before each update; 50 % is chance for D_sim). With
    `ckpt` (replab.checkpoint.Checkpoints) it resumes from and saves its state after a repetition; a non-finite
    loss stops the run (ParamError naming `name` and the iteration). With runtime.cuda_graph on CUDA each step-1 and
    each step-2 iteration is replayed as one CUDA graph (rt.StepGraph, one per step; pairs are drawn outside it)."""
    ac = cfg.adversarial
    adversary = build_adversary(method, cfg, data.n_users).to(device)
    enc_step, cls_step, adv_step = (rt.maybe_compile(m, runtime) for m in (encoder, classifier, adversary))
    capturable = rt.cuda_graph_on(runtime, device)  # (for iterations replayed as CUDA graphs)
    opt_adv = rt.optimizer(torch.optim.RMSprop, adversary.parameters(), lr=ac.lr, capturable=capturable)
    opt_em = rt.optimizer(torch.optim.RMSprop, [*encoder.parameters(), *classifier.parameters()], lr=ac.lr,
                          capturable=capturable)
    x, y, s = data.x["train"], data.y["train"], data.s["train"]
    pairs = PairSampler(y, s, generator)
    singles = EndlessBatches(len(x), ac.batch_size, generator, device)
    adversary_steps = max(1, math.ceil(ac.adversary_samples / ac.batch_size))
    encoder_steps = max(1, math.ceil(ac.encoder_samples / ac.batch_size))
    similarity = method in SIMILARITY_METHODS
    if similarity:
        pairs.check(lsm=method == "lsm", dataset=data.name)
    checkpoints, samples = [snapshot(encoder, classifier)], 0
    history: dict[str, list[float]] = {"adversary_loss": [], "adversary_accuracy": []}
    guard = rt.LossGuard(f"censor {name or method}", device, hint="lower censor.adversarial.lr, censor.lambdas?",
                         watch={"encoder": encoder, "classifier": classifier, "adversary": adversary})
    modules = {"encoder": encoder, "classifier": classifier, "adversary": adversary, "opt_adv": opt_adv,
               "opt_em": opt_em, "singles": singles}
    first = 0
    if ckpt is not None and (saved := ckpt.resume("adversarial")) is not None:
        for key, module in modules.items():
            module.load_state_dict(saved[key])
        rt.keep_capturable(runtime, device, opt_adv, opt_em)
        generator.set_state(saved["generator"])
        checkpoints, samples, first = saved["checkpoints"], saved["samples"], saved["repetition"] + 1
        history = saved["history"]

    def state() -> dict:
        return {**{k: m.state_dict() for k, m in modules.items()}, "generator": generator.get_state(),
                "checkpoints": checkpoints, "samples": samples, "history": history, "repetition": rep}

    z_fixed = None  # z of every training window under the fixed E of step 1 (one tensor, refilled each repetition)

    def adversary_iteration(*batch):  # step 1 on (i, j, g) pairs or an index batch → (loss, correct guesses)
        if similarity:
            i, j, g = batch
            logits = adv_step(torch.cat([rows(z_fixed, i), rows(z_fixed, j)], 1)).squeeze(1)
            loss = similarity_loss(logits, g)  # Eq. 2
            correct = ((logits > 0) == (g > 0.5)).sum()
        else:
            (idx,) = batch
            logits, users = adv_step(rows(z_fixed, idx)), rows(s, idx)
            loss = F.cross_entropy(logits, users)  # max_D log q_D(s|z)
            correct = (logits.argmax(1) == users).sum()
        opt_adv.zero_grad(set_to_none=True)
        loss.backward()
        opt_adv.step()
        return loss, correct

    def encoder_iteration(*batch):  # step 2 on pairs or an index batch → its Objective
        objective = step2_objective(method, lam, enc_step, cls_step, adv_step, x, y, s,
                                    batch if similarity else batch[0])
        opt_em.zero_grad(set_to_none=True)
        objective.total.backward()
        opt_em.step()
        return objective

    what = f"censor {name or method}"
    adversary_graph = rt.StepGraph(adversary_iteration, runtime, device, f"{what} step 1")
    encoder_graph = rt.StepGraph(encoder_iteration, runtime, device, f"{what} step 2")
    steps_per_rep = adversary_steps + encoder_steps
    bar = rt.progress(range(first, ac.repetitions), initial=first, total=ac.repetitions, enabled=runtime.progress,
                      desc=desc or f"{method} λ={lam}")
    for rep in bar:
        # step 1: the adversary learns to recover the user from z. E is fixed (and without dropout), so z of
        # every training window is computed once per repetition instead of once per batch.
        encoder.eval()
        adversary.train()
        z = map_batches(encoder, x)
        z_fixed = z if z_fixed is None else z_fixed.copy_(z)  # (a replayed step 1 reads the captured tensor)
        adv_total, adv_correct = torch.zeros((), device=device), torch.zeros((), device=device)
        for step in range(rep * steps_per_rep + 1, rep * steps_per_rep + adversary_steps + 1):
            rt.new_iteration(runtime)
            loss, correct = adversary_graph(*(pairs.user_pairs(ac.batch_size) if similarity else (next(singles),)))
            adv_correct += correct
            guard.update(step, loss)
            adv_total += loss.detach()
        # step 2: E and M minimise the label loss plus λ times the method's censoring term. E stays without
        # dropout: the adversary was fitted to dropout-free z, and its gradients are only meaningful there.
        adversary.eval()
        adversary.requires_grad_(False)  # a fixed critic here: no weight gradients to compute (step 1 refits it)
        label_total, censor_total = torch.zeros((), device=device), torch.zeros((), device=device)
        for step in range(rep * steps_per_rep + adversary_steps + 1, (rep + 1) * steps_per_rep + 1):
            rt.new_iteration(runtime)
            if method == "sct":
                batch = pairs.user_pairs(ac.batch_size)
            elif method == "lsm":
                batch = pairs.lsm_pairs(ac.batch_size)
            else:
                batch = (next(singles),)
            objective = encoder_graph(*batch)
            guard.update(step, objective.total)
            label_total += objective.label.detach()
            censor_total += objective.censor.detach()
        adversary.requires_grad_(True)
        samples += (adversary_steps + encoder_steps) * ac.batch_size * (2 if similarity else 1)
        checkpoints.append(snapshot(encoder, classifier))
        guard.check()
        # the repetition's sums, read together (one GPU sync)
        adv_sum, adv_right, label_sum, censor_sum = torch.stack([adv_total, adv_correct, label_total,
                                                                 censor_total]).tolist()
        history["adversary_loss"].append(adv_sum / adversary_steps)
        history["adversary_accuracy"].append(100 * adv_right / (adversary_steps * ac.batch_size))
        logged = {"adversary_loss": history["adversary_loss"][-1],
                  "adversary_accuracy": history["adversary_accuracy"][-1],
                  "label_loss": label_sum / encoder_steps, "censor_loss": censor_sum / encoder_steps}
        bar.set_postfix({k: f"{v:.3f}" for k, v in logged.items()})
        if live is not None:
            live.step = rep + 1
            for term, value in logged.items():
                live.log_metric(f"adversarial/{term}", value)
            live.make_summary()
        if ckpt is not None:
            ckpt.maybe_save("adversarial", state, where=f"repetition {rep + 1}")
    return checkpoints, samples, history


def train(cfg: Config, runtime, variant) -> None:
    seed = variant.axes["seed"]
    device = rt.setup(runtime, seed)
    data = load_windows(cfg.dataset, device)
    generator = rt.seeded_generator(seed, device)
    ckpt = Checkpoints(variant, cfg, runtime)
    clock = ckpt.track(rt.RunClock())
    source = f"{data.name} ({data.source})"
    if variant.key.startswith(f"{BASELINE}-"):
        with ckpt.open_live() as live:
            encoder, classifier, samples = pretrain(cfg, data, device, runtime, generator, live,
                                                    desc=f"censor CNN seed={seed}", ckpt=ckpt, name=variant.key)
        clock.add(samples)
        state = {"checkpoints": [snapshot(encoder, classifier)]}
        record = {"method": BASELINE, "lambda": None, "seed": seed, "epochs": cfg.pretrain.epochs}
    else:
        method, lam = variant.axes["method"], variant.axes["lambda"]
        start, _ = rt.load_trained(Path("models") / PAPER / variant_key(BASELINE, None, seed), device)
        encoder, classifier = build_model(cfg, data, device)
        encoder.load_state_dict(start["checkpoints"][0]["encoder"])
        classifier.load_state_dict(start["checkpoints"][0]["classifier"])
        with ckpt.open_live() as live:
            checkpoints, samples, history = adversarial_postprocess(
                cfg, method, lam, encoder, classifier, data, device, runtime, generator, live,
                desc=f"censor {method} λ={lam} seed={seed}", ckpt=ckpt, name=variant.key)
        clock.add(samples)
        state = {"checkpoints": checkpoints}
        record = {"method": method, "lambda": lam, "seed": seed, "repetitions": cfg.adversarial.repetitions,
                  "step1": history}
    record["run"] = rt.run_metadata(device, seed, source, clock)
    rt.save_trained(variant.model_dir, state, record)
    ckpt.finish()


def check_data(cfg: Config) -> None:
    """The check_data stage's part (`replab.papers.check_data`): the prepared windows are long enough for
    `encoder` (`build_model`), and SCT / LSM find partners for every training window (`PairSampler.check`)."""
    cpu = torch.device("cpu")
    data = load_windows(cfg.dataset, cpu)
    build_model(cfg, data, cpu)
    if similarity := [m for m in cfg.methods if m in SIMILARITY_METHODS]:  # LSM's check includes SCT's
        PairSampler(data.y["train"], data.s["train"], torch.Generator()).check("lsm" in similarity, data.name)


def bench_setup(cfg: Config, device):
    """`replab bench`: SCT post-processing on synthetic windows, one batch of step 1 and one of step 2 per timed
    step (plus the per-repetition z of the fixed encoder, kept small: 1,000 windows)."""
    from replab.bench import BenchCase

    n, batch = 1000, cfg.adversarial.batch_size
    gen = rt.seeded_generator(0, device)
    x = torch.randn(n, 1, 6, 30, generator=gen, device=device)
    y = torch.randint(0, 12, (n,), generator=gen, device=device)
    s = torch.randint(0, 10, (n,), generator=gen, device=device)
    data = Windows({"train": x}, {"train": y}, {"train": s}, 12, 10, "synthetic", "bench")

    def train(iterations: int, runtime):
        encoder, classifier = build_model(cfg, data, device)
        # one repetition = one batch of step 1 and one of step 2 (bench times one progress iteration per step)
        steps_cfg = replace(cfg.adversarial, adversary_samples=batch, encoder_samples=batch, repetitions=iterations)
        run_cfg = replace(cfg, adversarial=steps_cfg)
        return adversarial_postprocess(run_cfg, "sct", 1.0, encoder, classifier, data, device, runtime, gen)

    return BenchCase(label=f"SCT batch={batch}", samples_per_step=4 * batch, train=train, x=x.flatten(1), y=y,
                     batch_size=batch)
