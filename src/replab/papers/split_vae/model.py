"""split_vae model: configuration, the writer-labelled data on the device (and Experiment II's writer subset),
the two-bottleneck VAE of §2 (the notebook's WVAE_CLF) and its loss terms. The method is described in the
package docstring (replab/papers/split_vae/__init__.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from replab.batches import images_to_tensor
from replab.functional import Linear, bce_with_logits, tanh
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, ParamError, fail, param

PAPER = "split_vae"
EXPERIMENTS = ("exp1", "exp2")
ARTICLE_LATENT_DIM = {"exp1": 1, "exp2": 10}  # the size of A and of B each in the article's experiments
WRITER_DATASETS = ("writers", "emnist_writers")
SPLITS = ("train", "test")
COVARIANCES = ("full", "diag", "tied", "spherical")
N_CLASSES = 10
N_PIXELS = 784
EVAL_NOISE_SEED = 12345  # the sampling noise of test-loss evaluation: the same for every seed and epoch

# The clustering rows: (model, features). Rows 1–4 are the article's; kmeans_a is our control.
ROWS = {"kmeans_pixels": ("K-Means", "pixels"), "gmm_pixels": ("GMM", "pixels"), "kmeans_b": ("K-Means", "b"),
        "gmm_b": ("GMM", "b"), "kmeans_a": ("K-Means", "a")}
ARTICLE_ROWS = ("kmeans_pixels", "gmm_pixels", "kmeans_b", "gmm_b")
FEATURE_LABELS = {"pixels": "raw pixels (784)", "a": "latent A", "b": "latent B"}
MEASURES = ("purity", "ari", "ami_max", "ami_arithmetic")

# The article's clustering table (実験Ⅱ, EMNIST 100 writers, one run). A reference, never written as ours.
ARTICLE_TABLE = {
    "kmeans_pixels": {"purity": 0.1893, "ari": 0.0204, "ami_max": 0.0580},
    "gmm_pixels": {"purity": 0.1660, "ari": 0.0153, "ami_max": 0.0506},
    "kmeans_b": {"purity": 0.1971, "ari": 0.0275, "ami_max": 0.0736},
    "gmm_b": {"purity": 0.1883, "ari": 0.0220, "ami_max": 0.0621},
}
# The notebook's (not the article's) printed losses of its Experiment I model (model1, epoch 50, per image):
# training = running mean over the epoch, test = k = 10 samples. Loss = rec + KL + clf, clf = C2·CE.
NOTEBOOK_EXP1 = {"train": {"loss": 229.53, "rec": 190.84, "clf": 29.46},
                 "test": {"loss": 236.91, "rec": 194.08, "clf": 33.81}}
DIGIT_ACCURACY_CLAIM = 90.0  # % (our threshold for "A is discriminative", exp2's 10-D A)


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment's latents and schedule. Experiment I (the 2-D picture) trains on all the data."""

    latent_dim: int = param(1, ge=1, le=MAX_SIZE, doc="size of A and of B (article: 1 each in Experiment I, 10 in II)")
    epochs: int = param(50, ge=1, le=MAX_COUNT, doc="notebook: 50 (the article: Experiment II as Experiment I)")


@dataclass(frozen=True)
class Exp2Config(ExperimentConfig):
    """Experiment II: writer clustering on a writer subset."""

    n_writers: int = param(100, ge=0, le=MAX_COUNT,
                           doc="writers in the subset (article: 100); 0 = all writers, no band")
    min_train: int = param(60, ge=1, le=MAX_COUNT, doc="eligible writers have min_train … max_train training images")
    max_train: int = param(100, ge=1, le=MAX_COUNT)
    subset_seed: int = param(0, ge=0, le=SEED_MAX, doc="draws the subset (the same for every seed)")


@dataclass(frozen=True)
class GridConfig:
    """Experiment I's decoded grid over the (A, B) plane."""

    size: int = param(15, ge=2, le=MAX_SIZE, doc="images per axis")
    quantile: float = param(0.01, ge=0.0, lt=0.5, doc="spans the [q, 1 − q] quantiles of the test μ_A, μ_B")


