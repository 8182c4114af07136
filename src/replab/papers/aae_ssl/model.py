"""aae_ssl model: configuration, the class-balanced labeled subset, the networks of Sec. 3.2 (encoder q(y, z | x),
decoder p(x | y, z), the joint discriminator D(y, z)) and the losses of Eq. 3–6. The method is described in the
package docstring (replab/papers/aae_ssl/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from replab import runtime as rt
from replab.batches import map_batches
from replab.data.images import stratified_holdout
from replab.data.registry import IMAGE_DATASETS
from replab.functional import Linear
from replab.measures import percent
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, ParamError, fail, param

PAPER = "aae_ssl"
MODELS = ("ae", "aae_z", "aae_yz")
MODEL_LABELS = {"ae": "AE", "aae_z": "AAE(z)", "aae_yz": "AAE(y,z)"}
N_CLASSES = 10

# Table 1 of the paper: test error (%) mean ± std. A reference, never written as our result.
PAPER_TABLE1 = {
    100: {"ae": (16.11, 1.92), "aae_z": (17.37, 3.62), "aae_yz": (7.07, 2.02)},
    600: {"ae": (9.46, 0.23), "aae_z": (8.28, 1.78), "aae_yz": (5.77, 0.58)},
    1000: {"ae": (6.93, 0.28), "aae_z": (7.25, 1.15), "aae_yz": (5.14, 0.54)},
    3000: {"ae": (4.88, 0.24), "aae_z": (5.17, 0.61), "aae_yz": (4.22, 0.75)},
}
MAKHZANI_NL100 = 1.90  # Makhzani et al. AAE, test error % at 100 labels (anchor beyond the seed)
MAX_GRID_SIDE = 101  # Fig. 4's images a side at most: 101² decoded 28 × 28 images (32 MB) per digit


GRAD_CLIP_GROUPS = ("optimizer", "module")


@dataclass(frozen=True)
class StyleConfig:
    """Fig. 4: an AAE(y,z) with a 2-D z; decode a grid over (z1, z2) with y fixed."""

    z_dim: int = param(2, ge=1, le=MAX_SIZE, doc="style code size of the Fig. 4 model")
    n_labeled: int = param(1000, ge=10, le=MAX_COUNT)
    iterations: int = param(2000, ge=1, le=MAX_COUNT)
    seed: int = param(0, ge=0, le=SEED_MAX)
    grid_range: float = param(30.0, gt=0, le=1000.0, doc="z1, z2 swept over −range … +range (seed: 30)")
    grid_step: float = param(6.0, ge=0.01, doc="grid spacing (seed: 6 → 11 × 11 images); a side, "
                             "2 · grid_range / grid_step + 1 images, holds at most MAX_GRID_SIDE")
    digits: list[int] = param([0, 1], ge=0, lt=10, nonempty=True, doc="fixed y = one-hot(digit)")

    def check(self, where: str) -> None:  # 0.01 at range 30 passed: 6,001² images asked for 18 GB at evaluation
        side = int(2 * self.grid_range / self.grid_step + 0.5) + 1  # evaluate.style_grid's ticks
        if self.grid_step > 2 * self.grid_range:  # ticks −range and −range + step: the second far outside the range
            fail(where, f"grid_step = {self.grid_step:g}: wider than the grid, 2 · grid_range = "
                        f"{2 * self.grid_range:g} (allowed: at most that, for at least 2 images a side)")
        if side > MAX_GRID_SIDE:
            finest = 2 * self.grid_range / (MAX_GRID_SIDE - 1)
            fail(where, f"grid_step = {self.grid_step:g}: {side:,} images a side at grid_range = {self.grid_range:g} "
                        f"(allowed: at most {MAX_GRID_SIDE}, grid_step ≥ {finest:g})")


@dataclass(frozen=True)
class Config:
    dataset: str = param("mnist5k", choices=IMAGE_DATASETS)
    models: list[str] = param(list(MODELS), each_choices=MODELS, nonempty=True)
    n_labeled: list[int] = param([100, 600, 1000], ge=10, le=MAX_COUNT, nonempty=True, doc="Nl, class-balanced")
    seeds: list[int] = param([0, 1], ge=0, le=SEED_MAX, nonempty=True)
    hidden: int = param(1000, ge=1, le=MAX_SIZE, doc="units per hidden layer (encoder, decoder, discriminator)")
    z_dim: int = param(50, ge=1, le=MAX_SIZE)
    dropout: float = param(0.5, ge=0.0, lt=1.0)
    batchnorm: bool = param(True)
    lambda_nll: float = param(1.0, ge=0.0, doc="λ_NLL on labeled batches (0 on unlabeled)")
    lambda_rec: float = param(7.0, ge=0.0)
    lambda_reg: float = param(1.0, ge=0.0, doc="λ_reg of AAE(z) and AAE(y,z); AE has 0")
    rec_reduction: str = param("mean", choices=("mean", "sum"))
    lr: float = param(1e-4, gt=0.0)
    beta1: float = param(0.1, ge=0.0, lt=1.0)
    beta2: float = param(0.999, ge=0.0, lt=1.0)
    grad_clip: float = param(5.0, gt=0.0, doc="the L2 norm the gradients are clipped to, per grad_clip_per group")
    grad_clip_per: str = param("optimizer", choices=GRAD_CLIP_GROUPS,
                               doc="optimizer: encoder + decoder together, their one Adam (and D alone) | module: "
                                   "encoder and decoder each alone (musyoku's optimizer per module)")
    batch_labeled: int = param(100, ge=1, le=MAX_SIZE)
    batch_unlabeled: int = param(100, ge=1, le=MAX_SIZE)
    iterations: int = param(3000, ge=1, le=MAX_COUNT, doc="one labeled + one unlabeled batch each")
    eval_every: int = param(250, ge=1, le=MAX_COUNT, doc="validation error for model selection every N iterations")
    corr_threshold: float = param(0.1, gt=0.0, lt=1.0, doc="Fig. 3: an off-diagonal |corr| below this counts as "
                                  "'near 0' (ours; the source counts components near 0 without a number)")
    style: StyleConfig = param(StyleConfig())

    def check(self, where: str) -> None:
        for key, nl in [("n_labeled", nl) for nl in self.n_labeled] + [("style.n_labeled", self.style.n_labeled)]:
            if nl % N_CLASSES:
                fail(where, f"{key} = {nl}: must be a multiple of {N_CLASSES} (class-balanced subsets)")
        for key, iterations in (("iterations", self.iterations), ("style.iterations", self.style.iterations)):
            if self.eval_every > iterations:  # the model selection would see the last iteration only
                fail(where, f"eval_every = {self.eval_every}: more than {key} = {iterations} (allowed: 1 … "
                            f"{iterations}; the validation error picks the model among every eval_every-th)")


AXES = {"model": "models", "n_labeled": "n_labeled", "seed": "seeds"}
SPECIAL_KEYS = ("style",)  # the Fig. 4 model, outside the Table 1 sweep


def variant_key(model: str, n_labeled: int, seed: int) -> str:
    """dvc.yaml's ${key} for the matrix (model, n_labeled, seed)."""
    return f"{model}-{n_labeled}-{seed}"


