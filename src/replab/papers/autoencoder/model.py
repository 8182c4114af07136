"""autoencoder model: configuration, the blog's Keras models ported to PyTorch, the loss (Keras
`binary_crossentropy`), the noise of the denoising model and the reconstruction measures shared by training
curves and evaluation. The method is described in the package docstring (replab/papers/autoencoder/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from replab import runtime as rt
from replab.batches import map_batches
from replab.data.registry import IMAGE_DATASETS
from replab.functional import Linear, bce_with_logits
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, param

PAPER = "autoencoder"
MODELS = ("simple", "deep", "conv", "denoising")
MODEL_LABELS = {"simple": "simple (784-32-784)", "deep": "deep (784-128-64-32-…-784)",
                "conv": "convolutional (4×4×8 code)", "denoising": "denoising conv (7×7×32 code)"}
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

    epochs: int = param(ge=1, le=MAX_COUNT)
    batch_size: int = param(ge=1, le=MAX_SIZE)


@dataclass(frozen=True)
class DenoisingSchedule(Schedule):
    """The denoising model's schedule and its noise (kept here so that only this model depends on it)."""

    noise_factor: float = param(0.5, ge=0.0, doc="noisy = clip(x + factor·N(0, 1), 0, 1)")
    noise_seed: int = param(0, ge=0, le=SEED_MAX, doc="noise of the test/validation images (the same for every seed)")


@dataclass(frozen=True)
class AnomalyConfig:
    """Anomaly detection by reconstruction error: one model per held-out class, trained without it."""

    model: str = param("simple", choices=ANOMALY_MODELS, doc="architecture of the per-class models")
    epochs: int = param(50, ge=1, le=MAX_COUNT, doc="blog's simple autoencoder: 50")
    batch_size: int = param(256, ge=1, le=MAX_SIZE)
    held_out: list[int] = param(list(range(N_CLASSES)), ge=0, lt=N_CLASSES, nonempty=True,
                                doc="classes held out in turn (positives of the ROC)")
    seed: int = param(0, ge=0, le=SEED_MAX)
    score: str = param("mse", choices=SCORES, doc="per-image reconstruction error: mean squared or BCE")


@dataclass(frozen=True)
class Config:
    dataset: str = param("mnist5k", choices=IMAGE_DATASETS)
    models: list[str] = param(list(MODELS), each_choices=MODELS, nonempty=True)
    seeds: list[int] = param([0, 1, 2], ge=0, le=SEED_MAX, nonempty=True)
    simple: Schedule = param(Schedule(epochs=50, batch_size=256))
    deep: Schedule = param(Schedule(epochs=100, batch_size=256))
    conv: Schedule = param(Schedule(epochs=50, batch_size=128))
    denoising: DenoisingSchedule = param(DenoisingSchedule(epochs=100, batch_size=128))
    lr: float = param(1e-3, gt=0.0)
    beta1: float = param(0.9, ge=0.0, lt=1.0)
    beta2: float = param(0.999, ge=0.0, lt=1.0)
    # ≤ 1: tf.keras's Adam docs give 1.0 as the largest useful value; 1e30 (or a sign typo, 1e7) trained at chance
    eps: float = param(1e-7, gt=0.0, le=1.0, doc="tf.keras Adam default (torch: 1e-8)")
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
        return AutoEncoder(nn.Sequential(Linear(784, 32), nn.ReLU()), Linear(32, 784))
    if model == "deep":
        return AutoEncoder(
            nn.Sequential(Linear(784, 128), nn.ReLU(), Linear(128, 64), nn.ReLU(), Linear(64, 32), nn.ReLU()),
            nn.Sequential(Linear(32, 64), nn.ReLU(), Linear(64, 128), nn.ReLU(), Linear(128, 784)))
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
    return bce_with_logits(logits, target, reduction="mean")


def per_image_error(logits: torch.Tensor, target: torch.Tensor, score: str) -> torch.Tensor:
    """Reconstruction error of each image (mean over its pixels): the anomaly score."""
    if score == "bce":
        err = bce_with_logits(logits, target)
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


@torch.no_grad()
def code_size(model: AutoEncoder) -> int:
    """Numbers in one image's code: 32 (dense), 4·4·8 = 128 (conv), 7·7·32 = 1568 (denoising)."""
    param = next(model.parameters())
    return int(model.encode(torch.zeros(1, 784, device=param.device)).numel())


def load_model(model_name: str, weights: dict, device, path="model.pt") -> AutoEncoder:
    """The network `model_name` with `weights` (from model.pt, `path`): a bad name or weights are a one-line
    DataError naming `path`."""
    try:
        if model_name not in MODELS:
            raise ValueError(f"arch.model = {model_name!r} (allowed: {', '.join(MODELS)})")
        model = build(model_name)
        model.load_state_dict(weights)
    except rt.MODEL_ERRORS as err:
        raise rt.model_error(path, PAPER, err) from None
    return place(model, device).eval()
