"""autoencoder (seed 003): the basic autoencoder of the Keras blog, its uses, and the article's figure.

The seed (a Qiita note, 2020) runs F. Chollet's "Building Autoencoders in Keras" simple autoencoder on MNIST
(784 → 32 → 784, 50 epochs, its screenshot: 10 test digits on top, their reconstructions below) and names
three uses: dimensionality reduction, anomaly detection by reconstruction error, denoising. We port the blog's
models to PyTorch (reference/peers.md §4 holds the blog's settings and its reported losses):

    simple      784 → Dense 32 ReLU → Dense 784 sigmoid                     50 epochs, batch 256, ≈ 0.09
    deep        784-128-64-32-64-128-784, ReLU, sigmoid output                100 epochs, batch 256, ≈ 0.08
    conv        Conv16-Pool-Conv8-Pool-Conv8-Pool ⇒ (4, 4, 8) = 128-d code;
                Conv8-Up-Conv8-Up-Conv16 'valid' (16 → 14)-Up-Conv1 sigmoid   50 epochs, batch 128, ≈ 0.094
    denoising   noisy = clip(x + 0.5·N(0, 1), 0, 1); Conv32-Pool-Conv32-Pool ⇒ (7, 7, 32);
                Conv32-Up-Conv32-Up-Conv1 sigmoid; trained noisy → clean    100 epochs, batch 128, no number

    loss = per-pixel mean binary cross-entropy (Keras `binary_crossentropy`), Adam lr 1e-3, β (0.9, 0.999),
    ε 1e-7 (tf.keras), glorot_uniform weights and zero biases (Keras defaults), shuffled batches, the last
    one partial, fixed epochs and the final weights (no model selection).

The blog validates on the test set (`validation_data=(x_test, x_test)`); our curves log the training loss
and that test loss every epoch (no model selection uses it); the loss on our own validation split is in the
metrics (`val_loss`). As in the blog, the noisy training images are drawn once before training (seeded by
the run seed); the noisy test/validation images come from `denoising.noise_seed`, the same for every seed.

Anomaly detection (the article's first use, `anomaly` stage): for every held-out class k, train on all
training images but class k, score the test images by their per-image reconstruction error and report the
ROC-AUC of class k (positive) against the rest; per class and the mean. Denoising: PSNR (data range 1) of
noisy vs clean and of denoised vs clean, mean over the test images.

Models return logits; the sigmoid is applied by `reconstruct` and folded into the loss
(BCE-with-logits, which is what tf.keras computes for a sigmoid output layer).

Our choices where the sources are silent (all params): the anomaly models are the simple autoencoder with
the blog's 50 epochs, scored by per-image MSE (`anomaly.score: bce` available), one seed; three seeds per
model for mean ± std (the blog shows one run). Remaining differences to Keras: torch's Adam adds ε to
sqrt(v̂) where tf.keras adds it to sqrt(v) (negligible at ε = 1e-7); the fused Adam kernel is used on CPU
and CUDA (the same update, one kernel for all parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from replab import runtime as rt
from replab.batches import Images, index_batches, load_images, map_batches
from replab.io import DataError, write_json, write_npz
from replab.params import param

PAPER = "autoencoder"
MODELS = ("simple", "deep", "conv", "denoising")
MODEL_LABELS = {"simple": "simple (784-32-784)", "deep": "deep (784-128-64-32-…-784)",
                "conv": "convolutional (4×4×8 code)", "denoising": "denoising conv (7×7×32 code)"}
IMAGE_DATASETS = ("mnist5k", "mnist", "fashion_mnist")
N_CLASSES = 10
ANOMALY = "anomaly"
SCORES = ("mse", "bce")

# The Keras blog's reported losses (per-pixel mean BCE, "validation" = MNIST test set). A reference, never
# written as our result. The denoising model has no reported number.
BLOG_LOSS = {"simple": 0.09, "deep": 0.08, "conv": 0.094}
BLOG_LOSS_TOLERANCE = 0.005  # the blog gives one rounded number per model: treat it as value ± 0.005

NOISE_STREAMS = {"val": 1, "test": 0}  # noise_seed offset per evaluation split
ANOMALY_MODELS = ("simple", "deep", "conv")  # clean-input models (the article's anomaly detection)


@dataclass(frozen=True)
class Schedule:
    """How long and in what batches one model trains (every key required: each model has its own)."""

    epochs: int = param(ge=1)
    batch_size: int = param(ge=1)


@dataclass(frozen=True)
class DenoisingSchedule(Schedule):
    """The denoising model's schedule and its noise (kept here so that only this model depends on it)."""

    noise_factor: float = param(0.5, ge=0.0, doc="noisy = clip(x + factor·N(0, 1), 0, 1)")
    noise_seed: int = param(0, ge=0, doc="noise of the test/validation images (the same for every seed)")


