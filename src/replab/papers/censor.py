"""censor (seed 002): remove user identity from activity features — AFL vs SCT vs LSM.

The seed (Iwasawa et al.'s line of work on wearables) learns an encoder E: x → z that keeps the activity y
and hides the user s. A label classifier M (logistic regression on z) is trained with E; an adversary tries
to recover the user from z, and E is post-processed against it:

    AFL (Eq. 1)   min_{E,M} max_D  E[−log q_M(y|z) + λ·log q_D(s|z)]       D: z → s, an MLP
                  AFL-MLP: D hidden 800; AFL-DNN: D hidden 800-200
    Eq. 2         D_sim on z' = concat(z1, z2) predicts g = 1 iff s1 = s2:  −E[g·log q + (1 − g)·log(1 − q)]
    SCT (Eq. 3–4) step 1: train D_sim by Eq. 2 with E fixed; step 2: update E, M to minimise L_y + λ·L_sc,
                  L_sc = −E[(1 − g)·log q(g|z') + g·log(1 − q(g|z'))]   (Eq. 2 with the labels flipped)
    LSM (Eq. 5)   step 2 uses L_sim = −[E_{G_np} log q(g|z') + E_{G_nn} log(1 − q(g|z'))] instead of L_sc;
                  G_np: pairs of different users with the same activity (pulled together),
                  G_nn: pairs of different users and different activities (kept apart)

    L_y = cross-entropy of M on both samples of a pair (their mean). The CNN baseline is E + M after
    pretraining, with no adversary.

Networks (the author's 2017 HAR code): E = 3 × (Conv (1, 3) over time, shared across the 6 sensor rows + ReLU
+ max-pool (1, 2) + dropout) with 50 / 40 / 20 filters, then FC 400 + ReLU + dropout (0.5); convolutions
unpadded as in Chainer (30 → 28 → 14 → 12 → 6 → 4 → 2, so 20 × 6 × 2 = 240 inputs to the FC layer). M: linear
400 → 12. D: 400 → 800 (→ 200) → users; D_sim: 800 → 800 → 200 → 1; ReLU, no dropout in adversaries.

Optimisation: pretrain E + M with Adam (lr 1e-4, batch 100) for label accuracy; then adversarial post-processing
with RMSprop (lr 2.5e-5, batch 100): step 1 (adversary, E fixed) and step 2 (E and M) alternate, each on
200,000 samples (pairs for SCT/LSM), 30 repetitions, for every λ in {0.1, 0.2, 0.5, 1, 1.5, 2, 2.5}.

Measures, after every repetition (the `eval` stage reads the checkpoint of each repetition):
F_y^v = macro-F1 of M∘E on the seen-user test split, F_y^t = macro-F1 on the unseen users, and the user
accuracy (Accu) of a freshly trained 800-200 MLP on frozen z (trained on the train split of users 1–10,
tested on their seen-user split). Fig. 2 plots user accuracy against F_y^v (and F_y^t) for every (λ,
repetition) point with each method's lower envelope: the lowest user accuracy reached with label F1 no worse
than a threshold. The seed gives no numbers, only plots and claims; the claims are checked in the report.

Ours where the seed is silent (all params): pretraining epochs; pairs for D_sim are half same-user, half
different-user; LSM's step-2 pairs are half G_np, half G_nn; dropout is active in pretraining only (the
adversary is fitted to dropout-free z in step 1, so E stays dropout-free in step 2 too); the adversary
persists across repetitions; the pretrained model (repetition 0) starts every λ, so the CNN baseline is one
stage per seed (`cnn-<seed>`); the user probe trains with Adam (lr 1e-3), optionally on a seeded subset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from replab import runtime as rt
from replab.batches import EndlessBatches, index_batches, map_batches
from replab.io import DataError, write_json, write_npz
from replab.params import fail, param

PAPER = "censor"
METHODS = ("afl_mlp", "afl_dnn", "sct", "lsm")
METHOD_LABELS = {"cnn": "CNN (no adversary)", "afl_mlp": "AFL-MLP", "afl_dnn": "AFL-DNN", "sct": "SCT",
                 "lsm": "LSM"}
HAR_DATASETS = ("har", "usc_had")
BASELINE = "cnn"
# Fig. 2 envelope thresholds: label F1 no worse than the CNN's minus these many points
ENVELOPE_DROPS = (0.0, 1.0, 2.0, 5.0, 10.0)

# The seed's claims (Fig. 2); it reports no numbers. A reference, checked against ours in the report.
PAPER_CLAIMS = {
    "sct_envelope_lowest": "SCT's lower envelope lies lowest (best privacy at equal label F1)",
    "sct_keeps_fyt": "SCT keeps or improves F_y^t (unseen users) relative to the CNN",
    "lsm_like_sct_on_fyv": "LSM ≈ SCT on F_y^v",
    "lsm_like_afl_on_fyt": "LSM ≈ AFL on F_y^t",
}


@dataclass(frozen=True)
class EncoderConfig:
    filters: list[int] = param([50, 40, 20], ge=1, nonempty=True, distinct=False, doc="conv filters per block")
    kernel: int = param(3, ge=1, doc="temporal kernel (1, k)")
    pool: int = param(2, ge=1, doc="temporal max-pool (1, p)")
    fc: int = param(400, ge=1, doc="size of z")
    dropout: float = param(0.5, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = param(30, ge=1, doc="ours: the seed says only 'pretrain for label accuracy'")
    lr: float = param(1e-4, gt=0.0, doc="Adam")
    batch_size: int = param(100, ge=1)


@dataclass(frozen=True)
class AdversarialConfig:
    lr: float = param(2.5e-5, gt=0.0, doc="RMSprop, both steps")
    batch_size: int = param(100, ge=1)
    adversary_samples: int = param(200_000, ge=1, doc="samples (pairs) of step 1 per repetition")
    encoder_samples: int = param(200_000, ge=1, doc="samples (pairs) of step 2 per repetition")
    repetitions: int = param(30, ge=1)
    adversary_hidden: list[int] = param([800], ge=1, nonempty=True, distinct=False, doc="AFL-MLP's D")
    adversary_hidden_dnn: list[int] = param([800, 200], ge=1, nonempty=True, distinct=False, doc="AFL-DNN's D")
    similarity_hidden: list[int] = param([800, 200], ge=1, nonempty=True, distinct=False, doc="D_sim")


@dataclass(frozen=True)
class ProbeConfig:
    """The freshly trained user classifier on frozen z (user accuracy)."""

    hidden: list[int] = param([800, 200], ge=1, nonempty=True, distinct=False)
    epochs: int = param(10, ge=1, doc="ours: the seed does not say")
    lr: float = param(1e-3, gt=0.0, doc="Adam (ours)")
    batch_size: int = param(100, ge=1)
    max_train: int = param(0, ge=0, doc="train on at most this many windows (a seeded subset); 0 = all (seed)")


@dataclass(frozen=True)
class Config:
    dataset: str = param("usc_had", choices=HAR_DATASETS)
    methods: list[str] = param(list(METHODS), each_choices=METHODS, nonempty=True)
    lambdas: list[float] = param([0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5], ge=0.0, nonempty=True)
    seeds: list[int] = param([0], ge=0, nonempty=True)
    encoder: EncoderConfig = param(EncoderConfig())
    pretrain: PretrainConfig = param(PretrainConfig())
    adversarial: AdversarialConfig = param(AdversarialConfig())
    probe: ProbeConfig = param(ProbeConfig())

    def check(self, where: str) -> None:
        length = 30  # the seed's window; the data params may change it, checked again at load time
        for _ in self.encoder.filters:
            length = (length - self.encoder.kernel + 1) // self.encoder.pool
        if length < 1:
            fail(where, f"encoder: {len(self.encoder.filters)} blocks of kernel {self.encoder.kernel} and pool "
                        f"{self.encoder.pool} leave no time steps of a 30-sample window")


AXES = {"method": "methods", "lambda": "lambdas", "seed": "seeds"}


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

    def __init__(self, cfg: EncoderConfig, channels: int, window: int):
        super().__init__()
        layers, c_in, length = [], 1, window
        for c_out in cfg.filters:
            layers += [nn.Conv2d(c_in, c_out, (1, cfg.kernel)), nn.ReLU(), nn.MaxPool2d((1, cfg.pool)),
                       nn.Dropout(cfg.dropout)]
            c_in, length = c_out, (length - cfg.kernel + 1) // cfg.pool
        if length < 1:
            raise DataError(f"windows of {window} samples are too short for the encoder (params censor.encoder)")
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(c_in * channels * length, cfg.fc), nn.ReLU(), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last): logits out."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
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


# ---------------------------------------------------------------------------------------------------------
# Losses (equation numbers from the seed)

def afl_encoder_loss(label_logits, y, user_logits, s, lam: float) -> torch.Tensor:
    """Eq. 1, the (E, M) side: −log q_M(y|z) + λ·log q_D(s|z) = CE(y) − λ·CE(s)."""
    return F.cross_entropy(label_logits, y) - lam * F.cross_entropy(user_logits, s)


def similarity_loss(sim_logits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Eq. 2: −E[g·log q(g|z') + (1 − g)·log(1 − q(g|z'))], q = sigmoid(D_sim(z'))."""
    return F.binary_cross_entropy_with_logits(sim_logits, g)


