"""attention_vat training: one step of each of the nine methods (Eq. 10 with the perturbations of model.py),
the epoch loop with model selection on dev (AUC by default), the stage that trains every method of a setting
(one process per dataset × setting × family × seed) and the Fig. 2 stages (dev F1 against N_ul)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, replace
from importlib.metadata import version

import torch

from replab import runtime as rt
from replab.batches import EndlessBatches, index_batches, take_batch
from replab.checkpoint import Checkpoints
from replab.io import DataError, atomic_dir, number_text, read_json, write_json
from replab.loaders.text import TextData, load_text
from replab.measures import binary_f1, percent
from replab.papers.attention_vat.model import (
    FAMILIES,
    FIG2,
    METHODS,
    SEMI_METHODS,
    AttentionClassifier,
    Config,
    at_perturbation,
    attention_differences,
    build_model,
    combine_directions,
    fig2_methods,
    kl_binary,
    method_family,
    model_config,
    nearest_neighbours,
    nll,
    random_direction,
    save_model,
    setting_methods,
    uniform_alpha_direction,
    variant_key,
    vat_perturbation,
    word_directions,
)
from replab.params import ParamError

EVAL_BATCH = 512
FIG2_CURVE = ("n_unlabeled", "unlabeled_seen", "dev_f1", "dev_accuracy", "dev_auc", "dev_predicted_positive",
              "best_epoch", "seconds_per_step")  # what a Fig. 2 point keeps of its run's record
KEYS = ("<dataset>-<setting>-<family>-<seed> dataset=… setting=… family=… seed=…",  # `replab train attention_vat`'s
        "fig2-<dataset>-<family>-<seed> dataset=… family=… seed=…")  # (replab.papers.parse_variant names them)


def perturbation_loss(model: AttentionClassifier, cfg: Config, method: str, tokens: torch.Tensor,
                      lengths: torch.Tensor, enc, logit: torch.Tensor, y: torch.Tensor, label_loss: torch.Tensor,
                      generator: torch.Generator | None, neighbours: torch.Tensor | None) -> torch.Tensor:
    """The second term of Eq. 10 for `method` on a batch whose clean pass is `enc`/`logit` (its first len(y) rows
    are labeled). AT/iAT: NLL at X + r_adv (labeled rows); VAT/iVAT: KL(p(·|X) ‖ p(·|X + r_vadv)) over all rows.

    Attention methods perturb ã only, so their extra passes reuse the clean BiLSTM states (the softmax,
    pooling and output layer are all that is recomputed); word methods re-encode the perturbed embeddings."""
    level, kind = method.split("_")
    eps, mask = cfg.eps_for(method), enc.mask
    if level == "attention":
        h_fixed, scores_fixed = enc.h.detach(), enc.scores.detach()

        def logit_at(r):  # power iteration: ∂/∂r only
            return model.attend(h_fixed, scores_fixed, mask, r)[0]

        def adversarial_logit(r):  # the loss term: gradients reach every parameter through h and ã
            return model.attend(enc.h, enc.scores, mask, r)[0]
        base = enc.scores
        directions = attention_differences(enc.scores, mask) if kind in ("iat", "ivat") else None
        reference = logit.detach()  # the clean pass itself (same dropout mask as the perturbed passes)
    else:
        drop = cfg.dropout_in_perturbed

        def logit_at(r):
            e = model.encode(tokens, lengths, r, dropout=drop)
            return model.attend(e.h, e.scores, e.mask)[0]
        adversarial_logit = logit_at
        base = enc.embedded
        directions = (word_directions(tokens, model.embedding.weight, neighbours)
                      if kind in ("iat", "ivat") else None)
        if model.dropout.p > 0 and not drop:
            with torch.no_grad():  # the KL compares perturbed and clean passes without dropout noise
                reference = model(tokens, lengths, dropout=False).logit
        else:
            reference = logit.detach()

    if kind in ("at", "iat"):
        (grad,) = torch.autograd.grad(label_loss, base, retain_graph=True)  # ∂L/∂(embeddings or ã)
        r = (at_perturbation(grad, mask, eps) if kind == "at"
             else eps * combine_directions(grad, directions, mask, cfg.alpha_norm)[0])
        return nll(adversarial_logit(r.detach())[:len(y)], y)

    kl_at = lambda r: kl_binary(reference, logit_at(r))
    start = (random_direction(base, mask, generator) if kind == "vat"
             else uniform_alpha_direction(directions, mask))
    r = vat_perturbation(kl_at, start, mask, eps, cfg.xi, cfg.power_iterations,
                         directions if kind == "ivat" else None, cfg.alpha_norm)
    return kl_binary(reference, adversarial_logit(r))  # Eq. 1 (batch mean over labeled + unlabeled rows)


def training_loss(model: AttentionClassifier, cfg: Config, method: str, tokens: torch.Tensor,
                  lengths: torch.Tensor, y: torch.Tensor, generator=None, neighbours=None):
    """Eq. 10: L(X, y) + λ·L_adv; rows beyond len(y) are unlabeled (VAT methods only). Returns (total, NLL, adv)."""
    enc = model.encode(tokens, lengths)
    logit, _ = model.attend(enc.h, enc.scores, enc.mask)
    label_loss = nll(logit[:len(y)], y)  # Eq. 12
    if method == "vanilla":
        return label_loss, label_loss, torch.zeros((), device=logit.device)
    adv = perturbation_loss(model, cfg, method, tokens, lengths, enc, logit, y, label_loss, generator, neighbours)
    return label_loss + cfg.lam * adv, label_loss, adv


@torch.no_grad()
def predict_logits(model: AttentionClassifier, tokens: torch.Tensor, lengths: torch.Tensor,
                   batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """[N] logits of a whole split, in chunks cut to each chunk's longest sequence."""
    model.eval()
    chunks = torch.arange(len(lengths), device=lengths.device).split(batch_size)
    return torch.cat([model(*take_batch(tokens, lengths, idx)).logit for idx in chunks])