@dataclass(frozen=True)
class AnomalyConfig:
    """Anomaly detection by reconstruction error: one model per held-out class, trained without it."""

    model: str = param("simple", choices=ANOMALY_MODELS, doc="architecture of the per-class models")
    epochs: int = param(50, ge=1, doc="blog's simple autoencoder: 50")
    batch_size: int = param(256, ge=1)
    held_out: list[int] = param(list(range(N_CLASSES)), ge=0, lt=N_CLASSES, nonempty=True,
                                doc="classes held out in turn (positives of the ROC)")
    seed: int = param(0, ge=0)
    score: str = param("mse", choices=SCORES, doc="per-image reconstruction error: mean squared or BCE")


@dataclass(frozen=True)
class Config:
    dataset: str = param("mnist5k", choices=IMAGE_DATASETS)
    models: list[str] = param(list(MODELS), each_choices=MODELS, nonempty=True)
    seeds: list[int] = param([0, 1, 2], ge=0, nonempty=True)
    simple: Schedule = param(Schedule(epochs=50, batch_size=256))
    deep: Schedule = param(Schedule(epochs=100, batch_size=256))
    conv: Schedule = param(Schedule(epochs=50, batch_size=128))
    denoising: DenoisingSchedule = param(DenoisingSchedule(epochs=100, batch_size=128))
    lr: float = param(1e-3, gt=0.0)
    beta1: float = param(0.9, ge=0.0, lt=1.0)
    beta2: float = param(0.999, ge=0.0, lt=1.0)
    eps: float = param(1e-7, gt=0.0, doc="tf.keras Adam default (torch: 1e-8)")
    anomaly: AnomalyConfig = param(AnomalyConfig())

    def schedule(self, model: str) -> Schedule:
        return getattr(self, model)


AXES = {"model": "models", "seed": "seeds"}
SPECIAL_KEYS = (ANOMALY,)  # all held-out classes in one stage


def variant_key(model: str, seed: int) -> str:
    """dvc.yaml's matrix ${key} for `matrix: {model: …, seed: …}`."""
    return f"{model}-{seed}"


# ---------------------------------------------------------------------------------------------------------
# Networks (the blog's Keras models; images in, logits of the same shape out)

def keras_init_(module: nn.Module) -> nn.Module:
    """Keras defaults: glorot_uniform kernels (same fans as torch's xavier_uniform_), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def conv3(c_in: int, c_out: int, padding: int = 1, relu: bool = True) -> list[nn.Module]:
    """Conv2D(c_out, (3, 3)); padding 1 = Keras 'same', 0 = 'valid'."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=padding)]
    return layers + [nn.ReLU()] if relu else layers


def pool() -> nn.Module:
    """MaxPooling2D((2, 2), padding='same'): TF pads the far edge, i.e. ceil mode (7 → 4)."""
    return nn.MaxPool2d(2, ceil_mode=True)


def up() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="nearest")  # UpSampling2D((2, 2))


class AutoEncoder(nn.Module):
    """encoder → code → decoder; `forward` maps images of any shape with 784 pixels to logits of that shape."""

    image_shape: tuple[int, ...] = (784,)

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        keras_init_(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(len(x), *self.image_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x)).reshape(x.shape)