@dataclass(frozen=True)
class ClusteringConfig:
    splits: list[str] = param(["test", "train"], each_choices=SPLITS, nonempty=True,
                              doc="splits clustered (test is the primary result)")
    kmeans_n_init: int = param(10, ge=1, le=MAX_COUNT, doc="K-Means restarts (scikit-learn 0.19 default: 10)")
    gmm_covariance_pixels: str = param("diag", choices=COVARIANCES, doc="ours: full is degenerate on 784-D")
    gmm_covariance_latent: str = param("full", choices=COVARIANCES, doc="scikit-learn default")
    gmm_max_iter: int = param(100, ge=1, le=MAX_COUNT, doc="EM iterations (scikit-learn default: 100)")


@dataclass(frozen=True)
class TsneConfig:
    points: int = param(2000, ge=10, le=MAX_COUNT, doc="at most this many test images (seeded subsample)")
    perplexity: float = param(30.0, gt=0.0, doc="scikit-learn default (capped at (n − 1)/3)")
    max_iter: int = param(1000, ge=250, le=MAX_COUNT, doc="scikit-learn default")


@dataclass(frozen=True)
class Config:
    dataset: str = param("writers", choices=WRITER_DATASETS, doc="embedded writers | EMNIST digits + writer ids")
    experiments: list[str] = param(list(EXPERIMENTS), each_choices=EXPERIMENTS, nonempty=True)
    seeds: list[int] = param([0], ge=0, le=SEED_MAX, nonempty=True)
    hidden: int = param(500, ge=1, le=MAX_SIZE, doc="encoder/decoder hidden units (notebook: 500)")
    c1: float = param(1.0, ge=0.0, doc="weight of KL_A + KL_B")
    c2: float = param(39.0625, ge=0.0, doc="weight of the batch-mean digit CE (notebook: 10000 / 256)")
    lr: float = param(1e-3, gt=0.0, doc="Adam α (Chainer defaults otherwise)")
    batch_size: int = param(256, ge=1, le=MAX_SIZE)
    exp1: ExperimentConfig = param(ExperimentConfig(latent_dim=ARTICLE_LATENT_DIM["exp1"]))
    exp2: Exp2Config = param(Exp2Config(latent_dim=ARTICLE_LATENT_DIM["exp2"]))
    eval_samples: int = param(10, ge=1, le=MAX_SIZE, doc="MC samples per image for the test losses (notebook: 10)")
    grid: GridConfig = param(GridConfig())
    clustering: ClusteringConfig = param(ClusteringConfig())
    tsne: TsneConfig = param(TsneConfig())
    probe_max_iter: int = param(1000, ge=1, le=MAX_COUNT, doc="logistic-regression iterations of the linear probes")

    def check(self, where: str) -> None:
        if self.exp2.min_train > self.exp2.max_train:
            fail(where, f"exp2.min_train = {self.exp2.min_train}: must be <= exp2.max_train "
                        f"({self.exp2.max_train})")

    def experiment(self, name: str) -> ExperimentConfig:
        return getattr(self, name)


AXES = {"experiment": "experiments", "seed": "seeds"}
SPECIAL_KEYS: tuple[str, ...] = ()


def variant_key(experiment: str, seed: int) -> str:
    """dvc.yaml's matrix ${key} for `matrix: {experiment: …, seed: …}`."""
    return f"{experiment}-{seed}"


# ---------------------------------------------------------------------------------------------------------
# Data: writer-labelled digits (data/processed/<dataset>/{train,test}.npz with x, y, writer)