def dev_scores(model: AttentionClassifier, data: TextData) -> dict[str, float]:
    """On dev: F1 (%) of the positive class (AllenNLP's F1Measure, as the attention papers), accuracy (%), ROC-AUC (the
    AT code's model selection, `+auc`), % predicted positive (0 or 100: a constant classifier, Fig. 2's †)."""
    from sklearn.metrics import roc_auc_score  # (slow to import: only the training stages need it)

    logit = predict_logits(model, data.tokens["dev"], data.lengths["dev"]).double().cpu().numpy()
    y = data.labels["dev"].cpu().numpy()
    return {"dev_f1": 100.0 * float(binary_f1(logit > 0, y)), "dev_accuracy": percent((logit > 0) == y),
            "dev_auc": float(roc_auc_score(y, logit)) if 0 < y.sum() < len(y) else float("nan"),
            "dev_predicted_positive": percent(logit > 0)}


def unlabeled_subset(data: TextData, n_unlabeled: int, seed: int, device) -> torch.Tensor | None:
    """Indices of the first N_ul rows of a seeded permutation of the pool (nested across N_ul for one seed)."""
    if n_unlabeled == 0:
        return None
    if n_unlabeled > data.n_unlabeled:  # (Fig. 2 caps its N_ul: fig2_points)
        raise ParamError(f"params.yaml: attention_vat.n_unlabeled = {n_unlabeled:,}: data/processed/{data.name} has "
                         f"{data.n_unlabeled:,} unlabeled sequences (allowed: 0 = all … {data.n_unlabeled:,})")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(data.n_unlabeled, generator=gen)[:n_unlabeled].to(device)


