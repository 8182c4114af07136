"""censor model: configuration, data on the device, networks (E, M, adversaries), the losses of Eq. 1–5 and the
pair sampler. The method is described in the package docstring (replab/papers/censor/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from replab.functional import Linear
from replab.io import DataError
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, param

PAPER = "censor"
METHODS = ("afl_mlp", "afl_dnn", "sct", "lsm")
SIMILARITY_METHODS = ("sct", "lsm")  # adversary D_sim on pairs (Eq. 2); the AFL methods use D on single z
METHOD_LABELS = {"cnn": "CNN (no adversary)", "afl_mlp": "AFL-MLP", "afl_dnn": "AFL-DNN", "sct": "SCT",
                 "lsm": "LSM"}
HAR_DATASETS = ("har", "usc_had")
BASELINE = "cnn"
# Fig. 2 envelope thresholds: label F1 no worse than the CNN's minus these many points
ENVELOPE_DROPS = (0.0, 1.0, 2.0, 5.0, 10.0)
# Envelope comparisons (user-accuracy points, averaged over the thresholds where both methods have a point):
# "≈" = within this, "better" = lower by more than this, "at least as good" = never higher by more than this
ENVELOPE_TOLERANCE = 2.0
# D_sim "did not learn" when its mean step-1 loss (Eq. 2, BCE over half same-user / half different-user pairs) in
# every repetition is within this many nats of ln 2, the loss of a constant guess (pair accuracy ≈ 50–54 %)
SIMILARITY_CHANCE_MARGIN = 0.01
# USC-HAD's windows in the seed (window 30, stride 15 over every recording): the check of our windowing there
SEED_WINDOWS = 172_169

# The seed's claims (Fig. 2 and Sec. 4.2: about the trade-off curves, i.e. the lower envelopes); it reports no
# numbers. A reference, checked against ours in the report. "AFL" = the better of AFL-MLP / AFL-DNN.
PAPER_CLAIMS = {
    "sct_envelope_lowest": "SCT's lower envelope lies lowest of all methods on both F_y^v and F_y^t",
    "sct_lsm_at_least_afl": "SCT and LSM are at least as good as AFL (envelopes, both F_y^v and F_y^t)",
    "lsm_like_afl_on_fyt": "LSM ≈ AFL on F_y^t (envelopes)",
    "lsm_beats_afl_on_fyv": "LSM better than AFL on F_y^v (envelopes)",
    "lsm_like_sct_on_fyv": "LSM ≈ SCT on F_y^v (envelopes)",
    "sct_keeps_fyt": "SCT keeps or improves F_y^t (unseen users) relative to the CNN at its best λ",
}


@dataclass(frozen=True)
class EncoderConfig:
    filters: list[int] = param([50, 40, 20], ge=1, le=MAX_SIZE, nonempty=True, distinct=False,
                               doc="conv filters per block")
    kernel: int = param(3, ge=1, le=MAX_SIZE, doc="temporal kernel (1, k)")
    pool: int = param(2, ge=1, le=MAX_SIZE, doc="temporal max-pool (1, p)")
    fc: int = param(400, ge=1, le=MAX_SIZE, doc="size of z")
    dropout: float = param(0.5, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = param(30, ge=1, le=MAX_COUNT, doc="ours: the seed says only 'pretrain for label accuracy'")
    lr: float = param(1e-4, gt=0.0, doc="Adam")
    batch_size: int = param(100, ge=1, le=MAX_SIZE)


@dataclass(frozen=True)
class AdversarialConfig:
    lr: float = param(2.5e-5, gt=0.0, doc="RMSprop, both steps")
    batch_size: int = param(100, ge=1, le=MAX_SIZE)
    adversary_samples: int = param(200_000, ge=1, le=MAX_COUNT, doc="samples (pairs) of step 1 per repetition")
    encoder_samples: int = param(200_000, ge=1, le=MAX_COUNT, doc="samples (pairs) of step 2 per repetition")
    repetitions: int = param(30, ge=1, le=MAX_COUNT)
    adversary_hidden: list[int] = param([800], ge=1, le=MAX_SIZE, nonempty=True, distinct=False, doc="AFL-MLP's D")
    adversary_hidden_dnn: list[int] = param([800, 200], ge=1, le=MAX_SIZE, nonempty=True, distinct=False,
                                            doc="AFL-DNN's D")
    similarity_hidden: list[int] = param([800, 200], ge=1, le=MAX_SIZE, nonempty=True, distinct=False, doc="D_sim")


@dataclass(frozen=True)
class ProbeConfig:
    """The freshly trained user classifier on frozen z (user accuracy)."""

    hidden: list[int] = param([800, 200], ge=1, le=MAX_SIZE, nonempty=True, distinct=False)
    epochs: int = param(10, ge=1, le=MAX_COUNT, doc="ours: the seed does not say")
    lr: float = param(1e-3, gt=0.0, doc="Adam (ours)")
    batch_size: int = param(100, ge=1, le=MAX_SIZE)
    max_train: int = param(0, ge=0, le=MAX_COUNT,
                           doc="train on at most this many windows (a seeded subset); 0 = all (seed)")


@dataclass(frozen=True)
class Config:
    dataset: str = param("usc_had", choices=HAR_DATASETS)
    methods: list[str] = param(list(METHODS), each_choices=METHODS, nonempty=True)
    lambdas: list[float] = param([0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5], ge=0.0, nonempty=True)
    seeds: list[int] = param([0], ge=0, le=SEED_MAX, nonempty=True)
    encoder: EncoderConfig = param(EncoderConfig())
    pretrain: PretrainConfig = param(PretrainConfig())
    adversarial: AdversarialConfig = param(AdversarialConfig())
    probe: ProbeConfig = param(ProbeConfig())


AXES = {"method": "methods", "lambda": "lambdas", "seed": "seeds"}


KEY_PREFIXES = (BASELINE,)  # the one prefix a key may carry before its axes' values (papers.parse_variant)


def axes_for(key: str) -> dict[str, str]:
    """The CNN baseline (`cnn-<seed>`) has only a seed axis; every other variant is method × λ × seed."""
    return {"seed": "seeds"} if key.startswith(f"{BASELINE}-") else AXES


def variant_key(method: str, lam: float | int | None, seed: int) -> str:
    """dvc.yaml's ${key} for `matrix: {method, lambda, seed}`, and `cnn-<seed>` for the baseline."""
    return f"{BASELINE}-{seed}" if method == BASELINE else f"{method}-{lam}-{seed}"