@dataclass
class WriterData:
    """One writer-labelled digit set: flat float images on the device; digits and writers also on the host."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    digit: dict[str, np.ndarray]
    writer: dict[str, np.ndarray]
    n_writers: int
    source: str
    name: str


def load_writers(dataset: str, device) -> WriterData:
    from replab.data.registry import PROCESSED_ROOT
    from replab.data.writers import load_writer_splits

    root = PROCESSED_ROOT / dataset
    splits, meta = load_writer_splits(root)
    arrays = {}
    for split in SPLITS:  # checked by load_writer_splits: uint8 (N, 28, 28), digits 0 … 9, writer ids
        x, y, writer = splits[split]
        arrays[split] = {"x": x, "y": y, "writer": writer}
    return WriterData(
        x={s: images_to_tensor(a["x"], device) for s, a in arrays.items()},
        y={s: torch.from_numpy(a["y"].astype(np.int64)).to(device) for s, a in arrays.items()},
        digit={s: a["y"].astype(np.int64) for s, a in arrays.items()},
        writer={s: a["writer"].astype(np.int64) for s, a in arrays.items()},
        n_writers=int(meta.get("n_writers", len(np.unique(arrays["train"]["writer"])))),
        source=meta.get("source", "unknown"), name=dataset)


def writer_subset(train_writers: np.ndarray, sub: Exp2Config, dataset: str = "") -> np.ndarray:
    """Experiment II's writers (sorted): `n_writers` drawn with `subset_seed` among the writers with
    min_train … max_train training images; all writers when n_writers = 0."""
    ids, counts = np.unique(train_writers, return_counts=True)
    if sub.n_writers == 0:
        return ids
    eligible = ids[(counts >= sub.min_train) & (counts <= sub.max_train)]
    if len(eligible) < sub.n_writers:
        raise ParamError(f"params.yaml: split_vae.exp2.n_writers = {sub.n_writers}: data/processed/{dataset} has "
                         f"{len(eligible)} writers with {sub.min_train}–{sub.max_train} training images "
                         f"(allowed: ≤ {len(eligible)}, or 0 = all writers)")
    chosen = np.random.default_rng(sub.subset_seed).choice(eligible, sub.n_writers, replace=False)
    return np.sort(chosen)


def restrict(data: WriterData, writers: np.ndarray, device) -> WriterData:
    """The images of these writers only (both splits)."""
    keep = {s: np.isin(data.writer[s], writers) for s in SPLITS}
    idx = {s: torch.from_numpy(np.flatnonzero(keep[s])).to(device) for s in SPLITS}
    return WriterData(x={s: data.x[s][idx[s]] for s in SPLITS}, y={s: data.y[s][idx[s]] for s in SPLITS},
                      digit={s: data.digit[s][keep[s]] for s in SPLITS},
                      writer={s: data.writer[s][keep[s]] for s in SPLITS},
                      n_writers=len(writers), source=data.source, name=data.name)


def experiment_data(cfg: Config, experiment: str, data: WriterData, device) -> tuple[WriterData, np.ndarray]:
    """(the data an experiment trains and evaluates on, its writer ids)."""
    if experiment == "exp1":
        return data, np.unique(data.writer["train"])
    writers = writer_subset(data.writer["train"], cfg.exp2, cfg.dataset)
    return restrict(data, writers, device), writers


# ---------------------------------------------------------------------------------------------------------
# Model (§2 提案モデル; the notebook's WVAE_CLF)

def lecun_init_(module: nn.Module) -> nn.Module:
    """Chainer's Linear defaults: LeCunNormal weights N(0, 1/fan_in), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.in_features))
            nn.init.zeros_(m.bias)
    return module