class ConvAutoEncoder(AutoEncoder):
    image_shape = (1, 28, 28)


def place(model: AutoEncoder, device) -> AutoEncoder:
    """Move to `device`; conv models on the CPU use channels-last (NHWC) weights, which oneDNN's convolutions
    run 2–2.6× faster in training and ≈ 4× faster in inference here (same results up to rounding)."""
    model = model.to(device)
    if device.type == "cpu" and isinstance(model, ConvAutoEncoder):
        model = model.to(memory_format=torch.channels_last)
    return model


def build(model: str) -> AutoEncoder:
    if model == "simple":
        return AutoEncoder(nn.Sequential(nn.Linear(784, 32), nn.ReLU()), nn.Linear(32, 784))
    if model == "deep":
        return AutoEncoder(
            nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU()),
            nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 784)))
    if model == "conv":
        return ConvAutoEncoder(
            nn.Sequential(*conv3(1, 16), pool(), *conv3(16, 8), pool(), *conv3(8, 8), pool()),  # (8, 4, 4)
            nn.Sequential(*conv3(8, 8), up(), *conv3(8, 8), up(), *conv3(8, 16, padding=0), up(),  # 16 → 14 → 28
                          *conv3(16, 1, relu=False)))
    if model == "denoising":
        return ConvAutoEncoder(
            nn.Sequential(*conv3(1, 32), pool(), *conv3(32, 32), pool()),  # (32, 7, 7)
            nn.Sequential(*conv3(32, 32), up(), *conv3(32, 32), up(), *conv3(32, 1, relu=False)))
    raise ValueError(f"unknown model {model!r} (allowed: {', '.join(MODELS)})")


# ---------------------------------------------------------------------------------------------------------
# Losses and measures

def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Keras `binary_crossentropy` on a sigmoid output: per-pixel mean BCE (targets in [0, 1])."""
    return F.binary_cross_entropy_with_logits(logits, target)


def per_image_error(logits: torch.Tensor, target: torch.Tensor, score: str) -> torch.Tensor:
    """Reconstruction error of each image (mean over its pixels): the anomaly score."""
    if score == "bce":
        err = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        err = (torch.sigmoid(logits) - target).pow(2)
    return err.reshape(len(err), -1).mean(1)


def psnr(x: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR of every image in dB: 10·log10(range² / MSE) (MSE floored at 1e-10, i.e. at most 100 dB)."""
    mse = (x - target).pow(2).reshape(len(x), -1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def add_noise(x: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """clip(x + factor·N(0, 1), 0, 1); the noise is drawn on the CPU generator (same on every device)."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + factor * noise.to(x.device)).clamp_(0.0, 1.0)


def fixed_noisy(x: torch.Tensor, cfg: Config, split: str) -> torch.Tensor:
    """The noisy evaluation images of a split: the same for every model, seed and stage."""
    noise = cfg.denoising
    return add_noise(x, noise.noise_factor, rt.seeded_generator(noise.noise_seed + NOISE_STREAMS[split]))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC of `positive` ranked by `scores` (NaN when a split has one class only)."""
    from sklearn.metrics import roc_auc_score  # lazy: sklearn costs start-up time in every stage

    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, scores))


@torch.no_grad()
def mean_loss(model: AutoEncoder, x_in: torch.Tensor, target: torch.Tensor) -> float:
    """Per-pixel mean BCE over a whole split (batched)."""
    model.eval()
    step = 2048
    total = sum(bce_loss(model(x_in[i:i + step]), target[i:i + step]) * len(x_in[i:i + step])
                for i in range(0, len(x_in), step))
    return float(total.item() / len(x_in))