def fit(cfg: Config, method: str, data: TextData, n_unlabeled: int, seed: int, device, runtime,
        epochs: int | None = None, live=None, prefix: str = "", desc: str = "", ckpt=None, loop: str = "fit",
        eps_key: str | None = None):
    """Train one model; keep the epoch with the best dev `selection` score (AUC or F1). Returns (model, record).
    With `ckpt` (replab.checkpoint.Checkpoints) it resumes from and saves its state at epoch ends under `loop`;
    a non-finite loss stops the run (ParamError naming the variant, the step and the params it read: `eps_key`
    where the ε came from elsewhere than `cfg.eps_key(method)`, e.g. eps_attention_grid). With runtime.cuda_graph on
    CUDA each iteration is replayed as a CUDA graph, one per batch shape (up to 64; rt.StepGraph)."""
    if runtime.compile:  # said once per process (Python's default warning filter), never silently ignored
        warnings.warn("attention_vat trains eagerly, without runtime.compile (its oneDNN BiLSTM and VAT's inner "
                      "autograd.grad break the graph; each batch's length would recompile it)", stacklevel=2)
    torch.manual_seed(seed)
    model = build_model(cfg, data, device)
    opt = rt.optimizer(torch.optim.Adam, model.parameters(), lr=cfg.lr, amsgrad=cfg.amsgrad,
                       weight_decay=cfg.weight_decay, fused=device.type in ("cpu", "cuda"),  # one kernel: all params
                       capturable=rt.cuda_graph_on(runtime, device))
    generator = rt.seeded_generator(seed, device)
    tokens, lengths, y = data.tokens["train"], data.lengths["train"], data.labels["train"]
    if (pool := unlabeled_subset(data, n_unlabeled, seed, device)) is not None:
        unlabeled = EndlessBatches(len(pool), cfg.batch_unlabeled, generator, device, track_seen=True)
    epochs = epochs or cfg.epochs
    steps_per_epoch = math.ceil(len(y) / cfg.batch_size)
    best, best_state, history, train_seconds, steps, first = {"score": -math.inf, "epoch": 0}, None, [], 0.0, 0, 0
    keys = ["lr", *(["weight_decay"] if cfg.weight_decay else []),  # the params a diverged run of `method` read
            *([eps_key or cfg.eps_key(method), "lam"] if method != "vanilla" else []),
            *(["xi"] if method.endswith("vat") else [])]
    guard = rt.LossGuard(desc or f"attention_vat {method}", device, hint=f"lower attention_vat.{', .'.join(keys)}?",
                         watch={"model": model})
    if ckpt is not None and (saved := ckpt.resume(loop)) is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        rt.keep_capturable(runtime, device, opt)
        generator.set_state(saved["generator"])
        if pool is not None:
            unlabeled.load_state_dict(saved["unlabeled"])
        best, best_state, history = saved["best"], saved["best_state"], saved["history"]
        train_seconds, steps, first = saved["train_seconds"], saved["steps"], saved["epoch"] + 1

    def state() -> dict:
        return {"model": model.state_dict(), "opt": opt.state_dict(), "generator": generator.get_state(), "best": best,
                **({"unlabeled": unlabeled.state_dict()} if pool is not None else {}), "best_state": best_state,
                "history": history, "train_seconds": train_seconds, "steps": steps, "epoch": epoch}

    def iteration(t, n, yb):  # one training iteration on a batch (tokens, lengths, labels) → Eq. 10's terms
        loss, label_loss, adv = training_loss(model, cfg, method, t, n, yb, generator, neighbours)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss, label_loss, adv

    step_graph = rt.StepGraph(iteration, runtime, device, desc or f"attention_vat {method}", (generator,), 64)
    batches = ((epoch, idx) for epoch in range(first, epochs)
               for idx in index_batches(len(y), cfg.batch_size, generator, device))
    bar = rt.progress(batches, initial=steps, total=epochs * steps_per_epoch, enabled=runtime.progress,
                      desc=desc or method)
    neighbours, totals, started = None, torch.zeros(3, device=device), time.perf_counter()
    for step, (epoch, idx) in enumerate(bar, steps + 1):
        if (step - 1) % steps_per_epoch == 0:  # the epoch's first step
            if method in ("word_iat", "word_ivat"):  # Sato et al.: the k nearest words, recomputed every epoch
                nearest = nearest_neighbours(model.embedding.weight, cfg.neighbours)  # (into the captured tensor)
                neighbours = nearest if neighbours is None else neighbours.copy_(nearest)
            model.train()
            totals.zero_()
            started = time.perf_counter()
        more = (data.tokens["unlabeled"], data.lengths["unlabeled"], pool[next(unlabeled)]) if pool is not None else ()
        t, n = take_batch(tokens, lengths, idx, *more)
        loss, label_loss, adv = step_graph(t, n, y[idx])
        totals += torch.stack([loss.detach(), label_loss.detach(), adv.detach()])
        guard.update(step, loss)
        if step % steps_per_epoch:
            continue
        means = (totals / steps_per_epoch).tolist()
        train_seconds += time.perf_counter() - started
        steps += steps_per_epoch
        guard.check()
        dev = dev_scores(model, data)
        seen = {"unlabeled_seen": unlabeled.n_seen} if pool is not None else {}  # N_ul only if steps allow
        history.append({"epoch": epoch + 1, "loss": means[0], "nll": means[1], "adv": means[2], **dev, **seen})
        score = dev[f"dev_{cfg.selection}"]
        score = -math.inf if math.isnan(score) else score  # AUC is undefined on a single-class dev set
        if best_state is None or score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, **dev, **seen}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bar.set_postfix(loss=f"{means[0]:.4f}", dev_f1=f"{dev['dev_f1']:.2f}", dev_auc=f"{dev['dev_auc']:.3f}",
                        best_epoch=best["epoch"])
        if live is not None:
            live.step = epoch + 1
            for name in ("loss", "nll", "adv", "dev_f1", "dev_accuracy", "dev_auc"):  # (the % positive: in train.json)
                live.log_metric(f"{prefix}{name}", history[-1][name])
            live.make_summary()
        if ckpt is not None:
            ckpt.maybe_save(loop, state, guard, where=f"epoch {epoch + 1}")
    model.load_state_dict(best_state)
    rows = len(y) + (min(cfg.batch_unlabeled, len(pool)) * steps_per_epoch if pool is not None else 0)
    record = {"method": method, "n_labeled": len(y), "n_unlabeled": n_unlabeled, "epochs": epochs,
              "best_epoch": best["epoch"], "selection": cfg.selection, "unlabeled_seen": best.get("unlabeled_seen", 0),
              **{k: v for k, v in best.items() if k.startswith("dev_")}, "history": history,
              "steps": steps, "seconds_per_step": train_seconds / max(steps, 1), "rows_per_epoch": rows}
    return model, record


