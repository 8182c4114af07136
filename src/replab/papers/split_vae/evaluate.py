"""split_vae evaluation: test losses (k samples), digit accuracy, linear probes, slant R², Experiment I's latents
and decoded grid, Experiment II's writer clustering and t-SNE."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, make_dataclass
from typing import Any

import numpy as np
import torch

from replab import runtime as rt
from replab.io import DataError, require_finite, write_json, write_npz
from replab.measures import percent
from replab.papers import Variant, evaluate_each, parse_record
from replab.papers.split_vae.model import (
    EVAL_NOISE_SEED,
    PAPER,
    ROWS,
    SPLITS,
    TERMS,
    ClusteringConfig,
    Config,
    SplitVAE,
    TsneConfig,
    WriterData,
    eval_terms,
    experiment_data,
    latents,
    load_model,
    load_writers,
    variant_key,
)
from replab.params import param, parse

# ---------------------------------------------------------------------------------------------------------
# Measures

def purity(writers: np.ndarray, clusters: np.ndarray) -> float:
    """(1/N)·Σ_clusters max_writer |cluster ∩ writer| (rows of the contingency matrix: writers)."""
    from sklearn.metrics.cluster import contingency_matrix

    cm = contingency_matrix(writers, clusters)
    return float(cm.max(axis=0).sum() / cm.sum())


def clustering_scores(writers: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    return {"purity": purity(writers, clusters), "ari": float(adjusted_rand_score(writers, clusters)),
            "ami_max": float(adjusted_mutual_info_score(writers, clusters, average_method="max")),
            "ami_arithmetic": float(adjusted_mutual_info_score(writers, clusters, average_method="arithmetic"))}


def cluster(method: str, features: np.ndarray, k: int, covariance: str, cfg: ClusteringConfig,
            seed: int) -> tuple[np.ndarray, bool]:
    """(cluster labels, converged) of K-Means or a GMM with k components."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    k = min(k, len(features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a capped EM run is recorded, not printed
        if method == "K-Means":
            km = KMeans(n_clusters=k, n_init=cfg.kmeans_n_init, random_state=seed).fit(features)
            return km.labels_, bool(km.n_iter_ < km.max_iter)
        gmm = GaussianMixture(n_components=k, covariance_type=covariance, max_iter=cfg.gmm_max_iter,
                              random_state=seed).fit(features)
        return gmm.predict(features), bool(gmm.converged_)