@torch.no_grad()
def reconstruct(model: AutoEncoder, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return map_batches(lambda b: torch.sigmoid(model(b)), x)


# ---------------------------------------------------------------------------------------------------------
# Training

def fit(cfg: Config, model_name: str, schedule: Schedule, x_in: torch.Tensor, target: torch.Tensor,
        curves: dict[str, tuple[torch.Tensor, torch.Tensor]], generator: torch.Generator, device, runtime,
        live=None, prefix: str = "", desc: str = "") -> tuple[AutoEncoder, dict, int]:
    """Keras `fit(x_in, target, epochs, batch_size, shuffle=True)`; after every epoch, logs the epoch's training
    loss and the loss on each `curves` split. Returns (model, last epoch's losses, samples seen)."""
    model = place(build(model_name), device)
    step_model = rt.maybe_compile(model, runtime)  # shares its weights with `model`
    # fused: one kernel for all parameters (2.6× faster steps on CPU for these small models; same update rule)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                           fused=device.type in ("cpu", "cuda"))
    n = len(x_in)
    steps_per_epoch = math.ceil(n / schedule.batch_size)

    def batches():
        for epoch in range(1, schedule.epochs + 1):
            for idx in index_batches(n, schedule.batch_size, generator, device):
                yield epoch, idx

    bar = rt.progress(batches(), total=schedule.epochs * steps_per_epoch, enabled=runtime.progress,
                      desc=desc or model_name)
    total, last = torch.zeros((), device=device), {}
    model.train()
    for step, (epoch, idx) in enumerate(bar, 1):
        loss = bce_loss(step_model(x_in[idx]), target[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * len(idx)  # Keras' epoch loss: the sample-weighted mean of batch losses
        if step % steps_per_epoch:
            continue
        last = {"train": float(total.item() / n)}
        total.zero_()
        last.update({split: mean_loss(model, xi, xt) for split, (xi, xt) in curves.items()})
        model.train()
        bar.set_postfix({"epoch": epoch, **{k: f"{v:.4f}" for k, v in last.items()}})
        if live is not None:
            live.step = epoch
            for split, value in last.items():
                live.log_metric(f"{prefix}loss/{split}", value)
            live.make_summary()
    return model, last, n * schedule.epochs


def model_inputs(cfg: Config, model_name: str, data: Images, generator: torch.Generator):
    """(training inputs, curve splits {name: (inputs, targets)}): noisy inputs for the denoising model.
    The curve is the blog's validation loss on the test set."""
    x_train, x_test = data.x["train"], data.x["test"]
    if model_name != "denoising":
        return x_train, {"test": (x_test, x_test)}
    noisy_train = add_noise(x_train, cfg.denoising.noise_factor, generator)  # drawn once, as the blog does
    return noisy_train, {"test": (fixed_noisy(x_test, cfg, "test"), x_test)}


def train(cfg: Config, runtime, variant) -> None:
    if variant.key == ANOMALY:
        return train_anomaly(cfg, runtime, variant)
    model_name, seed = variant.axes["model"], variant.axes["seed"]
    schedule = cfg.schedule(model_name)
    device = rt.setup(runtime, seed)
    data = load_images(cfg.dataset, device)
    generator = rt.seeded_generator(seed)
    x_in, curves = model_inputs(cfg, model_name, data, generator)
    clock = rt.RunClock()
    with rt.open_live(variant.live_dir) as live:
        model, last, samples = fit(cfg, model_name, schedule, x_in, data.x["train"], curves, generator, device,
                                   runtime, live, desc=f"autoencoder {model_name} seed={seed}")
    clock.add(samples)
    state = {"arch": {"model": model_name}, "weights": model.state_dict()}
    record = {"model": model_name, "seed": seed, "epochs": schedule.epochs, "batch_size": schedule.batch_size,
              "final_loss": last, "run": rt.run_metadata(device, seed, f"{data.name} ({data.source})", clock)}
    rt.save_trained(variant.model_dir, state, record)


def held_out_classes(cfg: Config, data: Images) -> list[int]:
    present = set(torch.unique(data.y["train"]).tolist()) & set(torch.unique(data.y["test"]).tolist())
    missing = [k for k in cfg.anomaly.held_out if k not in present]
    if missing:
        raise DataError(f"data/processed/{cfg.dataset}: class {missing[0]} (autoencoder.anomaly.held_out) has "
                        "no training or no test images")
    return list(cfg.anomaly.held_out)


def train_anomaly(cfg: Config, runtime, variant) -> None:
    acfg = cfg.anomaly
    schedule = Schedule(epochs=acfg.epochs, batch_size=acfg.batch_size)
    device = rt.setup(runtime, acfg.seed)
    data = load_images(cfg.dataset, device)
    classes = held_out_classes(cfg, data)
    clock = rt.RunClock()
    weights, final = {}, {}
    with rt.open_live(variant.live_dir) as live:
        for k in classes:
            # Every class model starts from the same seed: its result does not depend on the held_out list.
            torch.manual_seed(acfg.seed)
            generator = rt.seeded_generator(acfg.seed)
            normal = data.y["train"] != k
            x_train = data.x["train"][normal]
            val_normal = data.x["val"][data.y["val"] != k]
            curves = {"val_normal": (val_normal, val_normal)}
            model, last, samples = fit(cfg, acfg.model, schedule, x_train, x_train, curves, generator, device,
                                       runtime, live, prefix=f"held_out_{k}/",
                                       desc=f"autoencoder anomaly: held out {k}")
            clock.add(samples)
            weights[str(k)] = model.state_dict()
            final[str(k)] = last
    state = {"arch": {"model": acfg.model}, "weights": weights}
    record = {"model": acfg.model, "seed": acfg.seed, "epochs": acfg.epochs, "batch_size": acfg.batch_size,
              "held_out": classes, "final_loss": final,
              "run": rt.run_metadata(device, acfg.seed, f"{data.name} ({data.source})", clock)}
    rt.save_trained(variant.model_dir, state, record)


@torch.no_grad()
def code_size(model: AutoEncoder) -> int:
    """Numbers in one image's code: 32 (dense), 4·4·8 = 128 (conv), 7·7·32 = 1568 (denoising)."""
    param = next(model.parameters())
    return int(model.encode(torch.zeros(1, 784, device=param.device)).numel())


def load_model(model_name: str, weights: dict, device) -> AutoEncoder:
    model = build(model_name)
    model.load_state_dict(weights)
    return place(model, device).eval()


# ---------------------------------------------------------------------------------------------------------
# Evaluation: test loss / MSE / PSNR, the article's 10-digit figure, anomaly ROC-AUC

def example_indices(y: torch.Tensor) -> torch.Tensor:
    """The first test image of every class, in class order (the article's 10 digits)."""
    _, first = np.unique(y.cpu().numpy(), return_index=True)  # classes come back sorted
    return torch.from_numpy(first).to(y.device)


def evaluate(cfg: Config, runtime, variant) -> None:
    device = rt.setup(runtime, 0)
    state, record = rt.load_trained(variant.model_dir, device)
    data = load_images(cfg.dataset, device)
    if variant.key == ANOMALY:
        return evaluate_anomaly(cfg, variant, state, record, data, device)
    model_name = state["arch"]["model"]
    model = load_model(model_name, state["weights"], device)
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
        "train_loss": record["final_loss"]["train"],
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
        "model": model_name, "seed": record["seed"], "epochs": record["epochs"],
        "batch_size": record["batch_size"], **metrics, "dataset": cfg.dataset, "run": record["run"]})


def evaluate_anomaly(cfg: Config, variant, state: dict, record: dict, data: Images, device) -> None:
    """Score every test image by its reconstruction error under the model trained without class k."""
    x_test, labels = data.x["test"], data.y["test"].cpu().numpy()
    aucs, all_scores = {}, []
    for k in record["held_out"]:
        model = load_model(state["arch"]["model"], state["weights"][str(k)], device)
        scores = map_batches(lambda b, m=model: per_image_error(m(b), b, cfg.anomaly.score), x_test).cpu().numpy()
        aucs[str(k)] = roc_auc(scores, labels == k)  # class k is the anomaly (positive)
        all_scores.append(scores)
    write_npz(variant.plots_dir / "scores.npz", held_out=np.array(record["held_out"]),
              scores=np.stack(all_scores), labels=labels,
              roc_auc=np.array([aucs[str(k)] for k in record["held_out"]]))
    write_json(variant.metrics_path, {
        "model": record["model"], "seed": record["seed"], "epochs": record["epochs"],
        "batch_size": record["batch_size"], "score": cfg.anomaly.score, "held_out": record["held_out"],
        "roc_auc": aucs, "roc_auc_mean": float(np.mean(list(aucs.values()))), "dataset": cfg.dataset,
        "run": record["run"]})


def bench_setup(cfg: Config, device):
    """`replab bench`: the sweep's costliest training loop (the denoising conv model when swept) at its batch
    size, on synthetic MNIST-shaped images (≈ 3500, like mnist5k), without the per-epoch test curve."""
    from replab.bench import BenchCase, synthetic_images

    model = "denoising" if "denoising" in cfg.models else cfg.models[-1]
    batch_size = cfg.schedule(model).batch_size
    steps_per_epoch = max(1, 3500 // batch_size)  # full batches only: every timed step sees batch_size images
    x, y = synthetic_images(steps_per_epoch * batch_size, N_CLASSES, device)

    def train(iterations: int, runtime):
        schedule = Schedule(epochs=math.ceil(iterations / steps_per_epoch), batch_size=batch_size)
        return fit(cfg, model, schedule, x, x, {}, rt.seeded_generator(0), device, runtime)

    return BenchCase(label=f"{model} batch={batch_size}", samples_per_step=batch_size, train=train, x=x, y=y,
                     batch_size=batch_size)


# ---------------------------------------------------------------------------------------------------------
# Report

def _holds(ok: bool) -> str:
    return "holds" if ok else "does not hold"


def _reconstruction_figure(npz_path: Path, model: str, out_path: Path) -> str:
    """The article's screenshot: 10 test digits on the top row, the model's output below."""
    import matplotlib.pyplot as plt

    from replab import report
    from replab.io import read_npz

    arrays = read_npz(npz_path)
    n = len(arrays["labels"])
    top, bottom = ("noisy input", "denoised") if model == "denoising" else ("input", "reconstruction")
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.5), squeeze=False)
    for j in range(n):
        for i, (key, label) in enumerate((("input", top), ("output", bottom))):
            ax = axes[i, j]
            ax.imshow(arrays[key][j], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"{MODEL_LABELS[model]}: test digits (top) and outputs (bottom)", fontsize=9)
    return report.save_figure(fig, out_path)