def check_data(cfg: Config) -> None:
    """The check_data stage's part (`replab.papers.check_data`), per set of `datasets` as training loads it (its pool
    cut to `unlabeled_max_length`): `embedding_dim`, `neighbours` (Word iAT / iVAT) and `n_unlabeled` within its data,
    `selection: auc` against a dev split of one class (ROC-AUC undefined: every epoch would tie, the first kept)."""
    for dataset in cfg.datasets:
        data = load_text(dataset, torch.device("cpu"), cfg.unlabeled_max_length, splits=("train", "dev", "unlabeled"))
        if cfg.selection == "auc" and len(classes := data.labels["dev"].unique()) < 2:
            raise ParamError(f"params.yaml: attention_vat.selection = auc: the dev split of data/processed/{dataset} "
                             f"holds class {int(classes[0])} only, where ROC-AUC is undefined (allowed: f1)")
        weight = build_model(cfg, data, "cpu").embedding.weight
        if {"word_iat", "word_ivat"} & {*cfg.methods, *cfg.semi_methods, *cfg.fig2.methods}:
            nearest_neighbours(weight, cfg.neighbours, check_only=True)
        unlabeled_subset(data, cfg.n_unlabeled, 0, "cpu")


def train(cfg: Config, runtime, variant) -> None:
    """One training stage: `<dataset>-<setting>-<family>-<seed>` (every method of one family in the setting,
    `train_group`) or `fig2-<dataset>-<family>-<seed>` (`train_fig2`: Fig. 2 of the family's methods)."""
    if "method" in variant.axes or "seed" not in variant.axes:  # a method's or the evaluation's key
        raise ParamError(f"attention_vat {variant.key}: a training stage trains every method of one family "
                         f"({', '.join(FAMILIES)}) in a setting; its key is {' or '.join(KEYS)}")
    setting, family = variant.axes.get("setting"), variant.axes.get("family")
    if family and family not in {method_family(m) for m in (SEMI_METHODS if setting == "semi" else METHODS)}:
        raise ParamError(f"attention_vat {variant.key}: the {setting} setting has no {family} method (semi-supervised "
                         "methods are word_* and attention_*): no such stage")
    seed = variant.axes["seed"]
    device = rt.setup(runtime, seed)
    ckpt = Checkpoints(variant, cfg, runtime)  # resumes a killed run of the same params and code
    if variant.key.startswith(f"{FIG2}-"):
        return train_fig2(cfg, runtime, variant, device, ckpt.track(rt.RunClock()), ckpt)
    return train_group(cfg, runtime, variant, device, ckpt)


