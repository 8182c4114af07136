"""aae_ssl evaluation: Table 1's test error, Fig. 3's latent correlations, Fig. 4's style grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from replab import runtime as rt
from replab.batches import map_batches
from replab.io import require_finite, write_json, write_npz
from replab.loaders.images import Images, load_images
from replab.papers import Variant, evaluate_each, parse_record
from replab.papers.aae_ssl.model import (
    MODELS,
    N_CLASSES,
    PAPER,
    Config,
    Decoder,
    Encoder,
    error_rate,
    load_model,
    variant_key,
)
from replab.params import param


@dataclass
class TrainRecord:
    """What the metrics copy from a train.json (train.train); its other keys are not read."""

    model: str = param(choices=MODELS)
    n_labeled: int = param(ge=1)
    seed: int = param(ge=0)
    best_iteration: int = param(ge=0)
    run: dict[str, Any] = param()
    val_error: float | None = param(None, ge=0.0, le=100.0)


@torch.no_grad()
def latent_correlation(encoder: Encoder, x: torch.Tensor, what: str = "aae_ssl") -> np.ndarray:
    """Pearson correlation of the latent variables (z…, y…) over the test images (Fig. 3). NaN codes (a diverged
    model) raise NonFiniteError naming `what`: nan_to_num below would otherwise show them as "uncorrelated"."""
    def code(batch: torch.Tensor) -> torch.Tensor:
        y_logits, z = encoder(batch)
        return torch.cat([z, F.softmax(y_logits, 1)], 1)

    codes = require_finite(map_batches(code, x), f"{what}: latent codes (z, softmax y) of the test images")
    corr = np.corrcoef(codes.double().cpu().numpy(), rowvar=False)
    return np.nan_to_num(corr)  # a constant unit has no correlation; show it as 0


def offdiag_mean_abs(corr: np.ndarray) -> float:
    """Mean |correlation| over all pairs of distinct latent units."""
    return float(np.abs(corr[~np.eye(len(corr), dtype=bool)]).mean())


def yz_block_mean_abs(corr: np.ndarray) -> float:
    """Mean |correlation| between y and z units: the off-diagonal block Fig. 3 shows near 0 for AAE(y,z)."""
    return float(np.abs(corr[-N_CLASSES:, :-N_CLASSES]).mean())


@torch.no_grad()
def style_grid(decoder: Decoder, z_dim: int, digit: int, grid_range: float, step: float, device) -> np.ndarray:
    """Decode y = one-hot(digit) with z1, z2 swept over [−range, range] (other z units 0): (n, n, 28, 28)."""
    ticks = torch.arange(-grid_range, grid_range + step / 2, step, device=device)
    z1, z2 = torch.meshgrid(ticks, ticks.flip(0), indexing="xy")  # rows: z2 from top (+) to bottom (−)
    z = torch.zeros(z1.numel(), z_dim, device=device)
    z[:, 0] = z1.reshape(-1)
    if z_dim > 1:
        z[:, 1] = z2.reshape(-1)
    y = F.one_hot(torch.full((len(z),), digit, device=device), N_CLASSES).float()
    return decoder(y, z).reshape(len(ticks), len(ticks), 28, 28).cpu().numpy()


def all_variants(cfg: Config) -> list[Variant]:
    """Every trained variant of params.yaml, as the training stages name them: the Table 1 sweep (models ×
    n_labeled × seeds) and `style` (the evaluation stage measures them all in one process)."""
    return [Variant(PAPER, variant_key(m, n, s), {"model": m, "n_labeled": n, "seed": s})
            for m in cfg.models for n in cfg.n_labeled for s in cfg.seeds] + [Variant(PAPER, "style", {})]


def evaluate(cfg: Config, runtime, variant) -> None:
    """One variant, or with the key `all` every variant of params.yaml (one process, one data load)."""
    device = rt.setup(runtime, 0)
    data = load_images(cfg.dataset, device)
    evaluate_each(variant, all_variants(cfg), lambda v: evaluate_variant(cfg, runtime, v, data), runtime.progress)


def evaluate_variant(cfg: Config, runtime, variant, data: Images) -> None:
    device = rt.setup(runtime, 0)
    axes = variant.axes or {"model": "aae_yz", "n_labeled": cfg.style.n_labeled, "seed": cfg.style.seed}  # style
    encoder, decoder, record = load_model(variant.model_dir, device, axes)
    record = parse_record(TrainRecord, record, str(variant.model_dir / "train.json"))
    if variant.key == "style":
        grids = {f"digit_{d}": style_grid(decoder, cfg.style.z_dim, d, cfg.style.grid_range, cfg.style.grid_step,
                                          device) for d in cfg.style.digits}
        write_npz(variant.plots_dir / "style_grid.npz", **grids)
        metrics = {"test_error": error_rate(encoder, data.x["test"], data.y["test"])}
    else:
        corr = latent_correlation(encoder, data.x["test"], f"{variant.paper} {variant.key}")
        write_npz(variant.plots_dir / "latent_corr.npz", corr=corr)
        metrics = {"test_error": error_rate(encoder, data.x["test"], data.y["test"]),
                   "val_error": record.val_error, "latent_corr_yz_mean_abs": yz_block_mean_abs(corr),
                   "latent_corr_offdiag_mean_abs": offdiag_mean_abs(corr)}
    write_json(variant.metrics_path, {
        "model": record.model, "n_labeled": record.n_labeled, "seed": record.seed, **metrics,
        "best_iteration": record.best_iteration, "dataset": cfg.dataset, "run": record.run})