# ---------------------------------------------------------------------------------------------------------
# Data: the labeled subset

def labeled_subset(labels: np.ndarray, n_labeled: int, seed: int, key: str = "n_labeled") -> np.ndarray:
    """Class-balanced: n_labeled / 10 random images of every class (seeded). `key`: the param that gave n_labeled
    (`n_labeled` or `style.n_labeled`), named in the ParamError when the rarest class has too few images."""
    counts = np.bincount(labels, minlength=N_CLASSES)
    if n_labeled // N_CLASSES > counts.min():
        raise ParamError(f"params.yaml: aae_ssl.{key} = {n_labeled}: larger than the training set allows "
                         f"({counts.min()} images in the rarest class; allowed: ≤ {counts.min() * N_CLASSES})")
    return stratified_holdout(labels, n_labeled // N_CLASSES, np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------------------
# Networks (Sec. 3.2, Fig. 2)

class Dropout(nn.Dropout):
    """nn.Dropout (inverted: kept units scaled by 1/(1 − p)) whose mask comes from `torch.rand` ≥ p instead of
    `bernoulli_`: the same distribution from the same global RNG, 2.6× faster on CPU for these 1000-wide layers
    (bernoulli_ was 5 % of a paper-size step). `uniform` (x's shape, in [0, 1)) replaces the draw: seeds trained
    together (`fit_seeds`) draw each seed's noise from that seed's own stream."""

    def forward(self, x: torch.Tensor, uniform: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if uniform is None:
            uniform = torch.rand_like(x)
        return x * ((uniform >= self.p) * (1.0 / (1.0 - self.p)))


def mlp_block(n_in: int, n_out: int, batchnorm: bool = False, dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = [Linear(n_in, n_out)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(n_out))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(Dropout(dropout))
    return layers


class Encoder(nn.Module):
    """q(y, z | x): 784 → h → h → (y logits 10, z linear)."""

    def __init__(self, hidden: int, z_dim: int, batchnorm: bool, dropout: float):
        super().__init__()
        self.body = nn.Sequential(*mlp_block(784, hidden, batchnorm, dropout),
                                  *mlp_block(hidden, hidden, batchnorm, dropout))
        self.y_head = Linear(hidden, N_CLASSES)
        self.z_head = Linear(hidden, z_dim)
        self.n_dropout = sum(isinstance(m, Dropout) for m in self.body)  # layers that draw noise in training

    def forward(self, x: torch.Tensor,
                dropout_noise: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """(y logits [B, 10], z [B, z_dim]) of images x [B, 784]. `dropout_noise`: given, one uniform draw
        [B, hidden] per dropout layer in order (`n_dropout`) instead of the global RNG's."""
        noise = iter(dropout_noise)
        h = x
        for layer in self.body:
            h = layer(h, next(noise, None)) if isinstance(layer, Dropout) else layer(h)
        return self.y_head(h), self.z_head(h)


class Decoder(nn.Module):
    """p(x | y, z): concat(y, z) → h → h → 784, sigmoid (inputs are in [0, 1])."""

    def __init__(self, hidden: int, z_dim: int):
        super().__init__()
        self.net = nn.Sequential(*mlp_block(N_CLASSES + z_dim, hidden), *mlp_block(hidden, hidden),
                                 Linear(hidden, 784), nn.Sigmoid())

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([y, z], dim=1))


class Discriminator(nn.Module):
    """One joint D(y, z): y → h, z → h, concat → h → 1 logit of "drawn from the prior".
    With `use_y=False` it sees z alone (the AAE(z) baseline)."""

    def __init__(self, hidden: int, z_dim: int, use_y: bool):
        super().__init__()
        self.use_y = use_y
        self.z_branch = nn.Sequential(*mlp_block(z_dim, hidden))
        self.y_branch = nn.Sequential(*mlp_block(N_CLASSES, hidden)) if use_y else None
        self.head = nn.Sequential(*mlp_block(hidden * (2 if use_y else 1), hidden), Linear(hidden, 1))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.z_branch(z)
        if self.use_y:
            h = torch.cat([self.y_branch(y), h], dim=1)
        return self.head(h).squeeze(1)


def build(model: str, hidden: int, z_dim: int, batchnorm: bool, dropout: float):
    encoder = Encoder(hidden, z_dim, batchnorm, dropout)
    decoder = Decoder(hidden, z_dim)
    disc = None if model == "ae" else Discriminator(hidden, z_dim, use_y=(model == "aae_yz"))
    return encoder, decoder, disc


# ---------------------------------------------------------------------------------------------------------
# Losses

def prior_sample(n: int, z_dim: int, device, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """y ~ one-hot(Uniform{0..9}), z ~ N(0, I)."""
    classes = torch.randint(0, N_CLASSES, (n,), device=device, generator=generator)
    y = F.one_hot(classes, N_CLASSES).float()
    z = torch.randn(n, z_dim, device=device, generator=generator)
    return y, z


def reconstruction_loss(x_rec: torch.Tensor, x: torch.Tensor, reduction: str) -> torch.Tensor:
    """Eq. 5, ‖x − x̃‖²: per-pixel mean (Chainer's mean_squared_error) or summed per image."""
    if reduction == "mean":
        return F.mse_loss(x_rec, x)
    return (x_rec - x).pow(2).sum(dim=1).mean()


def discriminator_loss(d_prior: torch.Tensor, d_encoded: torch.Tensor) -> torch.Tensor:
    """Eq. 6 from D's side: maximise log D(prior) + log(1 − D(q)) ⇔ minimise this BCE."""
    return (F.binary_cross_entropy_with_logits(d_prior, torch.ones_like(d_prior))
            + F.binary_cross_entropy_with_logits(d_encoded, torch.zeros_like(d_encoded)))


def generator_loss(d_encoded: torch.Tensor) -> torch.Tensor:
    """Eq. 6 from the encoder's side, non-saturating: −log D(q(y, z | x))."""
    return F.binary_cross_entropy_with_logits(d_encoded, torch.ones_like(d_encoded))


def batch_objective(cfg: Config, lambda_nll: float, lambda_reg: float, x, y_logits, x_rec, labels, d_encoded):
    """Eq. 3 for one batch; `labels` is None on an unlabeled batch (λ_NLL = 0 there); `d_encoded` are D's logits
    on this batch's (softmax(y), z), or None without a regularisation term (AE)."""
    terms = {"rec": reconstruction_loss(x_rec, x, cfg.rec_reduction)}
    loss = cfg.lambda_rec * terms["rec"]
    if labels is not None:
        terms["nll"] = F.cross_entropy(y_logits, labels)  # Eq. 4
        loss = loss + lambda_nll * terms["nll"]
    if d_encoded is not None and lambda_reg > 0:
        terms["reg"] = generator_loss(d_encoded)
        loss = loss + lambda_reg * terms["reg"]
    return loss, terms


def iteration_objective(cfg: Config, lambda_reg: float, x, y_logits, z, x_rec, labels, disc):
    """Eq. 3 of one iteration: the labeled batch (rows :len(labels), weights λ_NLL, λ_rec, λ_reg) plus the unlabeled
    one (0, λ_rec, λ_reg). D sees both batches in one pass (it has no batch statistics, so this equals one pass
    per batch, with fewer, larger matrix products). Returns (loss, labeled terms, unlabeled terms)."""
    n = len(labels)
    d_encoded = disc(F.softmax(y_logits, dim=1), z) if disc is not None and lambda_reg > 0 else None
    d_l, d_u = (None, None) if d_encoded is None else (d_encoded[:n], d_encoded[n:])
    loss_l, terms_l = batch_objective(cfg, cfg.lambda_nll, lambda_reg, x[:n], y_logits[:n], x_rec[:n], labels, d_l)
    loss_u, terms_u = batch_objective(cfg, 0.0, lambda_reg, x[n:], y_logits[n:], x_rec[n:], None, d_u)
    return loss_l + loss_u, terms_l, terms_u


# ---------------------------------------------------------------------------------------------------------
# Measure shared by model selection (training) and Table 1 (evaluation)

@torch.no_grad()
def error_rate(encoder: Encoder, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test error (%) of argmax q(y | x), from the integer count (`measures.percent`: a float32 mean read 13.4 % as
    13.399999588727951 in every metrics file and table)."""
    encoder.eval()
    pred = map_batches(lambda b: encoder(b)[0].argmax(1), x)
    return percent(pred != y)


# ---------------------------------------------------------------------------------------------------------
# Saved models

def arch(cfg: Config, model: str, z_dim: int) -> dict:
    """What `load_model` needs to rebuild a trained model."""
    return {"model": model, "hidden": cfg.hidden, "z_dim": z_dim, "batchnorm": cfg.batchnorm,
            "dropout": cfg.dropout}


def load_model(model_dir: Path, device, axes: dict | None = None) -> tuple[Encoder, Decoder, dict]:
    """(encoder, decoder, train.json) of a variant's folder; `axes` (model, n_labeled, seed) must match train.json
    and arch.model (runtime.load_trained): one-line DataError naming the file otherwise."""
    path = Path(model_dir) / "model.pt"
    state, record = rt.load_trained(model_dir, device, ("arch", "encoder", "decoder"), axes)
    try:
        arch = state["arch"]
        if arch["model"] != record.get("model"):
            raise ValueError(f"arch.model = {arch['model']!r}, but train.json's model is {record.get('model')!r}")
        encoder, decoder, _ = build(arch["model"], arch["hidden"], arch["z_dim"], arch["batchnorm"], arch["dropout"])
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
    except rt.MODEL_ERRORS as err:
        raise rt.model_error(path, PAPER, err) from None
    return encoder.to(device).eval(), decoder.to(device).eval(), record