def train_group(cfg: Config, runtime, variant, device, ckpt) -> None:
    """Every method of the variant's family in its setting (`methods`, or `semi_methods` with the unlabeled pool)
    for one dataset and seed, in this process: one data load, per method its own fit (seeded afresh: the model of a
    process of its own), DVCLive curves in plots/attention_vat/curves/<group>/<key>/, then model.pt + train.json in
    models/attention_vat/<group>/<key>/ (the group folder as one swap). With `eps_attention_grid` each attention
    method is trained at every ε (curves in <key>@eps=<ε>/), the best on dev kept, its record giving every ε's dev
    score (`eps_selection`). Methods (and ε's) finished before a kill are kept in the checkpoint, not retrained."""
    seed, dataset, setting = variant.axes["seed"], variant.axes["dataset"], variant.axes["setting"]
    family = variant.axes["family"]
    methods = setting_methods(cfg, setting, family)
    if not methods:  # e.g. no word method in the list: the stage's (empty) folder says that nothing was trained
        print(f"attention_vat {variant.key}: no {family} method in attention_vat."
              f"{'semi_methods' if setting == 'semi' else 'methods'}; nothing to train", file=sys.stderr)
        ckpt.live_dir.mkdir(parents=True, exist_ok=True)  # a declared output, like the model folder
    data, context = load_text(dataset, device, cfg.unlabeled_max_length), fit_context(variant, ckpt, device)
    if setting == "semi" and data.n_unlabeled == 0:
        # e.g. eraser_movies, prepared without a pool: the VAT term on the labeled data only, recorded as N_ul = 0
        print(f"attention_vat {variant.key}: data/processed/{dataset} has no unlabeled pool; semi-supervised "
              "training uses N_ul = 0", file=sys.stderr)
    n_unlabeled = (cfg.n_unlabeled or data.n_unlabeled) if setting == "semi" else 0
    done: dict[str, dict] = ckpt.resumed_context.get("done", {})  # {key: {"weights", "record"}} before a kill
    search: dict[str, dict] = ckpt.resumed_context.get("eps_search", {})  # {key: {"dev": {ε: score}, "best"}}
    ckpt.context.update(done=done, eps_search=search)
    interrupted = ckpt.loaded["loop"] if ckpt.resuming else None  # the method (@ε) a kill stopped mid-fit

    def train_one(run_cfg: Config, method: str, name: str, eps_key: str | None = None) -> dict:  # loop: `name`
        clock = ckpt.track(rt.RunClock()) if name == interrupted else rt.RunClock()  # + its time before the kill
        ckpt.clock = clock
        with ckpt.open_live(name, resume=name == interrupted) as live:
            model, record = fit(run_cfg, method, data, n_unlabeled, seed, device, runtime, live=live,
                                desc=f"attention_vat {name}", ckpt=ckpt, loop=name, eps_key=eps_key)
        clock.add(record["rows_per_epoch"] * record["epochs"])
        record = {"dataset": dataset, "setting": setting, "seed": seed, **record,
                  "fit_signature": fit_signature(context, run_cfg, method, n_unlabeled),
                  "eps": run_cfg.eps_for(method) if method != "vanilla" else None,
                  "run": rt.run_metadata(device, seed, f"{data.name} ({data.source})", clock)}
        return {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "record": json.loads(json.dumps(record))}  # plain types: the checkpoint loads weights_only

    grid = cfg.eps_attention_grid if family == "attention" else []
    for method in rt.progress(methods, enabled=runtime.progress, desc=f"attention_vat {variant.key}", unit="method"):
        key = variant_key(dataset, method, setting, seed)
        if key not in done and not grid:
            done[key] = train_one(cfg, method, key)
        if key in done:
            continue
        tried = search.setdefault(key, {"dev": {}, "best": None})  # the ε's trained so far, the best of them
        for eps in [e for e in grid if number_text(e) not in tried["dev"]]:
            trained = train_one(replace(cfg, eps_attention=eps), method, f"{key}@eps={number_text(eps)}",
                                "eps_attention_grid")
            score = -math.inf if math.isnan(s := trained["record"][f"dev_{cfg.selection}"]) else s
            tried["best"] = trained if tried["best"] is None or score > max(tried["dev"].values()) else tried["best"]
            tried["dev"][number_text(eps)] = score
        best = search.pop(key)["best"]  # the best on dev; its record gives every ε's dev score
        done[key] = {**best, "record": {**best["record"], "eps_selection": {"dev": tried["dev"]}}}
    config = model_config(cfg, data)
    with atomic_dir(variant.model_dir) as tmp:
        for method in methods:
            key = variant_key(dataset, method, setting, seed)
            save_model(done[key]["weights"], config, tmp / key, done[key]["record"])
    ckpt.finish()


