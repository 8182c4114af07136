"""censor (source 002): remove user identity from activity features — AFL vs SCT vs LSM.

The seed (Iwasawa et al.'s line of work on wearables) learns an encoder E: x → z that keeps the activity y
and hides the user s. A label classifier M (logistic regression on z) is trained with E; an adversary tries
to recover the user from z, and E is post-processed against it:

    AFL (Eq. 1)   min_{E,M} max_D  E[−log q_M(y|z) + λ·log q_D(s|z)]       D: z → s, an MLP
                  AFL-MLP: D hidden 800; AFL-DNN: D hidden 800-200
    Eq. 2         D_sim on z' = concat(z1, z2) predicts g = 1 iff s1 = s2:  −E[g·log q + (1 − g)·log(1 − q)]
    SCT           step 1: train D_sim by Eq. 2 with E fixed; step 2: update E, M by
                  Eq. 4   min_{E,M} L_y + λ·L_sc, with
                  Eq. 3   L_sc = −E[(1 − g)·log q(g|z') + g·log(1 − q(g|z'))]   (Eq. 2 with the labels flipped)
                          L_y  = −E[log q_M(y1|z1) + log q_M(y2|z2)]   (the SUM over the pair's two samples)
    LSM (Eq. 5)   step 2 minimises L_y + λ·L_sim with L_sim = −[E_{G_np} log q(g|z') + E_{G_nn} log(1 − q(g|z'))]
                  (a SUM of two expectations) instead of L_sc; G_np: pairs of different users with the same
                  activity (pulled together), G_nn: pairs of different users and different activities (kept apart)

    Batch estimates: every expectation is estimated by the mean over the batch (B windows for AFL, B pairs for
    SCT and LSM), and a sum of expectations by the sum of those means. So L_y is the batch mean of CE(y1) plus the
    batch mean of CE(y2) (twice AFL's single-window L_y, as in the seed); L_sc is the mean over B pairs drawn half
    same-user, half different-user; L_sim is the mean over the B/2 G_np pairs PLUS the mean over the B/2 G_nn
    pairs (not the mean over all B, which would be half of Eq. 5). With these scales one λ grid means for every
    method what it means in the seed. The CNN baseline is E + M after pretraining, with no adversary.

Networks (the author's 2017 HAR code): E = 3 × (Conv (1, 3) over time, shared across the 6 sensor rows + ReLU
+ max-pool (1, 2) + dropout) with 50 / 40 / 20 filters, then FC 400 + ReLU + dropout (0.5); convolutions
unpadded as in Chainer (30 → 28 → 14 → 12 → 6 → 4 → 2, so 20 × 6 × 2 = 240 inputs to the FC layer). M: linear
400 → 12. D: 400 → 800 (→ 200) → users; D_sim: 800 → 800 → 200 → 1; ReLU, no dropout in adversaries.

Optimisation: pretrain E + M with Adam (lr 1e-4, batch 100) for label accuracy; then adversarial post-processing
with RMSprop (lr 2.5e-5, batch 100; the seed gives the lr only, and α 0.99, ε 1e-8 are Chainer's and PyTorch's
defaults): step 1 (adversary, E fixed) and step 2 (E and M) alternate, each on 200,000 samples (pairs for
SCT/LSM), 30 repetitions, for every λ in {0.1, 0.2, 0.5, 1, 1.5, 2, 2.5}.

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

The seed's ambiguities, and how they are resolved here:
- "スライド幅 30，重なり率 0.5" (slide width 30, overlap 0.5): read as a 30-sample window with stride 15 (50 %
  overlap; params `window`, `stride` of replab.data.recordings); on USC-HAD the seed's count of 172,169
  windows is the check of this reading.
- "200,000サンプルの学習ごとにステップ 1と 2を交互に 30回" (steps 1 and 2 alternate 30 times, each 200,000 samples):
  read as 200,000 samples per step, 30 repetitions; for SCT and LSM a sample is a pair.
- LSM "式 3.1の代わりに" (instead of Eq. 3.1; there is no Eq. 3.1): read as L_sim in place of L_sc (Eq. 3), with
  L_y and λ kept as in Eq. 4.
- Step 1 says E is "更新したまま" (kept updating) while D_sim alone is updated: read as E fixed, the sentence's
  evident intent (the seed's own AFL description fixes E in the adversary's step).
- The seed names the method both "SCL" and "SCT", and lists SCT among the baselines ("4) SCT: trained by
  Eq. 4"): one method, SCT; the baselines are CNN, AFL-MLP and AFL-DNN.
- The claims compare "AFL" while two AFL variants are run: a method is compared with the better (lower)
  of the AFL-MLP and AFL-DNN envelopes at each threshold (report.py).

Why D_sim barely learns at the quick profile's scale (measured on the `har` stand-in, quick params, from the
12-epoch CNN; D_sim = the seed's 800-800-200-1 MLP, batches of 100 pairs). The code is not the cause: the pairs
are half same-user, g = 1 iff s1 = s2 (float targets, Eq. 2's polarity), z is computed without gradient in step 1,
and D_sim learns a toy problem where the user is readable from z (tests/test_censor.py). Nor is it the data: the
user is in z (a fresh 800-200 probe: 46 % user accuracy with the quick probe, 65 % with 10 epochs on all 8,168
windows; chance 10 %), and pairs are comparable through it (P(s1 = s2) from the probe's posteriors separates
same-user pairs with AUC 0.75 / 0.89), though not by plain distance (cosine of z: AUC 0.51). It is the scale: on
frozen features, D_sim alone reaches 54 % pair accuracy (AUC 0.56, BCE 0.690 ≈ ln 2) after the 300 step-1
batches a quick run gives it (3 repetitions × 100) at RMSprop 2.5e-4, 63.5 % (AUC 0.69) after 1,000 and 67 %
(AUC 0.74, about the quick probe's) after 2,000 at 1e-3; a larger lr does not shorten this (3e-3: 59 % after
1,200; Adam 1e-3 / 3e-4: 63 / 65 % after 1,200), and the seed's 2.5e-5 gets there
within the seed's first repetition (53.5 / 56.7 / 61.8 % after 300 / 1,000 / 2,000 batches). Inside SCT
(λ = 2.5, 3 repetitions) D_sim's step-1 loss per
repetition is 0.700 / 0.692 / 0.685 with 10,000 step-1 pairs per repetition (user accuracy 48 → 46 %), 0.685 /
0.677 / 0.674 with 40,000 (45 → 39 %) and 0.657 / 0.631 / 0.612 with 100,000 (44 → 38 %, pair accuracy 64 %);
the quick probe's own spread is ≈ ±3 points. The seed gives D_sim 2,000 batches per repetition, 60,000 in all.
A quick profile with enough step-1 batches (≥ 40,000 pairs per repetition) would
need ≈ 2× its censor training (D_sim's step costs about half an SCT step-2 step), so the quick profile keeps
10,000. The report says so, from the logged step-1 losses, whenever D_sim's loss stays near ln 2.

Read in order: model.py (configuration, data, networks, Eq. 1–5, pair sampling), train.py (pretraining and the
alternating post-processing), evaluate.py (the measures after every repetition), report.py (Fig. 2, Fig. 3,
claims). The DVC stages depend on exactly the files they run, so editing the evaluation or the report does not
retrain.
"""

