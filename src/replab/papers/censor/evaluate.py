"""censor evaluation, after every repetition: F_y^v and F_y^t (macro-F1 of M∘E on seen / unseen users) and the
user accuracy of a freshly trained 800-200 MLP on frozen z.

The probe is seeded per checkpoint: its training windows and batch order from the variant's seed, its initial
weights from (seed, checkpoint index) (`probe_init_seed`), never from the global RNG, so the same checkpoint
gives the same user accuracy whether it is measured alone or after other variants in one process."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from replab import runtime as rt
from replab.batches import index_batches, map_batches
from replab.io import require_finite, write_json, write_npz
from replab.measures import percent
from replab.papers import EVALUATE_ALL, Variant, evaluate_each, parse_record
from replab.papers.censor.model import (
    BASELINE,
    PAPER,
    Config,
    ProbeConfig,
    Windows,
    build_model,
    load_windows,
    mlp,
    variant_key,
)
from replab.params import param, read_params


def macro_f1(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    """Macro-F1 over the classes present in y or predicted (scikit-learn's `f1_score(average='macro')`)."""
    idx = y * n_classes + pred
    confusion = torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes).double()
    tp = confusion.diag()
    support, predicted = confusion.sum(1), confusion.sum(0)
    present = (support + predicted) > 0
    f1 = torch.where(present, 2 * tp / (support + predicted).clamp_min(1), torch.zeros_like(tp))
    return float(f1[present].mean().item()) if bool(present.any()) else 0.0