# ---------------------------------------------------------------------------------------------------------
# Data: standardised windows (N, 6, 30) with activity y and user s, on the device

@dataclass
class Windows:
    x: dict[str, torch.Tensor]  # split → (N, 1, channels, window)
    y: dict[str, torch.Tensor]  # activity 0..11
    s: dict[str, torch.Tensor]  # user 0..13
    n_activities: int
    n_users: int  # users of the train split (the adversary's and the probe's classes)
    source: str
    name: str


def load_windows(dataset: str, device) -> Windows:
    from replab.data.recordings import load_windows as load_splits
    from replab.data.registry import PROCESSED_ROOT

    splits, meta = load_splits(PROCESSED_ROOT / dataset)
    train_users = np.unique(splits["train"]["user"])
    # users of train/seen re-indexed 0..U-1 for the adversary and the probe (unseen users keep their id:
    # only the activity is scored on them)
    remap = np.full(max(int(s["user"].max(initial=0)) for s in splits.values()) + 1, -1, dtype=np.int64)
    remap[train_users] = np.arange(len(train_users))

    def tensor(a: np.ndarray, dtype=None) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device, dtype)

    x = {k: tensor(v["x"], torch.float32).unsqueeze(1) for k, v in splits.items()}
    y = {k: tensor(v["activity"]) for k, v in splits.items()}
    s = {k: tensor(np.where(np.isin(v["user"], train_users), remap[v["user"]], v["user"]))
         for k, v in splits.items()}
    return Windows(x, y, s, n_activities=len(meta.get("activities", [])) or int(y["train"].max()) + 1,
                   n_users=len(train_users), source=meta.get("source", "unknown"), name=dataset)