def _anomaly_figure(aucs: dict[str, float], mean: float, out_path: Path) -> str:
    import matplotlib.pyplot as plt

    from replab import report

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(aucs), list(aucs.values()), color="tab:blue")
    ax.axhline(0.5, color="gray", ls="--", lw=1, label="chance")
    ax.axhline(mean, color="tab:red", lw=1, label=f"mean {mean:.3f}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("held-out class (anomaly)")
    ax.set_ylabel("ROC-AUC")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return report.save_figure(fig, out_path)


def summarize(cfg: Config, params: dict):
    from replab import report

    keys = {m: [variant_key(m, s) for s in cfg.seeds] for m in cfg.models}
    records = report.gather(PAPER, [k for ks in keys.values() for k in ks] + [ANOMALY])
    summary_dir = Path("plots") / PAPER / "summary"
    real = cfg.dataset == "mnist"
    summary: dict = {"dataset": cfg.dataset, "test_loss": {}, "test_mse": {}, "test_psnr": {}}
    rows = []
    for m in cfg.models:
        recs = [records[k] for k in keys[m]]
        loss = report.mean_std([r["test_loss"] for r in recs])
        blog = BLOG_LOSS.get(m)
        if blog is None:
            verdict = "– (no number in the blog)"
        elif real:
            verdict = report.band_verdict(loss, (blog, BLOG_LOSS_TOLERANCE))
        else:
            verdict = f"not comparable ({cfg.dataset})"
        summary["test_loss"][m] = {**loss, "blog": blog, "verdict": verdict}
        summary["test_mse"][m] = report.mean_std([r["test_mse"] for r in recs])
        summary["test_psnr"][m] = report.mean_std([r["test_psnr"] for r in recs])
        sched = cfg.schedule(m)
        rows.append([MODEL_LABELS[m], recs[0]["code_size"], sched.epochs, sched.batch_size,
                     report.fmt(loss, 4), "–" if blog is None else f"≈ {blog}",
                     report.fmt(summary["test_mse"][m], 4), report.fmt(summary["test_psnr"][m], 2), verdict])
    md = [f"Keras blog models on **{cfg.dataset}**, {len(cfg.seeds)} seed(s) each; test loss = per-pixel mean "
          "BCE on the test set (the blog's validation loss).", "",
          report.md_table(["model", "code", "epochs", "batch", "test loss (ours)", "blog", "test MSE",
                           "PSNR dB", "verdict"], rows), ""]

    claims = {}
    if "simple" in cfg.models and "deep" in cfg.models:
        claims["deep_le_simple_loss"] = (summary["test_loss"]["deep"]["mean"]
                                         <= summary["test_loss"]["simple"]["mean"])
    if "denoising" in cfg.models:
        recs = [records[k] for k in keys["denoising"]]
        summary["psnr"] = {"noisy": report.mean_std([r["psnr_noisy"] for r in recs]),
                           "denoised": report.mean_std([r["psnr_denoised"] for r in recs])}
        claims["denoised_psnr_gt_noisy"] = summary["psnr"]["denoised"]["mean"] > summary["psnr"]["noisy"]["mean"]
        md += [f"Denoising (noise factor {cfg.denoising.noise_factor}): PSNR noisy vs clean "
               f"{report.fmt(summary['psnr']['noisy'])} dB → denoised vs clean "
               f"{report.fmt(summary['psnr']['denoised'])} dB.", ""]

    anomaly = records[ANOMALY]
    aucs = {k: float(v) for k, v in anomaly["roc_auc"].items()}
    summary["anomaly_roc_auc"] = {**aucs, "mean": anomaly["roc_auc_mean"]}
    claims["anomaly_auc_gt_chance"] = anomaly["roc_auc_mean"] > 0.5
    mean_auc = anomaly["roc_auc_mean"]
    figure = _anomaly_figure(aucs, mean_auc, summary_dir / "anomaly_roc_auc.png")
    md += [f"Anomaly detection ({anomaly['model']} autoencoder, {anomaly['epochs']} epochs, seed "
           f"{anomaly['seed']}, score = per-image {anomaly['score'].upper()}): ROC-AUC of the held-out class "
           "(positive) vs the other test images.", "",
           report.md_table(["held-out class", *aucs, "mean"],
                           [["ROC-AUC", *(f"{v:.3f}" for v in aucs.values()), f"**{mean_auc:.3f}**"]]),
           "", f"![anomaly ROC-AUC]({figure})", ""]

    claim_text = {"deep_le_simple_loss": "deep autoencoder reaches a lower test loss than the simple one "
                                         "(blog ≈ 0.08 vs ≈ 0.09)",
                  "denoised_psnr_gt_noisy": "the denoising autoencoder raises PSNR over the noisy input",
                  "anomaly_auc_gt_chance": "reconstruction error flags the unseen class (mean ROC-AUC > 0.5)"}
    md += ["Qualitative claims:", ""] + [f"- {claim_text[c]}: **{_holds(ok)}**" for c, ok in claims.items()] + [""]
    summary["claims"] = claims

    md += ["Reconstructions (seed " f"{cfg.seeds[0]}; the article's screenshot layout):", ""]
    for m in cfg.models:
        key = variant_key(m, cfg.seeds[0])
        rel = _reconstruction_figure(Path("plots") / PAPER / "variants" / key / "reconstructions.npz", m,
                                     summary_dir / f"reconstructions_{m}.png")
        md += [f"![{m}]({rel})", ""]
    summary["run"] = report.run_summary(records.values())
    return report.Section(PAPER, "autoencoder — the basic autoencoder (seed 003, Keras blog)", "\n".join(md),
                          summary)