def probe_init_seed(seed: int, index: int) -> int:
    """The seed of the user probe's initial weights at checkpoint `index` of a variant with `seed`: fixed by these
    two alone, so a checkpoint's user accuracy does not depend on what was measured before it in the process."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclass
class ProbeData:
    """The windows the probe trains on (all of train, or a subset of `probe.max_train` drawn with the variant's
    seed) and the state of that seed's generator after the draw, where every checkpoint's batch order starts."""

    x: torch.Tensor
    s: torch.Tensor
    generator_state: torch.Tensor


def probe_data(cfg: Config, data: Windows, seed: int, device) -> ProbeData:
    generator = rt.seeded_generator(seed, device)
    x_train, s_train = data.x["train"], data.s["train"]
    if 0 < cfg.probe.max_train < len(x_train):
        subset = torch.randperm(len(x_train), generator=generator, device=generator.device)[:cfg.probe.max_train]
        x_train, s_train = x_train[subset.to(device)], s_train[subset.to(device)]
    return ProbeData(x_train, s_train, generator.get_state())


def train_probe(cfg: ProbeConfig, z: torch.Tensor, s: torch.Tensor, n_users: int, generator,
                init_seed: int) -> nn.Module:
    """A fresh 800-200 MLP on frozen features, for the user accuracy; its initial weights are drawn from
    `init_seed` (the global RNG is left as it was), its batch order from `generator`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        probe = mlp([z.shape[1], *cfg.hidden, n_users])
    probe = probe.to(z.device)
    opt = rt.optimizer(torch.optim.Adam, probe.parameters(), lr=cfg.lr)
    probe.train()
    for _ in range(cfg.epochs):
        for idx in index_batches(len(z), cfg.batch_size, generator, z.device):
            loss = F.cross_entropy(probe(z[idx]), s[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe.eval()


@torch.no_grad()
def measure(cfg: Config, checkpoint: dict, data: Windows, device, seed: int, what: str = "censor", index: int = 0,
            probe: ProbeData | None = None) -> dict[str, float]:
    """F1 and user accuracy of checkpoint `index` of a variant with `seed`. `what` names it in the error raised when
    its features z hold NaN (argmax over NaN would pass silently as class 0). `probe`: the probe's windows
    (`probe_data`, the same for every checkpoint of the variant), drawn here when not given."""
    encoder, classifier = build_model(cfg, data, device)
    encoder.load_state_dict(checkpoint["encoder"])
    classifier.load_state_dict(checkpoint["classifier"])
    encoder.eval(), classifier.eval()
    probe = probe or probe_data(cfg, data, seed, device)
    z = {k: require_finite(map_batches(encoder, data.x[k]), f"{what}: features z of the {k} split")
         for k in ("seen", "unseen")}
    pred = {k: map_batches(classifier, z[k]).argmax(1) for k in ("seen", "unseen")}
    z_train = map_batches(encoder, probe.x)  # only the windows the probe trains on
    generator = rt.seeded_generator(seed, device)
    generator.set_state(probe.generator_state)
    with torch.enable_grad():
        user_probe = train_probe(cfg.probe, z_train, probe.s, data.n_users, generator, probe_init_seed(seed, index))
    user_pred = map_batches(user_probe, z["seen"]).argmax(1)
    return {"f1_seen": 100 * macro_f1(pred["seen"], data.y["seen"], data.n_activities),  # F_y^v
            "f1_unseen": 100 * macro_f1(pred["unseen"], data.y["unseen"], data.n_activities),  # F_y^t
            "user_accuracy": percent(user_pred == data.s["seen"]),
            "label_accuracy_seen": percent(pred["seen"] == data.y["seen"])}


def all_variants(cfg: Config, raw_lambdas: list | None = None) -> list[Variant]:
    """Every trained variant of params.yaml, as the training stages name them: the CNN baseline per seed, then
    methods × lambdas × seeds (the evaluation stage measures them all in one process). `raw_lambdas`: the values
    as params.yaml writes them, which name DVC's matrix items (`1` and `1.0` are different keys)."""
    raw = cfg.lambdas if raw_lambdas is None else raw_lambdas
    return [Variant(PAPER, variant_key(BASELINE, None, s), {"seed": s}) for s in cfg.seeds] + [
        Variant(PAPER, variant_key(m, key, s), {"method": m, "lambda": lam, "seed": s})
        for m in cfg.methods for lam, key in zip(cfg.lambdas, raw, strict=True) for s in cfg.seeds]


def checkpoint_digest(checkpoint: dict) -> str:
    """sha256 of a checkpoint's weights (names and values), whatever their memory layout or device."""
    digest = hashlib.sha256()
    for part in ("encoder", "classifier"):
        for name, tensor in sorted(checkpoint[part].items()):
            digest.update(f"{part}.{name}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class TrainRecord:
    """What the metrics copy from a train.json besides its axes (runtime.load_trained checks those)."""

    run: dict[str, Any] = param()


def check_checkpoints(cfg: Config, checkpoints: Any, data: Windows, device, path) -> None:
    """model.pt's checkpoints: a non-empty list of {encoder, classifier} weights this config's networks load
    (a one-line DataError naming `path` otherwise, before anything is measured)."""
    try:
        if not isinstance(checkpoints, list) or not checkpoints:
            raise TypeError(f"checkpoints is {type(checkpoints).__name__}, expected a non-empty list")
        encoder, classifier = build_model(cfg, data, device)
        for ckpt in checkpoints:
            encoder.load_state_dict(ckpt["encoder"])
            classifier.load_state_dict(ckpt["classifier"])
            checkpoint_digest(ckpt)
    except rt.MODEL_ERRORS as err:
        raise rt.model_error(path, PAPER, err) from None


def evaluate(cfg: Config, runtime, variant) -> None:
    """One variant, or with the key `all` every variant of params.yaml (one process, one data load). A checkpoint
    met again is not measured again: every variant of a seed starts from the same pretrained CNN (its checkpoint
    0), and its measures depend only on its weights, the seed and the checkpoint index."""
    device = rt.setup(runtime, 0)
    data = load_windows(cfg.dataset, device)
    variants = all_variants(cfg, read_params()[PAPER]["lambdas"]) if variant.key == EVALUATE_ALL else []
    measured: dict[tuple[int, int, str], dict[str, float]] = {}
    evaluate_each(variant, variants, lambda v: evaluate_variant(cfg, runtime, v, data, measured), runtime.progress)


def evaluate_variant(cfg: Config, runtime, variant, data: Windows,
                     measured: dict[tuple[int, int, str], dict[str, float]] | None = None) -> None:
    """The measures after every repetition → metrics JSON and history.npz. `measured`: measures by (seed,
    checkpoint index, checkpoint_digest), shared between the variants of one process."""
    seed = variant.axes["seed"]
    device = rt.setup(runtime, seed)
    axes = {"method": variant.axes.get("method", BASELINE), "lambda": variant.axes.get("lambda"), "seed": seed}
    state, record = rt.load_trained(variant.model_dir, device, ("checkpoints",), axes)
    run = parse_record(TrainRecord, record, str(variant.model_dir / "train.json")).run
    check_checkpoints(cfg, state["checkpoints"], data, device, variant.model_dir / "model.pt")
    probe = probe_data(cfg, data, seed, device)
    measured = {} if measured is None else measured
    history = []
    for i, ckpt in enumerate(state["checkpoints"]):
        key = (seed, i, checkpoint_digest(ckpt))
        if key not in measured:
            measured[key] = measure(cfg, ckpt, data, device, seed, f"{variant.paper} {variant.key} (checkpoint {i})",
                                    i, probe)
        history.append(measured[key])
    curves = {name: [h[name] for h in history] for name in history[0]}
    write_npz(variant.plots_dir / "history.npz", repetition=np.arange(len(history)),
              **{k: np.array(v) for k, v in curves.items()})
    # step 1's adversary loss / accuracy per repetition (absent for the CNN baseline): the report reads them to say
    # whether the adversary learned at all
    step1 = {"step1": record["step1"]} if "step1" in record else {}
    write_json(variant.metrics_path, {
        "method": record["method"], "lambda": record["lambda"], "seed": seed, **history[-1],
        "history": curves, **step1, "chance_user_accuracy": 100 / data.n_users, "dataset": cfg.dataset,
        "counts": {k: len(v) for k, v in data.y.items()}, "run": run})