def confusion_loss(sim_logits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Eq. 4, L_sc: Eq. 2 with flipped labels, −E[(1 − g)·log q + g·log(1 − q)]."""
    return F.binary_cross_entropy_with_logits(sim_logits, 1.0 - g)


def similarity_maximisation_loss(sim_logits: torch.Tensor, same_activity: torch.Tensor) -> torch.Tensor:
    """Eq. 5, L_sim over pairs of different users: −[E_{G_np} log q + E_{G_nn} log(1 − q)];
    G_np (same activity) has target 1 (pulled together), G_nn (different activity) target 0."""
    return F.binary_cross_entropy_with_logits(sim_logits, same_activity)


def pair_label_loss(label_logits1, y1, label_logits2, y2) -> torch.Tensor:
    """L_y on both samples of a pair (their mean)."""
    return 0.5 * (F.cross_entropy(label_logits1, y1) + F.cross_entropy(label_logits2, y2))


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

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.gen, device=self.gen.device).to(self.s.device)

    def anchors(self, n: int) -> torch.Tensor:
        return (self._uniform(n) * self.n).long().clamp_max(self.n - 1)

    def _from_block(self, order, start, count, keys) -> torch.Tensor:
        pos = start[keys] + (self._uniform(len(keys)) * count[keys]).long().clamp_max(count[keys] - 1)
        return order[pos]

    def same_user(self, i: torch.Tensor) -> torch.Tensor:
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

    def user_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 2 pairs: half same-user (g = 1), half different-user (g = 0)."""
        i = self.anchors(n)
        half = n // 2
        j = torch.cat([self.same_user(i[:half]), self.other_user(i[half:])])
        g = torch.cat([torch.ones(half), torch.zeros(n - half)]).to(self.s.device)
        return i, j, g

    def lsm_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 5 pairs, all of different users: half G_np (same activity, target 1), half G_nn (target 0)."""
        i = self.anchors(n)
        half = n // 2
        j = torch.cat([self.other_user_same_activity(i[:half]), self.other_user_other_activity(i[half:])])
        t = torch.cat([torch.ones(half), torch.zeros(n - half)]).to(self.s.device)
        return i, j, t


# ---------------------------------------------------------------------------------------------------------
# Training: pretraining (the CNN baseline), then adversarial post-processing

def build_model(cfg: Config, data: Windows, device) -> tuple[Encoder, nn.Linear]:
    _, _, channels, window = data.x["train"].shape
    encoder = Encoder(cfg.encoder, channels, window).to(device)
    if device.type == "cpu":
        # oneDNN runs these thin (1, k) convolutions ≈ 2× faster in channels-last (NHWC) layout
        encoder = encoder.to(memory_format=torch.channels_last)
    return encoder, nn.Linear(cfg.encoder.fc, data.n_activities).to(device)


def snapshot(encoder: nn.Module, classifier: nn.Module) -> dict:
    return {"encoder": {k: v.detach().clone() for k, v in encoder.state_dict().items()},
            "classifier": {k: v.detach().clone() for k, v in classifier.state_dict().items()}}


def pretrain(cfg: Config, data: Windows, device, runtime, generator, live=None, desc: str = "pretrain"):
    """E + M for label accuracy (Adam). Returns (encoder, classifier, samples seen)."""
    encoder, classifier = build_model(cfg, data, device)
    params = [*encoder.parameters(), *classifier.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.pretrain.lr)
    x, y = data.x["train"], data.y["train"]
    n, pc = len(x), cfg.pretrain
    steps = math.ceil(n / pc.batch_size)
    bar = rt.progress(range(pc.epochs), enabled=runtime.progress, desc=desc)
    for epoch in bar:
        encoder.train(), classifier.train()
        total = torch.zeros((), device=device)
        for idx in index_batches(n, pc.batch_size, generator, device):
            loss = F.cross_entropy(classifier(encoder(x[idx])), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        mean = float(total.item() / steps)
        bar.set_postfix(loss=f"{mean:.4f}")
        if live is not None:
            live.step = epoch + 1
            live.log_metric("pretrain/label_loss", mean)
            live.make_summary()
    return encoder, classifier, n * pc.epochs


def adversarial_postprocess(cfg: Config, method: str, lam: float, encoder: Encoder, classifier: nn.Module,
                            data: Windows, device, runtime, generator, live=None, desc: str = ""):
    """Alternate step 1 (adversary, E fixed) and step 2 (E, M against the adversary) for `repetitions`;
    returns the checkpoints after each repetition (index 0 = the pretrained model) and samples seen."""
    ac = cfg.adversarial
    adversary = build_adversary(method, cfg, data.n_users).to(device)
    opt_adv = torch.optim.RMSprop(adversary.parameters(), lr=ac.lr)
    opt_em = torch.optim.RMSprop([*encoder.parameters(), *classifier.parameters()], lr=ac.lr)
    x, y, s = data.x["train"], data.y["train"], data.s["train"]
    pairs = PairSampler(y, s, generator)
    singles = EndlessBatches(len(x), ac.batch_size, generator, device)
    adversary_steps = max(1, math.ceil(ac.adversary_samples / ac.batch_size))
    encoder_steps = max(1, math.ceil(ac.encoder_samples / ac.batch_size))
    similarity = method in ("sct", "lsm")
    checkpoints, samples = [snapshot(encoder, classifier)], 0
    bar = rt.progress(range(ac.repetitions), enabled=runtime.progress, desc=desc or f"{method} λ={lam}")
    for rep in bar:
        # step 1: the adversary learns to recover the user from z. E is fixed (and without dropout), so z of
        # every training window is computed once per repetition instead of once per batch.
        encoder.eval()
        adversary.train()
        z_fixed = map_batches(encoder, x)
        adv_total = torch.zeros((), device=device)
        for _ in range(adversary_steps):
            if similarity:
                i, j, g = pairs.user_pairs(ac.batch_size)
                loss = similarity_loss(adversary(torch.cat([z_fixed[i], z_fixed[j]], 1)).squeeze(1), g)  # Eq. 2
            else:
                idx = next(singles)
                loss = F.cross_entropy(adversary(z_fixed[idx]), s[idx])  # max_D log q_D(s|z)
            opt_adv.zero_grad(set_to_none=True)
            loss.backward()
            opt_adv.step()
            adv_total += loss.detach()
        # step 2: E and M minimise the label loss plus λ times the method's censoring term. E stays without
        # dropout: the adversary was fitted to dropout-free z, and its gradients are only meaningful there.
        adversary.eval()
        label_total, censor_total = torch.zeros((), device=device), torch.zeros((), device=device)
        for _ in range(encoder_steps):
            if similarity:
                i, j, t = pairs.user_pairs(ac.batch_size) if method == "sct" else pairs.lsm_pairs(ac.batch_size)
                z1, z2 = encoder(x[i]), encoder(x[j])
                label = pair_label_loss(classifier(z1), y[i], classifier(z2), y[j])
                sim_logits = adversary(torch.cat([z1, z2], 1)).squeeze(1)
                censor = confusion_loss(sim_logits, t) if method == "sct" else similarity_maximisation_loss(
                    sim_logits, t)  # Eq. 4 / Eq. 5
                loss = label + lam * censor  # Eq. 3
            else:
                idx = next(singles)
                z = encoder(x[idx])
                label = F.cross_entropy(classifier(z), y[idx])
                censor = -F.cross_entropy(adversary(z), s[idx])  # λ·log q_D(s|z)
                loss = label + lam * censor  # Eq. 1
            opt_em.zero_grad(set_to_none=True)
            loss.backward()
            opt_em.step()
            label_total += label.detach()
            censor_total += censor.detach()
        samples += (adversary_steps + encoder_steps) * ac.batch_size * (2 if similarity else 1)
        checkpoints.append(snapshot(encoder, classifier))
        logged = {"adversary_loss": adv_total.item() / adversary_steps,
                  "label_loss": label_total.item() / encoder_steps, "censor_loss": censor_total.item() / encoder_steps}
        bar.set_postfix({k: f"{v:.3f}" for k, v in logged.items()})
        if live is not None:
            live.step = rep + 1
            for name, value in logged.items():
                live.log_metric(f"adversarial/{name}", value)
            live.make_summary()
    return checkpoints, samples


def train(cfg: Config, runtime, variant) -> None:
    seed = variant.axes["seed"]
    device = rt.setup(runtime, seed)
    data = load_windows(cfg.dataset, device)
    generator = rt.seeded_generator(seed, device)
    clock = rt.RunClock()
    source = f"{data.name} ({data.source})"
    if variant.key.startswith(f"{BASELINE}-"):
        with rt.open_live(variant.live_dir) as live:
            encoder, classifier, samples = pretrain(cfg, data, device, runtime, generator, live,
                                                    desc=f"censor CNN seed={seed}")
        clock.add(samples)
        state = {"checkpoints": [snapshot(encoder, classifier)]}
        record = {"method": BASELINE, "lambda": None, "seed": seed, "epochs": cfg.pretrain.epochs}
    else:
        method, lam = variant.axes["method"], variant.axes["lambda"]
        start, _ = rt.load_trained(Path("models") / PAPER / variant_key(BASELINE, None, seed), device)
        encoder, classifier = build_model(cfg, data, device)
        encoder.load_state_dict(start["checkpoints"][0]["encoder"])
        classifier.load_state_dict(start["checkpoints"][0]["classifier"])
        with rt.open_live(variant.live_dir) as live:
            checkpoints, samples = adversarial_postprocess(cfg, method, lam, encoder, classifier, data, device,
                                                           runtime, generator, live,
                                                           desc=f"censor {method} λ={lam} seed={seed}")
        clock.add(samples)
        state = {"checkpoints": checkpoints}
        record = {"method": method, "lambda": lam, "seed": seed, "repetitions": cfg.adversarial.repetitions}
    record["run"] = rt.run_metadata(device, seed, source, clock)
    rt.save_trained(variant.model_dir, state, record)


# ---------------------------------------------------------------------------------------------------------
# Evaluation: F_y^v, F_y^t and user accuracy after every repetition

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
def measure(cfg: Config, checkpoint: dict, data: Windows, device, seed: int) -> dict[str, float]:
    encoder, classifier = build_model(cfg, data, device)
    encoder.load_state_dict(checkpoint["encoder"])
    classifier.load_state_dict(checkpoint["classifier"])
    encoder.eval(), classifier.eval()
    z = {k: map_batches(encoder, data.x[k]) for k in ("seen", "unseen")}
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
    history = [measure(cfg, ckpt, data, device, seed)
               for ckpt in rt.progress(state["checkpoints"], enabled=runtime.progress, desc=f"evaluate {variant.key}")]
    curves = {name: [h[name] for h in history] for name in history[0]}
    write_npz(variant.plots_dir / "history.npz", repetition=np.arange(len(history)),
              **{k: np.array(v) for k, v in curves.items()})
    write_json(variant.metrics_path, {
        "method": record["method"], "lambda": record["lambda"], "seed": seed, **history[-1],
        "history": curves, "chance_user_accuracy": 100 / data.n_users, "dataset": cfg.dataset,
        "counts": {k: len(v) for k, v in data.y.items()}, "run": record["run"]})


def bench_setup(cfg: Config, device):
    """`replab bench`: SCT post-processing on synthetic windows, one batch of step 1 and one of step 2 per timed
    step (plus the per-repetition z of the fixed encoder, kept small: 1,000 windows)."""
    from replab.bench import BenchCase

    n, batch = 1000, cfg.adversarial.batch_size
    gen = rt.seeded_generator(0, device)
    x = torch.randn(n, 1, 6, 30, generator=gen, device=device)
    y = torch.randint(0, 12, (n,), generator=gen, device=device)
    s = torch.randint(0, 10, (n,), generator=gen, device=device)
    data = Windows({"train": x}, {"train": y}, {"train": s}, 12, 10, "synthetic", "bench")

    def train(iterations: int, runtime):
        encoder, classifier = build_model(cfg, data, device)
        # one repetition = one batch of step 1 and one of step 2 (bench times one progress iteration per step)
        steps_cfg = replace(cfg.adversarial, adversary_samples=batch, encoder_samples=batch, repetitions=iterations)
        run_cfg = replace(cfg, adversarial=steps_cfg)
        return adversarial_postprocess(run_cfg, "sct", 1.0, encoder, classifier, data, device, runtime, gen)

    return BenchCase(label=f"SCT batch={batch}", samples_per_step=4 * batch, train=train, x=x.flatten(1), y=y,
                     batch_size=batch)


# ---------------------------------------------------------------------------------------------------------
# Report: Fig. 2 (trade-off with lower envelopes), Fig. 3 (learning curves), the claims

def lower_envelope(f1: np.ndarray, user: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold t: the lowest user accuracy among points with label F1 ≥ t (NaN if none)."""
    f1, user = np.asarray(f1, float), np.asarray(user, float)
    ok = f1[None, :] >= np.asarray(thresholds, float)[:, None]
    return np.where(ok.any(1), np.where(ok, user[None, :], np.inf).min(1), np.nan)


def _points(records: list[dict], x: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (λ, repetition ≥ 1) point of a method's variants: (label F1, user accuracy)."""
    f1 = [v for r in records for v in r["history"][x][1:]]
    user = [v for r in records for v in r["history"]["user_accuracy"][1:]]
    return np.array(f1), np.array(user)


def summarize(cfg: Config, params: dict):
    from replab import report

    cnn_keys = [variant_key(BASELINE, None, s) for s in cfg.seeds]
    # keys as DVC spells them: from the raw params values (`1` and `1.0` name different matrix items)
    raw_lambdas = params[PAPER]["lambdas"]
    keys = {m: {lam: [variant_key(m, raw, s) for s in cfg.seeds] for lam, raw in zip(cfg.lambdas, raw_lambdas,
                                                                                    strict=True)}
            for m in cfg.methods}
    records = report.gather(PAPER, cnn_keys + [k for m in keys.values() for ks in m.values() for k in ks])
    summary_dir = Path("plots") / PAPER / "summary"
    measures = ("f1_seen", "f1_unseen", "user_accuracy")
    cnn = {m: report.mean_std([records[k][m] for k in cnn_keys]) for m in measures}
    summary: dict = {"dataset": cfg.dataset, "chance_user_accuracy": records[cnn_keys[0]]["chance_user_accuracy"],
                     "cnn": cnn, "final": {}, "envelope": {}}
    rows = [[METHOD_LABELS[BASELINE], "–", *(report.fmt(cnn[m], 1) for m in measures)]]
    for m in cfg.methods:
        summary["final"][m] = {}
        for lam in cfg.lambdas:
            stats = {k: report.mean_std([records[key][k] for key in keys[m][lam]]) for k in measures}
            summary["final"][m][str(lam)] = stats
            rows.append([METHOD_LABELS[m], lam, *(report.fmt(stats[k], 1) for k in measures)])
    data_note = "embedded stand-in: numbers not comparable with the seed" if cfg.dataset == "har" else "USC-HAD"
    ac = cfg.adversarial
    md = [f"Encoder censoring on **{cfg.dataset}** ({data_note}); {len(cfg.seeds)} seed(s), {ac.repetitions} "
          f"repetitions of {ac.adversary_samples:,} (step 1) + {ac.encoder_samples:,} (step 2) samples. "
          "F1 = macro-F1 in %, user accuracy of a "
          f"fresh {'-'.join(map(str, cfg.probe.hidden))} "
          f"MLP on frozen z (chance {summary['chance_user_accuracy']:.1f} %). The seed gives no numbers.", "",
          "After the last repetition, mean ± std over seeds:", "",
          report.md_table(["method", "λ", "F_y^v", "F_y^t", "user accuracy"], rows), ""]

    # Fig. 2 envelopes: thresholds relative to the CNN's F1 (x = F_y^v and x = F_y^t)
    env_rows = []
    for x, label in (("f1_seen", "F_y^v"), ("f1_unseen", "F_y^t")):
        thresholds = cnn[x]["mean"] - np.array(ENVELOPE_DROPS)
        summary["envelope"][x] = {"thresholds": {f"cnn-{d:g}": float(t) for d, t in zip(ENVELOPE_DROPS, thresholds,
                                                                                         strict=True)}}
        for m in cfg.methods:
            f1, user = _points([records[k] for ks in keys[m].values() for k in ks], x)
            env = lower_envelope(f1, user, thresholds)
            summary["envelope"][x][m] = {f"cnn-{d:g}": (None if np.isnan(e) else float(e))
                                         for d, e in zip(ENVELOPE_DROPS, env, strict=True)}
            env_rows.append([label, METHOD_LABELS[m], *("–" if np.isnan(e) else f"{e:.1f}" for e in env)])
    md += ["Lower envelopes (Fig. 2): the lowest user accuracy (%) over every (λ, repetition) point whose label F1 is "
           "at least the CNN's minus the given points:", "",
           report.md_table(["x", "method", *(f"≥ CNN − {d:g}" for d in ENVELOPE_DROPS)], env_rows), ""]

    claims = _claims(cfg, cnn, summary)
    summary["claims"] = claims
    md += ["Claims:", ""] + [f"- {text}: **{claims[c]}**" for c, text in _claim_texts().items() if c in claims] + [""]

    # What happened, in numbers: each method's largest user-accuracy reduction (last repetition, any λ) among the
    # λ whose F_y^v stays within 5 points of the CNN's
    summary["user_reduction_within_5"] = {}
    for m in cfg.methods:
        ok = [cnn["user_accuracy"]["mean"] - v["user_accuracy"]["mean"] for v in summary["final"][m].values()
              if v["f1_seen"]["mean"] >= cnn["f1_seen"]["mean"] - 5]
        summary["user_reduction_within_5"][m] = max(ok) if ok else None
    reductions = ", ".join(f"{METHOD_LABELS[m]} {'–' if r is None else f'{r:.1f}'}"
                           for m, r in summary["user_reduction_within_5"].items())
    md += [f"What happened: the largest user-accuracy reduction (points, vs the CNN's "
           f"{cnn['user_accuracy']['mean']:.1f} %) with F_y^v within 5 points of the CNN's, per method: {reductions} "
           "(– = every λ costs more than 5 F1 points). Step 2 keeps training M on the label loss, so F1 can rise "
           "above the pretrained CNN's.", ""]
    fig2 = _tradeoff_figure(cfg, records, keys, cnn, summary_dir / "fig2_tradeoff.png")
    fig3 = _curves_figure(cfg, records, keys, cnn, summary_dir / "fig3_curves.png")
    md += [f"![Fig. 2 trade-off]({fig2})", "", f"![Fig. 3 learning curves]({fig3})", ""]
    summary["run"] = report.run_summary(records.values())
    return report.Section(PAPER, "censor — AFL vs SCT vs LSM: remove the user, keep the activity (seed 002)",
                          "\n".join(md), summary)


def _claim_texts() -> dict[str, str]:
    return {**PAPER_CLAIMS,
            "sct_minus_20_within_5": "SCT lowers user accuracy by ≥ 20 points vs the CNN at some λ while F_y^v drops "
                                     "≤ 5 points (after the last repetition; the issue's acceptance check)"}


def _claims(cfg: Config, cnn: dict, summary: dict) -> dict[str, str]:
    def verdict(ok: bool) -> str:
        return "holds" if ok else "does not hold"

    claims: dict[str, str] = {}
    env = summary["envelope"]
    if "sct" in cfg.methods and len(cfg.methods) > 1:
        lowest = []
        for key in env["f1_seen"]["sct"]:
            values = {m: env["f1_seen"][m][key] for m in cfg.methods if env["f1_seen"][m][key] is not None}
            if "sct" in values:
                lowest.append(values["sct"] <= min(values.values()))
        claims["sct_envelope_lowest"] = (f"{verdict(all(lowest))} at {sum(lowest)} of {len(lowest)} thresholds"
                                         if lowest else "no SCT point within the thresholds")
    final = summary["final"]
    if "sct" in final:
        best_fyt = max(v["f1_unseen"]["mean"] for v in final["sct"].values())
        claims["sct_keeps_fyt"] = (f"{verdict(best_fyt >= cnn['f1_unseen']['mean'] - 1.0)} (best SCT F_y^t "
                                   f"{best_fyt:.1f} vs CNN {cnn['f1_unseen']['mean']:.1f}, tolerance 1 point)")
        hits = [lam for lam, v in final["sct"].items()
                if v["user_accuracy"]["mean"] <= cnn["user_accuracy"]["mean"] - 20
                and v["f1_seen"]["mean"] >= cnn["f1_seen"]["mean"] - 5]
        claims["sct_minus_20_within_5"] = f"{verdict(bool(hits))}" + (f" (λ = {', '.join(hits)})" if hits else "")
    if {"sct", "lsm"} <= set(final):
        gap = _mean_gap(final["lsm"], final["sct"], "f1_seen")
        claims["lsm_like_sct_on_fyv"] = f"{verdict(gap <= 2.0)} (mean |LSM − SCT| F_y^v over λ: {gap:.1f} points)"
    afl = [m for m in ("afl_mlp", "afl_dnn") if m in final]
    if "lsm" in final and afl:
        gap = min(_mean_gap(final["lsm"], final[m], "f1_unseen") for m in afl)
        claims["lsm_like_afl_on_fyt"] = f"{verdict(gap <= 2.0)} (mean |LSM − AFL| F_y^t over λ: {gap:.1f} points)"
    return claims


def _mean_gap(a: dict, b: dict, measure: str) -> float:
    return float(np.mean([abs(a[lam][measure]["mean"] - b[lam][measure]["mean"]) for lam in a]))


COLORS = {"cnn": "black", "afl_mlp": "tab:blue", "afl_dnn": "tab:green", "sct": "tab:red", "lsm": "tab:purple"}


def _tradeoff_figure(cfg, records, keys, cnn, out_path: Path) -> str:
    import matplotlib.pyplot as plt

    from replab import report

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (x, label) in zip(axes, (("f1_seen", "F_y^v (seen users, macro-F1 %)"),
                                     ("f1_unseen", "F_y^t (unseen users, macro-F1 %)")), strict=True):
        for m in cfg.methods:
            f1, user = _points([records[k] for ks in keys[m].values() for k in ks], x)
            ax.scatter(f1, user, s=10, alpha=0.45, color=COLORS[m], label=METHOD_LABELS[m])
            grid = np.sort(np.unique(f1))
            env = lower_envelope(f1, user, grid)
            ax.step(grid, env, where="post", color=COLORS[m], lw=1.5)
        ax.errorbar(cnn[x]["mean"], cnn["user_accuracy"]["mean"], xerr=cnn[x]["std"], yerr=cnn["user_accuracy"]["std"],
                    fmt="*", ms=12, color="black", label=METHOD_LABELS[BASELINE])
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("user accuracy (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Fig. 2: every (λ, repetition) point; lines = lower envelopes (lower is better)", fontsize=10)
    return report.save_figure(fig, out_path)


def _curves_figure(cfg, records, keys, cnn, out_path: Path) -> str:
    import matplotlib.pyplot as plt

    from replab import report

    n = len(cfg.methods)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 5.2), sharex=True, sharey="row", squeeze=False)
    cmap = plt.get_cmap("viridis")
    for col, m in enumerate(cfg.methods):
        for li, lam in enumerate(cfg.lambdas):
            hist = [records[k]["history"] for k in keys[m][lam]]
            color = cmap(li / max(1, len(cfg.lambdas) - 1))
            for row, measure in enumerate(("f1_seen", "user_accuracy")):
                values = np.mean([h[measure] for h in hist], axis=0)
                axes[row, col].plot(np.arange(len(values)), values, color=color, lw=1.2, label=f"λ={lam}")
        axes[0, col].set_title(METHOD_LABELS[m], fontsize=9)
        axes[1, col].set_xlabel("repetition")
        for row, measure in enumerate(("f1_seen", "user_accuracy")):
            axes[row, col].axhline(cnn[measure]["mean"], color="gray", ls="--", lw=0.8)
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].set_ylabel("F_y^v (%)")
    axes[1, 0].set_ylabel("user accuracy (%)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Fig. 3: learning curves per method (dashed: CNN)", fontsize=10)
    return report.save_figure(fig, out_path)
