"""autoencoder evaluation: test loss, MSE and PSNR, the article's 10-digit figure data, and the anomaly stage's
per-class ROC-AUC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from replab import runtime as rt
from replab.batches import map_batches
from replab.io import require_finite, write_json, write_npz
from replab.loaders.images import Images, load_images
from replab.papers import Variant, evaluate_each, parse_record
from replab.papers.autoencoder.model import (
    ANOMALY,
    PAPER,
    Config,
    code_size,
    fixed_noisy,
    load_model,
    mean_loss,
    per_image_error,
    psnr,
    reconstruct,
    variant_key,
)
from replab.params import param, parse


@dataclass
class FinalLoss:
    """train.json's final_loss of a reconstruction model: its last epoch's mean losses (≥ 0), or null."""

    train: float | None = param(None, ge=0)
    test: float | None = param(None, ge=0)


@dataclass
class TrainRecord:
    """What evaluation reads of a train.json (train.train / train.train_anomaly); its axes are checked by
    runtime.load_trained, its other keys are not read."""

    model: str = param()
    seed: int = param(ge=0)
    epochs: int = param(ge=1)
    batch_size: int = param(ge=1)
    run: dict[str, Any] = param()
    final_loss: dict[str, Any] = param()
    held_out: list[int] | None = param(None, ge=0, nonempty=True)

    def check(self, where: str) -> None:
        if self.held_out is None:  # (true, −5 or 1e308 had been copied into the metrics as the train loss)
            parse(FinalLoss, self.final_loss, f"{where}.final_loss")


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC of `positive` ranked by `scores` (NaN when a split has one class only)."""
    from sklearn.metrics import roc_auc_score  # lazy: sklearn costs start-up time in every stage

    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, scores))


def _defined_mean(values: list[float]) -> float:
    """Mean of the finite values; NaN (null in the JSON) when none is."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def example_indices(y: torch.Tensor) -> torch.Tensor:
    """The first test image of every class, in class order: our choice for the figure's 10 digits (the article does
    not say which it shows; the blog's code plots the first 10 test images)."""
    _, first = np.unique(y.cpu().numpy(), return_index=True)  # classes come back sorted
    return torch.from_numpy(first).to(y.device)


def all_variants(cfg: Config) -> list[Variant]:
    """Every trained variant of params.yaml, as the training stages name them: models × seeds and `anomaly` (the
    evaluation stage measures them all in one process)."""
    return [Variant(PAPER, variant_key(m, s), {"model": m, "seed": s}) for m in cfg.models for s in cfg.seeds] + [
        Variant(PAPER, ANOMALY, {})]


def evaluate(cfg: Config, runtime, variant) -> None:
    """One variant, or with the key `all` every variant of params.yaml (one process, one data load)."""
    device = rt.setup(runtime, 0)
    data = load_images(cfg.dataset, device)
    evaluate_each(variant, all_variants(cfg), lambda v: evaluate_variant(cfg, runtime, v, data), runtime.progress)


def evaluate_variant(cfg: Config, runtime, variant, data: Images) -> None:
    device = rt.setup(runtime, 0)
    axes = variant.axes if variant.key != ANOMALY else {"model": cfg.anomaly.model, "seed": cfg.anomaly.seed}
    path = variant.model_dir / "model.pt"
    state, record = rt.load_trained(variant.model_dir, device, ("arch", "weights"), axes)
    record = parse_record(TrainRecord, record, str(variant.model_dir / "train.json"))
    model_name = state["arch"].get("model") if isinstance(state["arch"], dict) else None
    if model_name != record.model:
        raise rt.model_error(path, PAPER, ValueError(f"arch.model = {model_name!r}, but train.json's model is "
                                                     f"{record.model!r}"))
    if variant.key == ANOMALY:
        return evaluate_anomaly(cfg, variant, state, record, data, device)
    model = load_model(model_name, state["weights"], device, path)
    def inputs(split: str) -> torch.Tensor:
        return fixed_noisy(data.x[split], cfg, split) if model_name == "denoising" else data.x[split]

    x_test, x_in = data.x["test"], inputs("test")
    rec = reconstruct(model, x_in)
    psnr_out = psnr(rec, x_test)
    metrics = {
        "test_loss": mean_loss(model, x_in, x_test),  # the blog's "val_loss"
        "test_mse": float((rec - x_test).pow(2).mean().item()),
        "test_psnr": float(psnr_out.mean().item()),
        "val_loss": mean_loss(model, inputs("val"), data.x["val"]),
        "train_loss": record.final_loss.get("train"),
        "code_size": code_size(model),
    }
    if model_name == "denoising":
        metrics["psnr_noisy"] = float(psnr(x_in, x_test).mean().item())
        metrics["psnr_denoised"] = metrics["test_psnr"]
    idx = example_indices(data.y["test"])
    digits = {name: t[idx].reshape(-1, 28, 28).cpu().numpy() for name, t in
              (("input", x_in), ("output", rec), ("clean", x_test))}
    write_npz(variant.plots_dir / "reconstructions.npz", **digits, labels=data.y["test"][idx].cpu().numpy())
    write_json(variant.metrics_path, {
        "model": model_name, "seed": record.seed, "epochs": record.epochs,
        "batch_size": record.batch_size, **metrics, "dataset": cfg.dataset, "run": record.run})


def evaluate_anomaly(cfg: Config, variant, state: dict, record: TrainRecord, data: Images, device) -> None:
    """Score every test image by its reconstruction error under the model trained without class k."""
    x_test, labels = data.x["test"], data.y["test"].cpu().numpy()
    aucs, all_scores = {}, []
    path, weights = variant.model_dir / "model.pt", state["weights"]
    if record.held_out is None:
        raise rt.model_error(variant.model_dir / "train.json", PAPER, KeyError("held_out"))
    for k in record.held_out:
        if not isinstance(weights, dict) or str(k) not in weights:
            raise rt.model_error(path, PAPER, KeyError(f"weights.{k}: missing (train.json's held_out has {k})"))
        model = load_model(record.model, weights[str(k)], device, path)
        scores = map_batches(lambda b, m=model: per_image_error(m(b), b, cfg.anomaly.score), x_test).cpu().numpy()
        require_finite(scores, f"{variant.paper} {variant.key}: anomaly scores of the model without class {k}")
        aucs[str(k)] = roc_auc(scores, labels == k)  # class k is the anomaly (positive)
        all_scores.append(scores)
    write_npz(variant.plots_dir / "scores.npz", held_out=np.array(record.held_out),
              scores=np.stack(all_scores), labels=labels,
              roc_auc=np.array([aucs[str(k)] for k in record.held_out]))
    write_json(variant.metrics_path, {
        "model": record.model, "seed": record.seed, "epochs": record.epochs,
        "batch_size": record.batch_size, "score": cfg.anomaly.score, "held_out": record.held_out,
        # NaN (one-class split) is written as null; the mean is over the classes where ROC-AUC is defined
        "roc_auc": aucs, "roc_auc_mean": _defined_mean(list(aucs.values())), "dataset": cfg.dataset,
        "run": record.run})