# ---------------------------------------------------------------------------------------------------------
# Networks

class Encoder(nn.Module):
    """E: (N, 1, channels, window) → z (N, fc). Temporal convolutions shared across the sensor rows."""

    def __init__(self, cfg: EncoderConfig, channels: int, window: int, dataset: str = "<set>"):
        super().__init__()
        layers, c_in, length = [], 1, window
        for c_out in cfg.filters:
            layers += [nn.Conv2d(c_in, c_out, (1, cfg.kernel)), nn.ReLU(), nn.MaxPool2d((1, cfg.pool)),
                       nn.Dropout(cfg.dropout)]
            c_in, length = c_out, (length - cfg.kernel + 1) // cfg.pool
        if length < 1:  # the shortest window: each block inverted, from one time step back (conv k, then pool p)
            shortest = 1
            for _ in cfg.filters:
                shortest = shortest * cfg.pool + cfg.kernel - 1
            raise DataError(f"data/processed/{dataset}: windows of {window} samples are too short for censor.encoder "
                            f"({len(cfg.filters)} blocks of kernel {cfg.kernel} and pool {cfg.pool} need "
                            f"{shortest}; allowed: data.{dataset}.window ≥ {shortest}, or fewer or smaller blocks)")
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(Linear(c_in * channels * length, cfg.fc), nn.ReLU(), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last): logits out."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def build_adversary(method: str, cfg: Config, n_users: int) -> nn.Module:
    z = cfg.encoder.fc
    if method == "afl_mlp":
        return mlp([z, *cfg.adversarial.adversary_hidden, n_users])
    if method == "afl_dnn":
        return mlp([z, *cfg.adversarial.adversary_hidden_dnn, n_users])
    return mlp([2 * z, *cfg.adversarial.similarity_hidden, 1])  # D_sim on concat(z1, z2)


def build_model(cfg: Config, data: Windows, device) -> tuple[Encoder, Linear]:
    _, _, channels, window = data.x["train"].shape
    encoder = Encoder(cfg.encoder, channels, window, data.name).to(device)
    if device.type == "cpu":
        # oneDNN runs these thin (1, k) convolutions ≈ 2× faster in channels-last (NHWC) layout
        encoder = encoder.to(memory_format=torch.channels_last)
    return encoder, Linear(cfg.encoder.fc, data.n_activities).to(device)


def snapshot(encoder: nn.Module, classifier: nn.Module) -> dict:
    return {"encoder": {k: v.detach().clone() for k, v in encoder.state_dict().items()},
            "classifier": {k: v.detach().clone() for k, v in classifier.state_dict().items()}}


# ---------------------------------------------------------------------------------------------------------
# Losses, written term by term as the seed writes them (equation numbers from the seed). Each expectation E[·] of
# the seed is estimated by the mean over the batch's samples (AFL) or pairs (SCT, LSM); a sum of expectations is
# the sum of those means, never their average, so that one λ means the same strength for every method.

class Objective(NamedTuple):
    """Step 2's (E, M) objective on one batch: `total` = `label` + λ·`censor` (scalars)."""

    total: torch.Tensor
    label: torch.Tensor  # L_y
    censor: torch.Tensor  # the censoring term that λ multiplies


def afl_encoder_loss(label_logits, y, user_logits, s, lam: float) -> Objective:
    """Eq. 1, the (E, M) side: E[−log q_M(y|z) + λ·log q_D(s|z)] over a batch of single windows.

    label_logits (B, activities), y (B,), user_logits (B, users) from D, s (B,). L_y = mean CE(y);
    censor = mean log q_D(s|z) = −mean CE(s), so minimising it raises D's error."""
    label = F.cross_entropy(label_logits, y)
    censor = -F.cross_entropy(user_logits, s)
    return Objective(label + lam * censor, label, censor)