class SplitVAE(nn.Module):
    def __init__(self, hidden: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.enc = Linear(N_PIXELS, hidden)
        self.heads = Linear(hidden, 4 * latent_dim)  # μ_A, logσ²_A, μ_B, logσ²_B
        self.dec_a = Linear(latent_dim, hidden)
        self.dec_b = Linear(latent_dim, hidden)
        self.dec_out = Linear(hidden, N_PIXELS)
        self.classifier = Linear(latent_dim, N_CLASSES)
        lecun_init_(self)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(μ_A, logσ²_A, μ_B, logσ²_B)."""
        return tuple(self.heads(tanh(self.enc(x))).chunk(4, dim=1))

    def decode(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """Pixel logits: the A and B paths are summed after their tanh."""
        return self.dec_out(tanh(self.dec_a(z_a)) + tanh(self.dec_b(z_b)))


def sample(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """z = μ + σ·ε (Chainer's F.gaussian); ε drawn from `generator` (on the tensors' device)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return reparameterize(mu, logvar, eps)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = μ + σ·ε for a given standard normal ε of μ's shape."""
    return mu + torch.exp(0.5 * logvar) * eps


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image Σ_pixels −log Bernoulli(x | sigmoid(logits)) (Chainer's bernoulli_nll, per row)."""
    return bce_with_logits(logits, x).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-image KL(N(μ, σ²) ‖ N(0, I)) = Σ_dims ½(μ² + σ² − log σ² − 1)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(1)


def loss_terms(model: SplitVAE, x: torch.Tensor, y: torch.Tensor, c1: float, c2: float,
               generator: torch.Generator, objective=None) -> dict[str, torch.Tensor]:
    """One-sample batch objective: loss = rec + C1·(KL_A + KL_B) + C2·CE, every term a batch mean. ε_A then ε_B
    [B, latent] are drawn from `generator` before `objective` (default `batch_objective`, or its torch.compile'd
    wrapper: a graph cannot take a generator) computes the terms."""
    shape = (len(x), model.latent_dim)
    eps_a, eps_b = (torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype) for _ in range(2))
    return (objective or batch_objective)(model, x, y, eps_a, eps_b, c1, c2)


def batch_objective(model: SplitVAE, x: torch.Tensor, y: torch.Tensor, eps_a: torch.Tensor, eps_b: torch.Tensor,
                    c1: float, c2: float) -> dict[str, torch.Tensor]:
    """`loss_terms` for given noise ε_A, ε_B [B, latent]."""
    mu_a, lv_a, mu_b, lv_b = model.encode(x)
    z_a, z_b = reparameterize(mu_a, lv_a, eps_a), reparameterize(mu_b, lv_b, eps_b)
    rec = bce_with_logits(model.decode(z_a, z_b), x, reduction="sum") / len(x)  # the batch mean of bernoulli_nll
    kl_a, kl_b = gaussian_kl(mu_a, lv_a).mean(), gaussian_kl(mu_b, lv_b).mean()
    ce = F.cross_entropy(model.classifier(z_a), y)
    loss = rec + c1 * (kl_a + kl_b) + c2 * ce
    return {"loss": loss, "rec": rec, "kl_a": kl_a, "kl_b": kl_b, "ce": ce, "clf": c2 * ce}


TERMS = ("loss", "rec", "kl_a", "kl_b", "ce", "clf")


@torch.no_grad()
def eval_terms(model: SplitVAE, x: torch.Tensor, y: torch.Tensor, c1: float, c2: float, k: int,
               generator: torch.Generator, batch_size: int = 2048) -> dict[str, float]:
    """Per-image means over a split with k samples per image (the notebook's test loss), and the digit accuracy
    (%) of the classifier on μ_A."""
    model.eval()
    sums = torch.zeros(len(TERMS) + 1, device=x.device, dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        mu_a, lv_a, mu_b, lv_b = model.encode(xb)
        kl_a, kl_b = gaussian_kl(mu_a, lv_a), gaussian_kl(mu_b, lv_b)
        rec, ce = torch.zeros_like(kl_a), torch.zeros_like(kl_a)
        for _ in range(k):
            z_a, z_b = sample(mu_a, lv_a, generator), sample(mu_b, lv_b, generator)
            rec += bernoulli_nll(model.decode(z_a, z_b), xb) / k
            ce += F.cross_entropy(model.classifier(z_a), yb, reduction="none") / k
        loss = rec + c1 * (kl_a + kl_b) + c2 * ce
        correct = (model.classifier(mu_a).argmax(1) == yb).float()
        sums += torch.stack([t.double().sum() for t in (loss, rec, kl_a, kl_b, ce, c2 * ce, correct)])
    means = (sums / max(len(x), 1)).tolist()
    out = dict(zip(TERMS, means[:-1]))
    out["digit_accuracy"] = 100.0 * means[-1]
    return out


@torch.no_grad()
def latents(model: SplitVAE, x: torch.Tensor, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means (μ_A, μ_B) of a split as float64 arrays."""
    model.eval()
    parts = [model.encode(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    mu_a = torch.cat([p[0] for p in parts]) if parts else torch.zeros(0, model.latent_dim)
    mu_b = torch.cat([p[2] for p in parts]) if parts else torch.zeros(0, model.latent_dim)
    return mu_a.double().cpu().numpy(), mu_b.double().cpu().numpy()


def load_model(state: dict, device, path="model.pt") -> SplitVAE:
    """The network of a model.pt dict (`path` names it): a damaged arch or weights are a one-line DataError."""
    from replab import runtime as rt

    try:
        model = SplitVAE(state["arch"]["hidden"], state["arch"]["latent_dim"])
        model.load_state_dict(state["weights"])
    except rt.MODEL_ERRORS as err:
        raise rt.model_error(path, PAPER, err) from None
    return model.to(device).eval()