def clustering_table(features: dict[str, np.ndarray], writers: np.ndarray, k: int, cfg: ClusteringConfig,
                     seed: int) -> dict[str, dict]:
    """Every ROWS entry on these features: {row: {purity, ari, ami_max, ami_arithmetic, converged}}."""
    out = {}
    for row, (method, feat) in ROWS.items():
        covariance = cfg.gmm_covariance_pixels if feat == "pixels" else cfg.gmm_covariance_latent
        labels, converged = cluster(method, features[feat].astype(np.float64, copy=False), k, covariance, cfg,
                                    seed)
        out[row] = {**clustering_scores(writers, labels), "converged": converged}
    return out


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   max_iter: int) -> float:
    """Test accuracy (%) of a multinomial logistic regression on standardised features fit on the training
    split (a linear probe)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(test_y) == 0 or len(np.unique(train_y)) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter)).fit(train_x, train_y)
    return percent(clf.predict(test_x) == test_y)


@torch.no_grad()
def slant(x: torch.Tensor, batch_size: int = 8192) -> np.ndarray:
    """Each image's slant from its second moments: columns shifted per row, −μ11/μ02 (positive = '/')."""
    coords = torch.arange(28, device=x.device, dtype=torch.float32)

    def one(batch: torch.Tensor) -> torch.Tensor:
        img = batch.reshape(len(batch), 28, 28)
        mass = img.sum((1, 2)).clamp_min(1e-6)
        rows, cols = img.sum(2), img.sum(1)  # marginal masses per row / per column
        r_mean, c_mean = (rows * coords).sum(1) / mass, (cols * coords).sum(1) / mass
        dr = coords[None, :] - r_mean[:, None]  # (N, 28) row offsets
        dc = coords[None, :] - c_mean[:, None]  # (N, 28) column offsets
        mu11 = torch.einsum("nrc,nr,nc->n", img, dr, dc)
        mu02 = (rows * dr * dr).sum(1).clamp_min(1e-6)
        return -mu11 / mu02

    parts = [one(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(parts).double().cpu().numpy() if parts else np.zeros(0)


def slant_r2(train_z: np.ndarray, train_s: np.ndarray, test_z: np.ndarray, test_s: np.ndarray) -> float:
    """Test R² of a linear regression of the slant on latent features fit on the training split."""
    from sklearn.linear_model import LinearRegression

    if len(test_s) < 2:
        return float("nan")
    return float(LinearRegression().fit(train_z, train_s).score(test_z, test_s))


def majority_share(train_y: np.ndarray, test_y: np.ndarray) -> float:
    """Accuracy (%) of always predicting the most frequent training label (the probes' chance level)."""
    values, counts = np.unique(train_y, return_counts=True)
    return percent(test_y == values[counts.argmax()])


# ---------------------------------------------------------------------------------------------------------
# Evaluation

@torch.no_grad()
def decoded_grid(model: SplitVAE, a_ticks: np.ndarray, b_ticks: np.ndarray, device) -> np.ndarray:
    """Images decoded over the (A, B) plane: (len(b), len(a), 28, 28), rows from the largest B (top) down,
    columns from the smallest A; further latent dimensions (if any) at 0."""
    a, b = np.meshgrid(a_ticks, b_ticks[::-1], indexing="xy")
    z_a = torch.zeros(a.size, model.latent_dim, device=device)
    z_b = torch.zeros(a.size, model.latent_dim, device=device)
    z_a[:, 0] = torch.from_numpy(a.reshape(-1)).float().to(device)
    z_b[:, 0] = torch.from_numpy(b.reshape(-1)).float().to(device)
    images = torch.sigmoid(model.decode(z_a, z_b))
    return images.reshape(len(b_ticks), len(a_ticks), 28, 28).cpu().numpy()


# train.json's final.train: the last epoch's mean of each loss term of model.TERMS (each ≥ 0), or null
FinalTerms = make_dataclass("FinalTerms", [(term, float | None, param(ge=0)) for term in TERMS])


@dataclass
class TrainRecord:
    """What evaluation reads of a train.json (train.train); its other keys are not read."""

    epochs: int = param(ge=1)
    latent_dim: int = param(ge=1)
    final: dict[str, Any] = param()
    run: dict[str, Any] = param()
    writers: list[int] | None = param(None, ge=0)

    def check(self, where: str) -> None:  # (true, −5 or 1e308 had been copied into the metrics)
        parse(FinalTerms, self.final.get("train"), f"{where}.final.train")


def tsne_embed(z: np.ndarray, cfg: TsneConfig, seed: int) -> tuple[np.ndarray | None, str | None]:
    """(t-SNE embedding (N, 2), None), or (None, why it was skipped) for degenerate latents (NaN, too few
    points, all rows identical: scikit-learn would crash the process on those)."""
    from sklearn.manifold import TSNE

    from replab.report import embedding_skip_reason

    reason = embedding_skip_reason(z)
    if reason is not None:
        return None, reason
    perplexity = min(cfg.perplexity, (len(z) - 1) / 3.0)
    return TSNE(n_components=2, perplexity=perplexity, max_iter=cfg.max_iter, init="pca",
                random_state=seed).fit_transform(z), None


def all_variants(cfg: Config) -> list[Variant]:
    """Every trained variant of params.yaml (experiments × seeds), as the training stages name them."""
    return [Variant(PAPER, variant_key(e, s), {"experiment": e, "seed": s}) for e in cfg.experiments
            for s in cfg.seeds]


def evaluate(cfg: Config, runtime, variant) -> None:
    """One variant, or with the key `all` every variant of params.yaml (one process, one data load; each
    experiment's writer subset is taken once)."""
    device = rt.setup(runtime, 0)
    loaded = load_writers(cfg.dataset, device)
    subsets: dict[str, tuple[WriterData, np.ndarray]] = {}

    def one(v) -> None:
        experiment = v.axes["experiment"]
        if experiment not in subsets:
            subsets[experiment] = experiment_data(cfg, experiment, loaded, device)
        evaluate_variant(cfg, runtime, v, *subsets[experiment])

    evaluate_each(variant, all_variants(cfg), one, runtime.progress)


def evaluate_variant(cfg: Config, runtime, variant, data: WriterData, writers: np.ndarray) -> None:
    experiment, seed = variant.axes["experiment"], variant.axes["seed"]
    device = rt.setup(runtime, seed)
    state, record = rt.load_trained(variant.model_dir, device, ("arch", "weights"), variant.axes)
    record = parse_record(TrainRecord, record, str(variant.model_dir / "train.json"))
    if record.writers is not None and record.writers != writers.tolist():
        raise DataError(f"{variant.model_dir}: trained on another writer subset (run `dvc repro` to retrain)")
    model = load_model(state, device, variant.model_dir / "model.pt")
    test = eval_terms(model, data.x["test"], data.y["test"], cfg.c1, cfg.c2, cfg.eval_samples,
                      rt.seeded_generator(EVAL_NOISE_SEED, device))
    mu = {s: latents(model, data.x[s]) for s in SPLITS}  # (μ_A, μ_B) per split
    for split in SPLITS:  # probes, K-Means and t-SNE would fail on NaN with a traceback (or crash)
        for name, i in (("A", 0), ("B", 1)):
            require_finite(mu[split][i], f"{variant.paper} {variant.key}: latent μ_{name} of the {split} split")
    slants = {s: slant(data.x[s]) for s in SPLITS}
    d, w = data.digit, data.writer
    metrics: dict = {"experiment": experiment, "seed": seed, "epochs": record.epochs,
                     "latent_dim": record.latent_dim, "n_writers": len(writers), "n_train": len(d["train"]),
                     "n_test": len(d["test"]), "digit_accuracy": test["digit_accuracy"]}
    metrics.update({f"test_{t}": test[t] for t in TERMS})
    metrics.update({f"train_{t}": record.final["train"][t] for t in TERMS})
    for name, i in (("a", 0), ("b", 1)):
        metrics[f"probe_digit_from_{name}"] = probe_accuracy(mu["train"][i], d["train"], mu["test"][i], d["test"],
                                                             cfg.probe_max_iter)
        metrics[f"slant_r2_from_{name}"] = slant_r2(mu["train"][i], slants["train"], mu["test"][i], slants["test"])
    metrics["digit_chance"] = majority_share(d["train"], d["test"])

    if experiment == "exp1":
        q = cfg.grid.quantile
        a_ticks = np.linspace(*np.quantile(mu["test"][0][:, 0], [q, 1 - q]), cfg.grid.size)
        b_ticks = np.linspace(*np.quantile(mu["test"][1][:, 0], [q, 1 - q]), cfg.grid.size)
        write_npz(variant.plots_dir / "latents.npz", a=mu["test"][0], b=mu["test"][1], digit=d["test"],
                  writer=w["test"], slant=slants["test"])
        write_npz(variant.plots_dir / "grid.npz", images=decoded_grid(model, a_ticks, b_ticks, device),
                  a_ticks=a_ticks, b_ticks=b_ticks)
    else:
        for name, i in (("a", 0), ("b", 1)):
            metrics[f"probe_writer_from_{name}"] = probe_accuracy(mu["train"][i], w["train"], mu["test"][i],
                                                                  w["test"], cfg.probe_max_iter)
        metrics["writer_chance"] = majority_share(w["train"], w["test"])
        for split in cfg.clustering.splits:
            features = {"pixels": data.x[split].cpu().numpy(), "a": mu[split][0], "b": mu[split][1]}
            table = clustering_table(features, w[split], len(writers), cfg.clustering, seed)
            for row, scores in table.items():
                metrics.update({f"{split}_{row}_{m}": v for m, v in scores.items()})
        rng = np.random.default_rng(seed)
        n_test = len(d["test"])
        pick = np.sort(rng.choice(n_test, min(n_test, cfg.tsne.points), replace=False))
        write_npz(variant.plots_dir / "latents.npz", **{f"{s}_{n}": mu[s][i] for s in SPLITS
                                                        for n, i in (("a", 0), ("b", 1))},
                  **{f"{s}_digit": d[s] for s in SPLITS}, **{f"{s}_writer": w[s] for s in SPLITS})
        embedded = {}
        for name, i in (("a", 0), ("b", 1)):
            xy, reason = tsne_embed(mu["test"][i][pick], cfg.tsne, seed)
            if reason is None:
                embedded[name] = xy
            else:  # the report draws this panel as a note instead
                embedded[f"{name}_skipped"] = np.array(reason)
                print(f"{variant.paper} {variant.key}: t-SNE of latent {name.upper()} skipped: {reason}",
                      file=sys.stderr)
        write_npz(variant.plots_dir / "tsne.npz", **embedded, digit=d["test"][pick], writer=w["test"][pick],
                  index=pick)
    write_json(variant.metrics_path, {**metrics, "dataset": cfg.dataset, "run": record.run})