# Config fields `fit` never reads (a run's N_ul, ε and epochs reach it as arguments or in the Config it is given)
NOT_READ_BY_FIT = ("dataset", "datasets", "methods", "semi_methods", "seeds", "eps_attention_grid", "n_unlabeled",
                   "fig2")


def fit_context(variant, ckpt, device) -> list:
    """What a stage's `fit` runs share, for `fit_signature`: data set, seed, the stage's `run_facts` (code `train`
    reaches, which holds `fit`, model.py and train.py whole, data files, runtime, machine), the run block, sklearn."""
    return [variant.axes["dataset"], variant.axes["seed"], ckpt.facts, rt.run_metadata(device, 0, ""),
            version("scikit-learn")]


def fit_signature(context: list, cfg: Config, method: str, n_unlabeled: int) -> str:
    """sha256 of a `fit` run's `fit_context`, the Config fields it reads (`Config.reads`), method and N_ul. `fit` seeds
    afresh: runs of one signature give one record and weights bit for bit (test_a_method_trained_after_others_…)."""
    reads = cfg.reads(method, n_unlabeled)
    what = [context, {k: v for k, v in asdict(cfg).items() if k not in NOT_READ_BY_FIT and reads.get(k, True)},
            method, n_unlabeled]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def fig2_points(cfg: Config, n_labeled: int, pool: int) -> list[int]:
    """N_ul of each Fig. 2 point: ratio × N_l, capped by the pool (duplicates after capping dropped; said on
    stderr, and the report gives each point's N_ul and its ratio)."""
    asked = {r: round(r * n_labeled) for r in cfg.fig2.ratios}
    if capped := [r for r, n in asked.items() if n > pool]:
        print(f"attention_vat Fig. 2: fig2.ratios {', '.join(f'{r:g}' for r in capped)} × N_l = {n_labeled:,} ask "
              f"for more than the pool's {pool:,} unlabeled sequences: trained at {pool:,}", file=sys.stderr)
    return sorted({min(n, pool) for n in asked.values()})


