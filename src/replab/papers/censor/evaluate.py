"""censor evaluation, after every repetition: F_y^v and F_y^t (macro-F1 of M∘E on seen / unseen users) and the
user accuracy of a freshly trained 800-200 MLP on frozen z."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from replab import runtime as rt
from replab.batches import index_batches, map_batches
from replab.io import require_finite, write_json, write_npz
from replab.papers.censor.model import Config, ProbeConfig, Windows, build_model, load_windows, mlp


def macro_f1(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    """Macro-F1 over the classes present in y or predicted (scikit-learn's `f1_score(average='macro')`)."""
    idx = y * n_classes + pred
    confusion = torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes).double()
    tp = confusion.diag()
    support, predicted = confusion.sum(1), confusion.sum(0)
    present = (support + predicted) > 0
    f1 = torch.where(present, 2 * tp / (support + predicted).clamp_min(1), torch.zeros_like(tp))
    return float(f1[present].mean().item()) if bool(present.any()) else 0.0


def train_probe(cfg: ProbeConfig, z: torch.Tensor, s: torch.Tensor, n_users: int, generator) -> nn.Module:
    """A fresh 800-200 MLP on frozen features, for the user accuracy."""
    probe = mlp([z.shape[1], *cfg.hidden, n_users]).to(z.device)
    opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr)
    probe.train()
    for _ in range(cfg.epochs):
        for idx in index_batches(len(z), cfg.batch_size, generator, z.device):
            loss = F.cross_entropy(probe(z[idx]), s[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe.eval()


@torch.no_grad()
def measure(cfg: Config, checkpoint: dict, data: Windows, device, seed: int, what: str = "censor") -> dict[str, float]:
    """F1 and user accuracy of one checkpoint. `what` names it in the error raised when its features z hold NaN
    (argmax over NaN would pass silently as class 0)."""
    encoder, classifier = build_model(cfg, data, device)
    encoder.load_state_dict(checkpoint["encoder"])
    classifier.load_state_dict(checkpoint["classifier"])
    encoder.eval(), classifier.eval()
    z = {k: require_finite(map_batches(encoder, data.x[k]), f"{what}: features z of the {k} split")
         for k in ("seen", "unseen")}
    pred = {k: map_batches(classifier, z[k]).argmax(1) for k in ("seen", "unseen")}
    generator = rt.seeded_generator(seed, device)
    x_train, s_train = data.x["train"], data.s["train"]
    if 0 < cfg.probe.max_train < len(x_train):
        subset = torch.randperm(len(x_train), generator=generator, device=generator.device)[:cfg.probe.max_train]
        x_train, s_train = x_train[subset.to(device)], s_train[subset.to(device)]
    z_train = map_batches(encoder, x_train)  # only the windows the probe trains on
    with torch.enable_grad():
        probe = train_probe(cfg.probe, z_train, s_train, data.n_users, generator)
    user_pred = map_batches(probe, z["seen"]).argmax(1)
    return {"f1_seen": 100 * macro_f1(pred["seen"], data.y["seen"], data.n_activities),  # F_y^v
            "f1_unseen": 100 * macro_f1(pred["unseen"], data.y["unseen"], data.n_activities),  # F_y^t
            "user_accuracy": 100 * float((user_pred == data.s["seen"]).double().mean().item()),
            "label_accuracy_seen": 100 * float((pred["seen"] == data.y["seen"]).double().mean().item())}


def evaluate(cfg: Config, runtime, variant) -> None:
    seed = variant.axes["seed"]
    device = rt.setup(runtime, seed)
    state, record = rt.load_trained(variant.model_dir, device)
    data = load_windows(cfg.dataset, device)
    history = [measure(cfg, ckpt, data, device, seed, f"{variant.paper} {variant.key} (checkpoint {i})")
               for i, ckpt in enumerate(rt.progress(state["checkpoints"], enabled=runtime.progress,
                                                    desc=f"evaluate {variant.key}"))]
    curves = {name: [h[name] for h in history] for name in history[0]}
    write_npz(variant.plots_dir / "history.npz", repetition=np.arange(len(history)),
              **{k: np.array(v) for k, v in curves.items()})
    # step 1's adversary loss / accuracy per repetition (absent for the CNN baseline): the report reads them to say
    # whether the adversary learned at all
    step1 = {"step1": record["step1"]} if "step1" in record else {}
    write_json(variant.metrics_path, {
        "method": record["method"], "lambda": record["lambda"], "seed": seed, **history[-1],
        "history": curves, **step1, "chance_user_accuracy": 100 / data.n_users, "dataset": cfg.dataset,
        "counts": {k: len(v) for k, v in data.y.items()}, "run": record["run"]})