from replab.papers.censor.evaluate import all_variants, evaluate, macro_f1, measure, probe_init_seed, train_probe
from replab.papers.censor.model import (
    AXES,
    BASELINE,
    KEY_PREFIXES,
    METHODS,
    PAPER,
    AdversarialConfig,
    Config,
    Encoder,
    EncoderConfig,
    Objective,
    PairSampler,
    ProbeConfig,
    Windows,
    afl_encoder_loss,
    axes_for,
    build_adversary,
    build_model,
    confusion_loss,
    load_windows,
    lsm_encoder_loss,
    pair_label_loss,
    sct_encoder_loss,
    similarity_loss,
    similarity_maximisation_loss,
    variant_key,
)
from replab.papers.censor.report import summarize
from replab.papers.censor.train import (
    adversarial_postprocess,
    bench_setup,
    check_data,
    pretrain,
    step2_objective,
    train,
)
from replab.report import lower_envelope  # (Fig. 2's envelopes)

__all__ = [
    "AXES", "BASELINE", "KEY_PREFIXES", "METHODS", "PAPER", "AdversarialConfig", "Config", "Encoder", "EncoderConfig",
    "Objective", "PairSampler", "ProbeConfig", "Windows", "adversarial_postprocess", "afl_encoder_loss", "all_variants",
    "axes_for", "bench_setup", "build_adversary", "build_model", "check_data", "confusion_loss", "evaluate",
    "load_windows", "lower_envelope", "lsm_encoder_loss", "macro_f1", "measure", "pair_label_loss", "pretrain",
    "probe_init_seed", "sct_encoder_loss", "similarity_loss", "similarity_maximisation_loss", "step2_objective",
    "summarize", "train", "train_probe", "variant_key",
]