def train_fig2(cfg: Config, runtime, variant, device, clock, ckpt) -> None:
    """Fig. 2 of one dataset, family and seed: each method of `fig2.methods` in the family trained at each N_ul, its
    model-selection dev F1 the y value (the seed's 'validation score'); train.json, no weights. One stage per family (an
    ε sweep retrains only the points it perturbs). A point a training stage ran (N_ul 0; the semi N_ul) takes its record
    where `fit_signature`, method and N_ul match (what its training would give); no dvc.yaml dep: they run first."""
    seed, dataset, family = variant.axes["seed"], variant.axes["dataset"], variant.axes["family"]
    methods = fig2_methods(cfg, family)
    if not methods:  # its (empty) curves record and folder say that nothing was trained
        print(f"attention_vat {variant.key}: no {family} method in attention_vat.fig2.methods; nothing to train",
              file=sys.stderr)
        ckpt.live_dir.mkdir(parents=True, exist_ok=True)  # a declared output, like the model folder
    data = load_text(dataset, device, cfg.unlabeled_max_length)
    n_labeled = len(data.labels["train"])
    points = fig2_points(cfg, n_labeled, data.n_unlabeled)
    run_cfg, context = replace(cfg, epochs=cfg.fig2.epochs or cfg.epochs), fit_context(variant, ckpt, device)
    runs = {}  # {(fit_signature, method, N_ul): record} of the family's trained models, but those unreadable or short
    for path in sorted(variant.model_dir.parent.glob(f"{dataset}-*-{family}-{seed}/*/train.json")):  # of a number
        with contextlib.suppress(DataError):  # of FIG2_CURVE (trained again)
            if all(isinstance((r := read_json(path, dict)).get(k), int | float) for k in FIG2_CURVE):
                runs[str(r.get("fit_signature")), r.get("method"), r["n_unlabeled"]] = {**r, "key": path.parent.name}
    curves: dict[str, dict] = ckpt.resumed_context.get("curves", {})  # the points finished before a kill
    ckpt.context["curves"] = curves
    for method in methods:
        curves.setdefault(method, {k: [] for k in FIG2_CURVE})
        # one DVCLive folder per method, step = N_ul: the curves stage overlays them in one Fig. 2 chart, named so
        with ckpt.open_live(f"fig2-{dataset}-{method}-{seed}", resume=bool(curves[method]["n_unlabeled"])) as live:
            for n_ul in points:
                if n_ul in curves[method]["n_unlabeled"]:
                    continue
                if (record := runs.get((fit_signature(context, run_cfg, method, n_ul), method, n_ul))) is not None:
                    print(f"attention_vat {variant.key}: {method} at N_ul = {n_ul:,} is the run of {record['key']}: "
                          "its record, not trained again", file=sys.stderr)
                else:
                    _, record = fit(run_cfg, method, data, n_ul, seed, device, runtime, ckpt=ckpt, loop=f"{method} "
                                    f"N_ul={n_ul}", desc=f"attention_vat fig2 {dataset} {method} N_ul={n_ul}")
                    clock.add(record["rows_per_epoch"] * record["epochs"])
                for name in curves[method]:
                    curves[method][name].append(record[name])
                live.step = n_ul
                live.log_metric("fig2/dev_f1_by_n_unlabeled", record["dev_f1"])  # a folder: dvc.yaml's N_ul axis
            live.make_summary()
    record = {"dataset": dataset, "family": family, "seed": seed, "n_labeled": n_labeled, "epochs": run_cfg.epochs,
              "ratios": cfg.fig2.ratios, "curves": curves,
              "run": rt.run_metadata(device, seed, f"{data.name} ({data.source})", clock)}
    with atomic_dir(variant.model_dir) as tmp:
        write_json(tmp / "train.json", record)
    ckpt.finish()


def bench_setup(cfg: Config, device):
    """`replab bench`: semi-supervised Attention VAT at the profile's sizes through `fit` on synthetic rt_snippets-like
    sentences (vocabulary 6,500, 5–40 tokens): one epoch of bench's steps, each a labeled batch plus `batch_unlabeled`
    rows of a 2,000-sentence pool; the epoch's dev pass (8 sentences) comes after the last step, untimed."""
    from replab.bench import BenchCase, synthetic_sentences

    b, pool, vocab, length = cfg.batch_size, 2000, 6500, 40
    unl_tokens, unl_lengths, y_pool = synthetic_sentences(pool, vocab, length, device, seed=0)

    def train(iterations: int, runtime):
        tokens, lengths, y = synthetic_sentences(iterations * b, vocab, length, device, seed=1)
        data = TextData({"train": tokens, "dev": tokens[:8], "unlabeled": unl_tokens},
                        {"train": lengths, "dev": lengths[:8], "unlabeled": unl_lengths},
                        {"train": y, "dev": y[:8]}, vocab, {"pad": 0, "unk": 1}, None, "synthetic", "bench")
        return fit(cfg, "attention_vat", data, pool, 0, device, runtime, epochs=1)[0]

    return BenchCase(label=f"Attention VAT semi batch={b}+{cfg.batch_unlabeled} d={cfg.embedding_dim} "
                           f"h={cfg.hidden}", samples_per_step=b + cfg.batch_unlabeled, train=train, x=unl_tokens,
                     y=y_pool, batch_size=b)