def similarity_loss(sim_logits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Eq. 2: −E[g·log q(g|z') + (1 − g)·log(1 − q(g|z'))], q = sigmoid(D_sim(z')); sim_logits, g: (B,) over
    pairs, the expectation estimated by the mean over the batch's pairs."""
    return F.binary_cross_entropy_with_logits(sim_logits, g)


def confusion_loss(sim_logits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Eq. 3, L_sc: Eq. 2 with flipped labels, −E[(1 − g)·log q(g|z') + g·log(1 − q(g|z'))] (mean over pairs)."""
    return F.binary_cross_entropy_with_logits(sim_logits, 1.0 - g)


def similarity_maximisation_loss(sim_logits: torch.Tensor, same_activity: torch.Tensor) -> torch.Tensor:
    """Eq. 5, L_sim = −[E_{G_np} log q(g|z') + E_{G_nn} log(1 − q(g|z'))] over pairs of different users: the SUM
    of two expectations, each estimated by the mean over its own pairs. G_np (same activity, `same_activity` = 1)
    is pulled together, G_nn (different activity, 0) kept apart. An empty group contributes 0."""
    nll = F.binary_cross_entropy_with_logits(sim_logits, same_activity, reduction="none")
    np_mask = same_activity > 0.5
    nn_mask = ~np_mask
    e_np = (nll * np_mask).sum() / np_mask.sum().clamp_min(1)
    e_nn = (nll * nn_mask).sum() / nn_mask.sum().clamp_min(1)
    return e_np + e_nn


def pair_label_loss(label_logits1, y1, label_logits2, y2) -> torch.Tensor:
    """L_y of SCT / LSM: −E[log q_M(y1|z1) + log q_M(y2|z2)], the SUM over the pair's two samples (the mean over
    the batch's pairs estimates the expectation)."""
    return F.cross_entropy(label_logits1, y1) + F.cross_entropy(label_logits2, y2)


def sct_encoder_loss(label_logits1, y1, label_logits2, y2, sim_logits, g, lam: float) -> Objective:
    """Eq. 4: L_y + λ·L_sc on a batch of pairs (g = 1 iff the pair's users are the same)."""
    label, censor = pair_label_loss(label_logits1, y1, label_logits2, y2), confusion_loss(sim_logits, g)
    return Objective(label + lam * censor, label, censor)


def lsm_encoder_loss(label_logits1, y1, label_logits2, y2, sim_logits, same_activity, lam: float) -> Objective:
    """LSM's step 2: L_y + λ·L_sim (Eq. 5 in place of Eq. 3; L_y and λ kept, our reading of the seed's "Eq. 3.1")."""
    label = pair_label_loss(label_logits1, y1, label_logits2, y2)
    censor = similarity_maximisation_loss(sim_logits, same_activity)
    return Objective(label + lam * censor, label, censor)


# ---------------------------------------------------------------------------------------------------------
# Pair sampling (vectorised, on the device)

class PairSampler:
    """Draws partners for anchor windows: same user, different user, or different user with the same /
    a different activity. Same-group partners come from a sorted block; exclusions by resampling."""

    def __init__(self, y: torch.Tensor, s: torch.Tensor, generator: torch.Generator):
        self.y, self.s, self.gen, self.n = y, s, generator, len(s)
        self.by_user = torch.argsort(s, stable=True)
        counts = torch.bincount(s)
        self.user_count, self.user_start = counts, torch.cumsum(counts, 0) - counts
        self.by_activity = torch.argsort(y, stable=True)
        counts = torch.bincount(y)
        self.act_count, self.act_start = counts, torch.cumsum(counts, 0) - counts

    def check(self, lsm: bool, dataset: str = "<set>") -> None:
        """DataError unless every training window has the partners its pairs need: a window of another user (Eq. 2,
        SCT and LSM's step 1) and, for LSM's Eq. 5 pairs, one of another user with the same activity and one of
        another user and activity. Deterministic: `_resample` finds a missing partner only by failing 1000 draws."""
        seen = torch.zeros(int(self.s.max()) + 1, int(self.y.max()) + 1, dtype=torch.bool, device=self.s.device)
        seen[self.s, self.y] = True  # (user, activity) with a window
        users, users_of_activity = int(seen.any(1).sum()), seen.sum(0)[self.y]  # the latter per window
        other_both = seen.sum() - seen.sum(1)[self.s] - users_of_activity + 1  # per window: (user, activity) cells
        if users < 2:
            lack = f"windows of {users} user only, and Eq. 2 pairs each with a window of another user"
        elif lsm and bool((users_of_activity < 2).any()):
            lack = "an activity of one user only, and Eq. 5 pairs each window with another user's of its activity"
        elif lsm and bool((other_both < 1).any()):
            lack = "a window that no other user's window of another activity can pair with (Eq. 5)"
        else:
            return
        raise DataError(f"data/processed/{dataset}/train.npz: censor pairs: the train split has {lack} "
                        f"(data.{dataset}.train_users; censor.methods)")

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.gen, device=self.gen.device).to(self.s.device)

    def anchors(self, n: int) -> torch.Tensor:
        return (self._uniform(n) * self.n).long().clamp_max(self.n - 1)

    def _from_block(self, order, start, count, keys) -> torch.Tensor:
        pos = start[keys] + (self._uniform(len(keys)) * count[keys]).long().clamp_max(count[keys] - 1)
        return order[pos]

    def same_user(self, i: torch.Tensor) -> torch.Tensor:
        """A partner of each anchor drawn uniformly from its user's windows, the anchor itself included (a pair of
        one window: 1 in the user's window count, e.g. 1 in 12,000 on USC-HAD; an Eq. 2 target all the same)."""
        return self._from_block(self.by_user, self.user_start, self.user_count, self.s[i])

    def _resample(self, i: torch.Tensor, draw, bad) -> torch.Tensor:
        j = draw(i)
        for _ in range(1000):
            wrong = bad(i, j)
            if not bool(wrong.any()):
                return j
            j = torch.where(wrong, draw(i), j)
        raise DataError("censor pairs: cannot find partners (the train split needs ≥ 2 users and activities "
                        "shared between users)")

    def other_user(self, i: torch.Tensor) -> torch.Tensor:
        return self._resample(i, lambda a: self.anchors(len(a)), lambda a, b: self.s[a] == self.s[b])

    def other_user_same_activity(self, i: torch.Tensor) -> torch.Tensor:
        draw = lambda a: self._from_block(self.by_activity, self.act_start, self.act_count, self.y[a])  # noqa: E731
        return self._resample(i, draw, lambda a, b: self.s[a] == self.s[b])

    def other_user_other_activity(self, i: torch.Tensor) -> torch.Tensor:
        return self._resample(i, lambda a: self.anchors(len(a)),
                              lambda a, b: (self.s[a] == self.s[b]) | (self.y[a] == self.y[b]))

    def _halves(self, n: int, positive, negative) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n anchors; the first half paired by `positive` (target 1), the rest by `negative` (target 0)."""
        i = self.anchors(n)
        half = n // 2
        j = torch.cat([positive(i[:half]), negative(i[half:])])
        target = torch.cat([torch.ones(half), torch.zeros(n - half)]).to(self.s.device)
        return i, j, target

    def user_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 2 pairs: half same-user (g = 1), half different-user (g = 0)."""
        return self._halves(n, self.same_user, self.other_user)

    def lsm_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 5 pairs, all of different users: half G_np (same activity, target 1), half G_nn (target 0)."""
        return self._halves(n, self.other_user_same_activity, self.other_user_other_activity)
