"""censor (source 002): losses and step-2 objectives by hand, user re-indexing, pair sampling, envelopes and
the claims on them, F1 measures, a tiny end-to-end run."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from conftest import run_variants, without_timing
from replab.cli import Variant, parse_variant
from replab.data.recordings import WindowingConfig, split_windows, write_windows
from replab.io import DataError, write_manifest
from replab.papers import censor as cs
from replab.params import ParamError, parse

# ---------------------------------------------------------------------------------------------------------
# Losses (Eq. 1–5) against hand-computed values


def test_afl_encoder_loss_is_label_ce_minus_lambda_user_ce():
    label_logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax (0.25, 0.75)
    user_logits = torch.tensor([[math.log(4.0), 0.0, 0.0]])  # softmax (4/6, 1/6, 1/6)
    y, s = torch.tensor([1]), torch.tensor([2])
    objective = cs.afl_encoder_loss(label_logits, y, user_logits, s, 0.5)
    assert objective.label.item() == pytest.approx(-math.log(0.75), abs=1e-6)
    assert objective.censor.item() == pytest.approx(math.log(1 / 6), abs=1e-6)  # log q_D(s|z)
    assert objective.total.item() == pytest.approx(-math.log(0.75) + 0.5 * math.log(1 / 6), abs=1e-6)


def test_similarity_and_flipped_confusion_losses():
    logits = torch.tensor([math.log(3.0), 0.0])  # q = 0.75, 0.5
    g = torch.tensor([1.0, 0.0])
    eq2 = -(math.log(0.75) + math.log(0.5)) / 2  # −[g log q + (1 − g) log(1 − q)]
    eq3 = -(math.log(0.25) + math.log(0.5)) / 2  # −[(1 − g) log q + g log(1 − q)]
    assert cs.similarity_loss(logits, g).item() == pytest.approx(eq2, abs=1e-6)
    assert cs.confusion_loss(logits, g).item() == pytest.approx(eq3, abs=1e-6)


def test_similarity_maximisation_is_the_sum_of_two_expectations():
    # two G_np pairs (q = 0.8, 0.5) and one G_nn pair (q = 0.8): Eq. 5 = mean over G_np + mean over G_nn, not the
    # mean over all three pairs (that would be −(log 0.8 + log 0.5 + log 0.2) / 3 ≈ 1.0, this is ≈ 1.08 + 0.5)
    logits = torch.tensor([math.log(4.0), 0.0, math.log(4.0)])
    same_activity = torch.tensor([1.0, 1.0, 0.0])
    expected = -(math.log(0.8) + math.log(0.5)) / 2 - math.log(0.2)
    assert cs.similarity_maximisation_loss(logits, same_activity).item() == pytest.approx(expected, abs=1e-6)


def test_pair_label_loss_is_the_sum_over_both_samples():
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    expected = -math.log(0.5) - math.log(0.75)  # L_y = −E[log q(y1|z1) + log q(y2|z2)]
    assert cs.pair_label_loss(a, torch.tensor([0]), b, torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)


def _tiny_step2_networks():
    """z = x (2-d); M's logits = z; D's user logits = (z_0, 0, 0); D_sim's logit = z1_0 of z' = concat(z1, z2)."""
    classifier = torch.nn.Linear(2, 2, bias=False)
    adversary = torch.nn.Linear(2, 3, bias=False)
    similarity = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        classifier.weight.copy_(torch.eye(2))
        adversary.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        similarity.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    ln3 = math.log(3.0)
    x = torch.tensor([[0.0, ln3], [ln3, 0.0], [0.0, 0.0], [ln3, ln3]])
    y = torch.tensor([1, 0, 0, 1])  # q_M(y|z) = 0.75, 0.75, 0.5, 0.5
    s = torch.tensor([2, 0, 1, 1])
    return torch.nn.Identity(), classifier, adversary, similarity, x, y, s


def test_step2_objectives_as_training_computes_them():
    encoder, classifier, adversary, similarity, x, y, s = _tiny_step2_networks()
    lam = 0.5
    # AFL on windows 0, 1: q_D(s|z) = 1/3 (logits 0, 0, 0) and 3/5 (logits ln 3, 0, 0)
    afl = cs.step2_objective("afl_mlp", lam, encoder, classifier, adversary, x, y, s, torch.tensor([0, 1]))
    label, censor = -math.log(0.75), (math.log(1 / 3) + math.log(3 / 5)) / 2
    assert (afl.label.item(), afl.censor.item()) == (pytest.approx(label, abs=1e-6), pytest.approx(censor, abs=1e-6))
    assert afl.total.item() == pytest.approx(label + lam * censor, abs=1e-6)

    # SCT on pairs (1, 2) with g = 1 and (0, 3) with g = 0; D_sim's q = 0.75 and 0.5
    batch = (torch.tensor([1, 0]), torch.tensor([2, 3]), torch.tensor([1.0, 0.0]))
    sct = cs.step2_objective("sct", lam, encoder, classifier, similarity, x, y, s, batch)
    label = -math.log(0.75) - math.log(0.5)  # the sum over the pair's two samples, averaged over pairs
    censor = -(math.log(0.25) + math.log(0.5)) / 2  # Eq. 3: flipped labels
    assert (sct.label.item(), sct.censor.item()) == (pytest.approx(label, abs=1e-6), pytest.approx(censor, abs=1e-6))
    assert sct.total.item() == pytest.approx(label + lam * censor, abs=1e-6)

    # LSM on two G_np pairs (1, 2), (0, 3) and one G_nn pair (1, 3); q = 0.75, 0.5, 0.75
    batch = (torch.tensor([1, 0, 1]), torch.tensor([2, 3, 3]), torch.tensor([1.0, 1.0, 0.0]))
    lsm = cs.step2_objective("lsm", lam, encoder, classifier, similarity, x, y, s, batch)
    label = -math.log(0.75) - math.log(0.5)
    censor = -(math.log(0.75) + math.log(0.5)) / 2 - math.log(0.25)  # Eq. 5: E_{G_np} + E_{G_nn}
    assert (lsm.label.item(), lsm.censor.item()) == (pytest.approx(label, abs=1e-6), pytest.approx(censor, abs=1e-6))
    assert lsm.total.item() == pytest.approx(label + lam * censor, abs=1e-6)


@pytest.mark.parametrize("method", cs.METHODS)
def test_training_minimises_step2_objective_and_logs_its_terms(method, monkeypatch):
    """adversarial_postprocess takes its step-2 loss from step2_objective (the function tested above)."""
    import importlib

    from replab.params import Runtime

    censor_train = importlib.import_module("replab.papers.censor.train")  # the package exports a `train` function

    calls = []
    real = censor_train.step2_objective

    def spy(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(censor_train, "step2_objective", spy)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 2, 8, generator=gen)
    y, s = torch.arange(40) % 3, (torch.arange(40) // 3) % 4
    data = cs.Windows({"train": x}, {"train": y}, {"train": s}, 3, 4, "test", "tiny")
    cfg = parse(cs.Config, {"encoder": {"filters": [2], "fc": 4},
                            "adversarial": {"batch_size": 10, "adversary_samples": 10, "encoder_samples": 30,
                                            "repetitions": 2, "adversary_hidden": [4], "adversary_hidden_dnn": [4, 4],
                                            "similarity_hidden": [4, 4]}}, "censor")
    encoder, classifier = cs.build_model(cfg, data, torch.device("cpu"))

    class Live:
        step, logged = 0, {}

        def log_metric(self, name, value):
            self.logged.setdefault(name, []).append(value)

        def make_summary(self):
            pass

    live = Live()
    cs.adversarial_postprocess(cfg, method, 1.0, encoder, classifier, data, torch.device("cpu"),
                               Runtime(progress=False, threads=1), gen, live)
    assert calls == [method] * 6  # 3 step-2 batches × 2 repetitions
    assert len(live.logged["adversarial/label_loss"]) == len(live.logged["adversarial/censor_loss"]) == 2
    censor = live.logged["adversarial/censor_loss"][0]
    assert censor < 0 if method.startswith("afl") else censor > 0  # log q_D(s|z) ≤ 0; L_sc, L_sim ≥ 0


def _user_readable_windows(n_users: int = 4, per_user: int = 50) -> cs.Windows:
    """Windows whose user is a constant per-channel offset pattern (linearly readable from x, so from z of an
    untrained encoder), activities random: a pair of windows is same-user iff their patterns match."""
    gen = torch.Generator().manual_seed(0)
    s = torch.arange(n_users).repeat_interleave(per_user)
    pattern = 3 * torch.randn(n_users, 2, 1, generator=gen)
    x = (pattern[s] + 0.1 * torch.randn(len(s), 2, 8, generator=gen)).unsqueeze(1)
    y = torch.randint(0, 3, (len(s),), generator=gen)
    return cs.Windows({"train": x}, {"train": y}, {"train": s}, 3, n_users, "test", "toy")


def _step1(data: cs.Windows, adversary_samples: int) -> dict[str, list[float]]:
    from replab.params import Runtime

    cfg = parse(cs.Config, {"encoder": {"filters": [4], "fc": 16, "dropout": 0.0},
                            "adversarial": {"lr": 0.001, "batch_size": 50, "adversary_samples": adversary_samples,
                                            "encoder_samples": 50, "repetitions": 2, "similarity_hidden": [32, 16]}},
                  "censor")
    torch.manual_seed(0)
    encoder, classifier = cs.build_model(cfg, data, torch.device("cpu"))
    _, _, history = cs.adversarial_postprocess(cfg, "sct", 0.0, encoder, classifier, data, torch.device("cpu"),
                                               Runtime(progress=False, threads=1), torch.Generator().manual_seed(0))
    return history


def test_similarity_adversary_learns_pairs_when_the_user_is_readable():
    """Step 1 of SCT trains D_sim (Eq. 2) on concat(z1, z2) of half same-user / half different-user pairs: where the
    user is readable from z, its loss falls far below ln 2 and its pair accuracy far above 50 % (a sampler with
    wrong labels, a flipped target or an adversary not updated would stay at chance)."""
    history = _step1(_user_readable_windows(), adversary_samples=5_000)
    assert len(history["adversary_loss"]) == len(history["adversary_accuracy"]) == 2  # one per repetition
    assert history["adversary_loss"][-1] < 0.3 < math.log(2)
    assert history["adversary_accuracy"][-1] > 90


def test_similarity_adversary_stays_at_chance_when_users_are_indistinguishable():
    """The same run with every window of one pattern: nothing tells the users apart, D_sim's loss stays ≈ ln 2."""
    data = _user_readable_windows()
    data.x["train"] = data.x["train"][data.s["train"] == 0].repeat(4, 1, 1, 1)
    history = _step1(data, adversary_samples=2_000)
    assert history["adversary_loss"][-1] == pytest.approx(math.log(2), abs=0.02)


def test_report_says_why_when_dsim_did_not_learn():
    """The report's sentence on D_sim follows the logged step-1 losses, both ways."""
    from replab.papers.censor.report import adversary_margins, similarity_adversary

    cfg = parse(cs.Config, {"adversarial": {"adversary_samples": 10_000, "repetitions": 3}}, "censor")

    def rec(loss, accuracy):
        return {"step1": {"adversary_loss": [0.70, loss], "adversary_accuracy": [50.0, accuracy]}}

    stats, why = similarity_adversary({"sct": [rec(0.690, 54.0)], "lsm": [rec(0.67, 57.0)], "afl_mlp": [rec(2, 30)]},
                                      cfg)
    assert set(stats) == {"sct", "lsm"} and not stats["sct"]["learned"] and stats["lsm"]["learned"]
    assert why.startswith("Why SCT barely censor") and "SCT 0.690 nats, pair accuracy 54.0 %" in why
    assert "LSM" not in why and "300 step-1 batches of 100 pairs (3 repetitions × 100)" in why
    # the paper's lr beside ours (the quick profile's is 10× the paper's), and the paper's batches at its lr
    assert "at RMSprop lr 2.5e-05 (the paper's)" in why and "60,000 at lr 2.5e-05" in why
    assert adversary_margins(stats) == ("D_sim's mean step-1 loss in its best repetition, averaged over the method's "
                                        "runs (learned = below ln 2 − 0.01 = 0.6831 nats): SCT 0.6900 (did not "
                                        "learn, 0.0069 above), LSM 0.6700 (learned, 0.0131 below).")
    stats, why = similarity_adversary({"sct": [rec(0.60, 66.0), rec(0.62, 64.0)]}, cfg)
    assert stats["sct"]["adversary_loss"] == pytest.approx(0.61) and stats["sct"]["learned"] and why is None
    # a censor that works: D_sim learned on the pretrained z (first repetition), then E's step 2 drove it back to
    # ln 2. That is the method succeeding, not an adversary that failed: judged on the best repetition
    succeeded = {"step1": {"adversary_loss": [0.55, 0.69, 0.70], "adversary_accuracy": [72.0, 52.0, 49.0]}}
    stats, why = similarity_adversary({"sct": [succeeded, rec(0.60, 66.0)]}, cfg)
    assert stats["sct"] == {"adversary_loss": pytest.approx((0.55 + 0.60) / 2),
                            "adversary_accuracy": pytest.approx((72.0 + 66.0) / 2), "learned": True,
                            "adversary_loss_std": 0.0, "learned_within_spread": False,  # (records of one seed)
                            "near_threshold": False}
    assert why is None


def test_a_dsim_verdict_near_its_threshold_is_marked_with_one_seed():
    """With one seed no spread marks anything, and the LSM verdicts turned on 0.0024 nats between an AVX2-held and an
    unheld run of the same code (0.0008 above the threshold, then 0.0015 below): a loss within NEAR_LEARNED = 0.005
    of it is marked near, either side, and the sentence under the margins says why; 0.0051 away is not."""
    from replab.papers.censor.report import LEARNED_BELOW, NEAR_LEARNED, adversary_margins, similarity_adversary

    cfg = parse(cs.Config, {}, "censor")
    rec = lambda loss: {"seed": 0, "step1": {"adversary_loss": [0.70, loss], "adversary_accuracy": [50.0, 55.0]}}
    assert NEAR_LEARNED == 0.005
    stats, _ = similarity_adversary({"lsm": [rec(LEARNED_BELOW + 0.0008)], "sct": [rec(LEARNED_BELOW - 0.0049)]}, cfg)
    assert stats["lsm"]["near_threshold"] and not stats["lsm"]["learned"]
    assert stats["sct"]["near_threshold"] and stats["sct"]["learned"]
    assert not stats["lsm"]["learned_within_spread"]  # (one seed: no spread)
    assert adversary_margins(stats).endswith(
        "LSM 0.6839 (did not learn, 0.0008 above; within 0.005 of it), SCT 0.6782 (learned, 0.0049 below; within "
        "0.005 of it). A loss within 0.005 nats of the threshold can fall on its other side on another machine (the "
        "same code, data and seed moved LSM's by 0.0024 between two CPUs): the verdicts resting on it are marked "
        "(near its margin).")
    far, _ = similarity_adversary({"lsm": [rec(LEARNED_BELOW + 0.0051)], "sct": [rec(LEARNED_BELOW - 0.0051)]}, cfg)
    assert not far["lsm"]["near_threshold"] and not far["sct"]["near_threshold"]
    assert "marked" not in adversary_margins(far)


def test_a_dsim_verdict_within_its_runs_spread_marks_the_claims_on_its_method():
    """D_sim's "learned" (mean loss below ln 2 − 0.01 = 0.68315) decided by less than its runs' standard deviation can
    turn on another machine (an LSM critic passed by 0.0008 nats off AVX2): the verdict is marked (the report marks
    the claims on that method then), never one whose seeds sit clear of the threshold."""
    from replab.papers.censor.report import adversary_margins, similarity_adversary

    cfg = parse(cs.Config, {}, "censor")
    rec = lambda loss, seed=0: {"seed": seed, "step1": {"adversary_loss": [0.70, loss],
                                                        "adversary_accuracy": [50.0, 55.0]}}
    # LSM: mean 0.68275 (printed 0.6827), 0.0004 below the threshold, std over its 2 seeds 0.0074 ≥ the distance;
    # SCT 0.60 ± 0.0014
    stats, _ = similarity_adversary({"lsm": [rec(0.6775, 0), rec(0.688, 1)], "sct": [rec(0.599, 0), rec(0.601, 1)]},
                                    cfg)
    assert stats["lsm"]["learned"] and stats["lsm"]["learned_within_spread"]
    assert stats["lsm"]["adversary_loss_std"] == pytest.approx(0.0105 / 2 ** 0.5)
    assert stats["sct"]["learned"] and not stats["sct"]["learned_within_spread"]
    assert "LSM 0.6827 (learned, 0.0004 below; within the seeds' spread, ± 0.0074; within 0.005 of it)" in \
        adversary_margins(stats)
    assert "SCT 0.6000 (learned, 0.0831 below). A loss within 0.005 nats of the threshold can fall" in \
        adversary_margins(stats)
    # one seed at two λ: λ moves the loss on purpose, which is no seed noise: nothing to judge by
    one_seed, _ = similarity_adversary({"lsm": [rec(0.6775), rec(0.688)]}, cfg)
    assert not one_seed["lsm"]["learned_within_spread"] and one_seed["lsm"]["adversary_loss_std"] == 0.0
    # two seeds at two λ each: the spread of the seeds' means 0.68275 and 0.68475 (0.002 / √2), whose mean 0.68375
    # lies 0.0006 above the threshold: not learned, within the spread
    two, _ = similarity_adversary({"lsm": [rec(0.6775, 0), rec(0.688, 0), rec(0.6795, 1), rec(0.690, 1)]}, cfg)
    assert two["lsm"]["adversary_loss_std"] == pytest.approx(0.002 / 2 ** 0.5)
    assert not two["lsm"]["learned"] and two["lsm"]["learned_within_spread"]
    broken, _ = similarity_adversary({"lsm": [rec(float("nan"), 0), rec(0.5, 1)]}, cfg)  # NaN: not judged
    assert not broken["lsm"]["learned"] and not broken["lsm"]["learned_within_spread"]


def test_windows_are_checked_against_the_seeds_count():
    """USC-HAD's windows over every split (train, seen, unseen) beside the seed's 172,169."""
    from replab.papers.censor.report import windows_check

    assert windows_check({"train": 140_000, "seen": 15_569, "unseen": 16_600}) == (
        "Windows over every split: 172,169; the source counts 172,169 (the same), the check of our reading of its "
        "windowing.")
    assert "1,000 fewer, -0.58 %" in windows_check({"train": 171_169})
    assert "831 more, +0.48 %" in windows_check({"train": 173_000})


# ---------------------------------------------------------------------------------------------------------
# Pairs, encoder shapes, measures


def test_pair_sampler_respects_every_pair_kind():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(600) % 12
    s = (torch.arange(600) // 7) % 10
    pairs = cs.PairSampler(y, s, gen)
    i, j, g = pairs.user_pairs(400)
    same = s[i] == s[j]
    assert torch.equal(same, g.bool())
    assert g.sum().item() == 200
    i, j, t = pairs.lsm_pairs(400)
    assert bool((s[i] != s[j]).all())  # LSM uses pairs of different users only
    assert torch.equal(y[i] == y[j], t.bool())
    assert t.sum().item() == 200


def test_pair_sampler_fails_clearly_with_one_user():
    gen = torch.Generator().manual_seed(0)
    pairs = cs.PairSampler(torch.arange(20) % 3, torch.zeros(20, dtype=torch.long), gen)
    with pytest.raises(Exception, match="cannot find partners"):
        pairs.other_user(torch.arange(5))


def test_load_windows_reindexes_the_train_users(in_tmp):
    """Users 2, 4, 7 (0-based ids in the npz files) of train/seen become classes 0, 1, 2 of the adversary and the
    probe; unseen users (only their activity is scored) keep their ids."""
    rng = np.random.default_rng(0)

    def split(users, activities):
        n = len(users)
        return {"x": rng.normal(size=(n, 6, 30)).astype(np.float32), "activity": np.array(activities),
                "user": np.array(users), "trial": np.ones(n, dtype=np.int64)}

    splits = {"train": split([7, 2, 4, 2, 7, 4], [0, 1, 2, 3, 4, 5]), "seen": split([4, 7, 2], [0, 1, 2]),
              "unseen": split([10, 12], [3, 4])}
    write_windows(in_tmp / "data/processed/har", splits, {"dataset": "har", "source": "test"})
    write_manifest(in_tmp / "data/processed/har")  # as prepare records it
    data = cs.load_windows("har", torch.device("cpu"))
    assert data.s["train"].tolist() == [2, 0, 1, 0, 2, 1]
    assert data.s["seen"].tolist() == [1, 2, 0]
    assert data.s["unseen"].tolist() == [10, 12]
    assert data.y["train"].tolist() == [0, 1, 2, 3, 4, 5]
    assert (data.n_users, data.n_activities) == (3, 12)
    assert data.x["train"].shape == (6, 1, 6, 30)


def test_encoder_shapes_follow_the_unpadded_convolutions():
    enc = cs.Encoder(cs.EncoderConfig(), channels=6, window=30)
    assert enc.fc[0].in_features == 20 * 6 * 2  # 30 → 28 → 14 → 12 → 6 → 4 → 2
    assert enc(torch.randn(3, 1, 6, 30)).shape == (3, 400)


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 5, 300), rng.integers(0, 6, 300)
    pred[:40] = y[:40]
    ours = cs.macro_f1(torch.from_numpy(pred), torch.from_numpy(y), 6)
    assert ours == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-9)


def test_lower_envelope():
    f1 = np.array([90.0, 85.0, 80.0, 70.0])
    user = np.array([60.0, 40.0, 50.0, 20.0])
    env = cs.lower_envelope(f1, user, np.array([95.0, 90.0, 84.0, 70.0]))
    assert np.isnan(env[0])
    assert env[1:].tolist() == [60.0, 40.0, 20.0]


def _envelopes(**curves):
    """summary["envelope"] from {"<axis>_<method>": five user accuracies (None = no point reaches)}."""
    env: dict = {"f1_seen": {}, "f1_unseen": {}}
    for name, values in curves.items():
        axis, method = ("f1_seen", name[4:]) if name.startswith("fyv_") else ("f1_unseen", name[4:])
        env[axis][method] = {f"cnn-{d:g}": v for d, v in zip(cs.model.ENVELOPE_DROPS, values, strict=True)}
    return env


def _claims(env, sct_final_fyt=60.0, sct_final_user=30.0):
    from replab.papers.censor.report import _claims

    cfg = parse(cs.Config, {"lambdas": [0.5]}, "censor")
    final = {m: {"0.5": {"f1_seen": {"mean": 70.0}, "f1_unseen": {"mean": 55.0}, "user_accuracy": {"mean": 60.0}}}
             for m in cs.METHODS}
    final["sct"]["0.5"] = {"f1_seen": {"mean": 68.0}, "f1_unseen": {"mean": sct_final_fyt},
                           "user_accuracy": {"mean": sct_final_user}}
    cnn = {"f1_seen": {"mean": 70.0}, "f1_unseen": {"mean": 55.0}, "user_accuracy": {"mean": 60.0}}
    return _claims(cfg, cnn, {"envelope": env, "final": final})[:2]


def test_envelope_claims_hold_when_the_curves_match_the_seed():
    none2 = [None, None]
    claims, detail = _claims(_envelopes(
        fyv_afl_mlp=[*none2, 40, 35, 30], fyv_afl_dnn=[None, 45, 42, 36, 31],  # AFL = (–, 45, 40, 35, 30)
        fyv_sct=[30, 28, 25, 20, 18], fyv_lsm=[31, 29, 26, 21, 19],  # LSM ≈ SCT, both far below AFL
        fyu_afl_mlp=[40, 38, 35, 30, 28], fyu_afl_dnn=[41, 39, 36, 31, 29],
        fyu_sct=[30, 28, 25, 20, 18], fyu_lsm=[41, 38, 34, 30, 29]))  # LSM ≈ AFL (at most +1)
    assert claims == {"sct_envelope_lowest": True, "sct_lsm_at_least_afl": True, "lsm_like_afl_on_fyt": True,
                      "lsm_beats_afl_on_fyv": True, "lsm_like_sct_on_fyv": True, "sct_keeps_fyt": True,
                      "sct_minus_20_within_5": True}
    assert "1 reached by LSM only" in detail["lsm_beats_afl_on_fyv"]  # AFL never reaches the CNN's F_y^v


def test_envelope_claims_fail_when_the_curves_do_not():
    claims, detail = _claims(_envelopes(
        fyv_afl_mlp=[30, 28, 25, 20, 18], fyv_afl_dnn=[31, 29, 26, 21, 19],
        fyv_sct=[40, 38, 35, 30, 28], fyv_lsm=[50, 48, 45, 40, 38],  # AFL lowest; LSM 10 above SCT
        fyu_afl_mlp=[40, 38, 35, 30, 28], fyu_afl_dnn=[40, 38, 35, 30, 28],
        fyu_sct=[30, 28, 25, 20, 18], fyu_lsm=[None] * 5),  # LSM never reaches AFL's F_y^t: not ≈ AFL
        sct_final_fyt=50.0, sct_final_user=45.0)  # F_y^t 5 below the CNN, user accuracy only 15 below
    assert claims == {"sct_envelope_lowest": False, "sct_lsm_at_least_afl": False, "lsm_like_afl_on_fyt": False,
                      "lsm_beats_afl_on_fyv": False, "lsm_like_sct_on_fyv": False, "sct_keeps_fyt": False,
                      "sct_minus_20_within_5": False}
    assert "+10.0 points" in detail["lsm_like_sct_on_fyv"]


@pytest.mark.parametrize("lsm, afl, holds", [
    ([30, 28, 25, 20, 18], [None, 45, 40, 35, 30], True),  # lower where both reach, and reaches more
    ([31, 29, 26, 21, 68], [None, None, None, None, 30], False),  # reaches 4 more, but 38 above where both reach
    ([30, 30, 30, 30, 30], [None, 30, 31, 29, 30], True),  # ≈ where both reach, reaches one more
    ([10, 10, 10, 10, None], [40, 40, 40, 40, 30], False),  # far lower, but AFL alone reaches the last threshold
    ([20, 20, 20, 20, 33], [30, 30, 30, 30, 30], True),  # 10 lower at four, 3 higher at one: lower on average
    ([None] * 5, [None] * 5, False)])
def test_better_envelope_is_not_decided_by_one_threshold_only_one_method_reaches(lsm, afl, holds):
    """"LSM better than AFL on F_y^v": the mean of d read −inf, "better", when LSM alone reached one threshold,
    however far above AFL it was where both reached (the quick profile's report: +38 points, "would read holds")."""
    claims, _ = _claims(_envelopes(fyv_afl_mlp=afl, fyv_afl_dnn=afl, fyv_sct=lsm, fyv_lsm=lsm,
                                   fyu_afl_mlp=afl, fyu_afl_dnn=afl, fyu_sct=lsm, fyu_lsm=lsm))
    assert claims.get("lsm_beats_afl_on_fyv") is (holds if any(v is not None for v in lsm + afl) else None)


@pytest.mark.parametrize("lsm, holds", [
    ([59, 58.5, 58, 60, 59], False),  # alone at every threshold, within 2 points of the CNN's 60 %: no win
    ([59, 58.5, 58, 60, 50], True),  # censors at one of them (10 below the CNN): a win there
    ([61, 62, 63, 64, 65], False)])  # above the CNN everywhere
def test_reaching_thresholds_the_other_misses_wins_only_where_it_censors(lsm, holds):
    """The committed quick report's "LSM better than AFL on F_y^v": no threshold both reach, 5 reached by LSM only,
    "would read holds", while LSM's user accuracy there (47–50 %) stayed at the CNN's (46.8 %): LSM offered no more
    privacy than AFL, which offers none at those F1s either. Such a threshold counts for neither."""
    afl = [None] * 5
    claims, detail = _claims(_envelopes(fyv_afl_mlp=afl, fyv_afl_dnn=afl, fyv_sct=lsm, fyv_lsm=lsm,
                                        fyu_afl_mlp=afl, fyu_afl_dnn=afl, fyu_sct=lsm, fyu_lsm=lsm))
    assert claims["lsm_beats_afl_on_fyv"] is holds
    censoring = sum(v < 60 - 2 for v in lsm)
    no_win = [v for v in lsm if v >= 58]
    at = "all 5" if not censoring else 5 - censoring
    assert detail["lsm_beats_afl_on_fyv"] == (
        "LSM − AFL on F_y^v: no threshold both reach, 5 reached by LSM only"
        + (f"; at {at} of those LSM does not censor (user accuracy {min(no_win):.1f} – {max(no_win):.1f} % vs the "
           "CNN's 60.0 %): no win"))
    one, words = _claims(_envelopes(**{f"{a}_{m}": [None] * 4 + [v] for a in ("fyv", "fyu") for m, v in (
        ("afl_mlp", None), ("afl_dnn", None), ("sct", 59.0), ("lsm", 59.0))}))
    assert not one["lsm_beats_afl_on_fyv"]
    assert words["lsm_beats_afl_on_fyv"].endswith("(user accuracy 59.0 % vs the CNN's 60.0 %): no win")  # not 59.0–59.0


def test_envelope_claims_are_judged_on_both_axes():
    """SCT lowest on F_y^v but not on F_y^t (LSM 5 points below it at one threshold): the claim does not hold."""
    same = [30, 28, 25, 20, 18]
    claims, detail = _claims(_envelopes(
        fyv_afl_mlp=[40] * 5, fyv_afl_dnn=[40] * 5, fyv_sct=same, fyv_lsm=same,
        fyu_afl_mlp=[40] * 5, fyu_afl_dnn=[40] * 5, fyu_sct=same, fyu_lsm=[30, 28, 25, 15, 18]))
    assert claims["sct_envelope_lowest"] is False and claims["lsm_like_sct_on_fyv"] is True
    assert "above LSM by more than 2 on F_y^t" in detail["sct_envelope_lowest"]


@pytest.mark.parametrize("gap, holds", [(1.0, True), (2.0, True), (2.5, False)])
def test_sct_lowest_allows_the_envelope_tolerance(gap, holds):
    """"Lowest" with one seed's points: another method below SCT by up to ENVELOPE_TOLERANCE (2 points) at a
    threshold is a tie, as in the other envelope claims; by more, SCT is not lowest."""
    same = [30, 28, 25, 20, 18]
    claims, detail = _claims(_envelopes(
        fyv_afl_mlp=[40] * 5, fyv_afl_dnn=[40] * 5, fyv_sct=same, fyv_lsm=same,
        fyu_afl_mlp=[40] * 5, fyu_afl_dnn=[40] * 5, fyu_sct=same, fyu_lsm=[30, 28, 25, 20 - gap, 18]))
    assert cs.model.ENVELOPE_TOLERANCE == 2.0
    assert claims["sct_envelope_lowest"] is holds
    assert (detail["sct_envelope_lowest"] == "lowest (within 2) at every threshold reached") is holds


def test_envelope_claims_not_checkable_without_points():
    nothing = [None] * 5
    claims, _ = _claims(_envelopes(**{f"{a}_{m}": nothing for a in ("fyv", "fyu") for m in cs.METHODS}))
    assert {k: claims[k] for k in ("sct_envelope_lowest", "lsm_like_afl_on_fyt", "lsm_like_sct_on_fyv")} == {
        "sct_envelope_lowest": None, "lsm_like_afl_on_fyt": None, "lsm_like_sct_on_fyv": None}


def test_variant_keys_and_axes():
    cfg = parse(cs.Config, {"lambdas": [0.5, 1]}, "censor")
    assert cfg.lambdas == [0.5, 1.0]
    # DVC's matrix key spells an integer λ as `1`: the CLI still accepts it
    v = parse_variant("censor", "sct-1-0", ["method=sct", "lambda=1", "seed=0"], cfg, cs.axes_for("sct-1-0"))
    assert v.axes == {"method": "sct", "lambda": 1.0, "seed": 0}
    assert cs.axes_for("cnn-0") == {"seed": "seeds"}
    with pytest.raises(ParamError, match="lambda"):
        parse_variant("censor", "sct-3-0", ["method=sct", "lambda=3", "seed=0"], cfg, cs.AXES)


def test_a_key_whose_values_hold_a_dash_is_read_off_by_the_sweep():
    """DVC's matrix key for λ = 1e-05 is `afl_mlp-1e-05-0` (dvc.parsing's to_str is str): read off the key's last
    three parts it gave method=1e, λ=05, an error naming neither the key nor how it was read."""
    from replab.cli import command_variant

    cfg = parse(cs.Config, {"lambdas": [1e-05, 0.2], "seeds": [0, 1]}, "censor")
    assert command_variant("censor", "afl_mlp-1e-05-1", [], cfg, True).axes == {
        "method": "afl_mlp", "lambda": 1e-05, "seed": 1}
    assert command_variant("censor", "sct-0.2-0", [], cfg, False).axes == {"method": "sct", "lambda": 0.2, "seed": 0}
    with pytest.raises(ParamError, match=r"censor.lambdas: variant lambda='0.3' .*\(read off `lsm-0.3-0` as "
                                         r"method=lsm lambda=0.3 seed=0; or give each axis as axis=value\)"):
        command_variant("censor", "lsm-0.3-0", [], cfg, True)
    with pytest.raises(ParamError, match=r"lambda='1e-06' .*read off `lsm-1e-06-0` as method=lsm lambda=1e-06 seed=0"):
        command_variant("censor", "lsm-1e-06-0", [], cfg, True)
    # the reading with the most values in their sweeps names the one that is not (it blamed method=1e)
    with pytest.raises(ParamError, match=r"censor.seeds: variant seed='2' .*as method=afl_mlp lambda=1e-05 seed=2;"):
        command_variant("censor", "afl_mlp-1e-05-2", [], cfg, True)


def test_a_variant_spelled_otherwise_than_dvc_yaml_is_refused():
    """`replab train censor afl_mlp-1e-5-0` (or lambda=0.20, .2) trained into models/censor/afl_mlp-1e-5-0, a folder
    no stage reads: dvc.yaml's key for λ = 1e-05 is afl_mlp-1e-05-0. Spellings come from params.yaml's items as
    written (an integer λ written 1 is spelled 1, as DVC's to_str spells it)."""
    from dvc.parsing.interpolate import to_str

    from replab.cli import command_variant
    from replab.papers import dvc_spelling

    for value in (1e-05, 1, 0.2, 2.5, True, "afl_mlp", 100000.0):
        assert dvc_spelling(value) == to_str(value)
    section = {"lambdas": [1e-05, 1], "seeds": [0]}
    cfg = parse(cs.Config, section, "censor")
    assert command_variant("censor", "afl_mlp-1e-05-0", [], cfg, True, section).axes["lambda"] == 1e-05
    assert command_variant("censor", "sct-1-0", [], cfg, True, section).axes["lambda"] == 1.0
    for key, axes, wrong, right in (("afl_mlp-1e-5-0", [], "1e-5", "1e-05"), ("sct-1.0-0", [], "1.0", "1"),
                                    ("afl_mlp-1e-05-0", ["method=afl_mlp", "lambda=0.00001", "seed=0"], "0.00001",
                                     "1e-05")):
        with pytest.raises(ParamError) as err:
            command_variant("censor", key, axes, cfg, True, section)
        assert str(err.value) == (f"censor variant {key}: lambda={wrong} is spelled {right} in dvc.yaml's keys and "
                                  "folders (a variant spelled otherwise would train where no stage reads)")


def test_a_key_prefix_the_paper_does_not_declare_is_refused():
    """`replab train censor junk-afl_mlp-0.2-0` trained into models/censor/junk-afl_mlp-0.2-0, a folder no stage
    reads: censor's keys take one prefix, `cnn-` (the baseline's, whose only axis is the seed: KEY_PREFIXES)."""
    from replab.cli import command_variant

    cfg = parse(cs.Config, {"lambdas": [0.2], "seeds": [0]}, "censor")
    assert command_variant("censor", "cnn-0", [], cfg, False).axes == {"seed": 0}
    for key, axes, prefix, right in (("junk-afl_mlp-0.2-0", [], "junk", "afl_mlp-0.2-0"),
                                     ("junk-afl_mlp-0.2-0", ["method=afl_mlp", "lambda=0.2", "seed=0"], "junk",
                                      "afl_mlp-0.2-0"),
                                     ("cnn-afl_mlp-0.2-0", ["seed=0"], "cnn-afl_mlp-0.2", "0")):
        with pytest.raises(ParamError) as err:
            command_variant("censor", key, axes, cfg, False)
        assert str(err.value).startswith(f"censor variant {key}: {prefix}- is not a key prefix of censor (allowed: "
                                         f"cnn- or none; ")
        assert f" give {right})" in str(err.value) and "\n" not in str(err.value)


def test_an_encoder_that_leaves_no_time_steps_names_the_shortest_window():
    """5 blocks of kernel 3 and pool 2 take 94 samples to 1 and 93 to none. Checked against the prepared windows
    (build_model, the check_data stage), not in the config: a hard-coded 30-sample window refused deep encoders
    that a longer data.<set>.window fits."""
    encoder = parse(cs.EncoderConfig, {"filters": [8, 8, 8, 8, 8]}, "censor.encoder")
    parse(cs.Config, {"encoder": {"filters": [8, 8, 8, 8, 8]}}, "censor")
    with pytest.raises(DataError) as err:
        cs.Encoder(encoder, channels=6, window=93, dataset="har")
    assert str(err.value) == ("data/processed/har: windows of 93 samples are too short for censor.encoder (5 blocks of "
                              "kernel 3 and pool 2 need 94; allowed: data.har.window ≥ 94, or fewer or smaller blocks)")
    assert cs.Encoder(encoder, channels=6, window=94, dataset="har")(torch.zeros(2, 1, 6, 94)).shape == (2, 400)


# ---------------------------------------------------------------------------------------------------------
# End to end on tiny synthetic windows: CNN baseline, every method, evaluation after each repetition


def _tiny_windows(root):
    """6 users, 3 activities: activity = frequency, user = a per-user channel phase pattern."""
    rng = np.random.default_rng(0)
    t = np.arange(120) / 100
    recordings, act, usr, tri = [], [], [], []
    for u in range(1, 7):
        phase = rng.uniform(0, 2 * np.pi, 6)
        for a in range(1, 4):
            for k in (1, 2):
                f = 2.0 * a
                recordings.append(np.sin(2 * np.pi * f * t[:, None] + phase[None, :]) + 0.2 * rng.normal(size=(120, 6)))
                act.append(a), usr.append(u), tri.append(k)
    cfg = WindowingConfig(train_users=[1, 2, 3, 4], unseen_users=[5, 6])
    splits = split_windows(cfg, recordings, np.array(act), np.array(usr), np.array(tri), 0)
    write_windows(root / "data/processed/har", splits, {"dataset": "har", "source": "test"})
    write_manifest(root / "data/processed/har")  # as prepare records it


def test_end_to_end_every_method_is_deterministic(in_tmp):
    _tiny_windows(in_tmp)
    cfg = parse(cs.Config, {
        "dataset": "har", "lambdas": [1.0], "seeds": [0],
        "encoder": {"filters": [4, 4], "fc": 16},
        "pretrain": {"epochs": 2, "lr": 0.003, "batch_size": 20},
        "adversarial": {"lr": 0.001, "batch_size": 20, "adversary_samples": 40, "encoder_samples": 40, "repetitions": 2,
                        "adversary_hidden": [8], "adversary_hidden_dnn": [8, 4], "similarity_hidden": [8, 4]},
        "probe": {"hidden": [8, 4], "epochs": 2, "batch_size": 20}}, "censor")
    variants = [Variant("censor", "cnn-0", {"seed": 0})]
    variants += [Variant("censor", cs.variant_key(m, 1.0, 0), {"method": m, "lambda": 1.0, "seed": 0})
                 for m in cs.METHODS]
    first = run_variants(cs, cfg, variants)
    cnn = first["cnn-0"]
    assert len(cnn["history"]["f1_seen"]) == 1
    assert cnn["chance_user_accuracy"] == pytest.approx(25.0)
    assert cnn["counts"] == {"train": 156, "seen": 12, "unseen": 84}  # 7 windows per 120-sample recording
    for m in cs.METHODS:
        rec = first[cs.variant_key(m, 1.0, 0)]
        assert len(rec["history"]["user_accuracy"]) == 3  # the pretrained start + 2 repetitions
        assert rec["history"]["f1_seen"][0] == pytest.approx(cnn["f1_seen"])  # every λ starts from the CNN
        for measure in ("f1_seen", "f1_unseen", "user_accuracy"):
            assert rec[measure] == rec["history"][measure][-1]  # the top-level measures are the last repetition's
        assert [len(v) for v in rec["step1"].values()] == [2, 2]  # D's step-1 loss and accuracy per repetition
    assert "step1" not in cnn
    assert without_timing(run_variants(cs, cfg, variants)) == without_timing(first)

    from replab.report import REPORT_PATH  # noqa: F401  (summaries draw into plots/)

    params = {"censor": {"lambdas": [1.0]}}
    section = cs.summarize(cfg, params)
    env = section.summary["envelope"]["f1_seen"]
    assert set(env) == {"thresholds", *cs.METHODS}
    assert "Fig. 2" in section.markdown and (in_tmp / "plots/censor/summary/fig2_tradeoff.png").exists()
    dsim = section.summary["similarity_adversary"]
    assert set(dsim) == {"sct", "lsm"}
    assert dsim["sct"]["adversary_loss"] == pytest.approx(min(first["sct-1.0-0"]["step1"]["adversary_loss"]))
    assert ("D_sim did not learn" in section.markdown) == (not all(v["learned"] for v in dsim.values()))
    from replab.papers.censor.report import _claim_texts, claim_words

    lines = section.markdown.splitlines()
    for claim, holds in section.summary["claims"].items():  # the report's words follow the claim values
        line = next(ln for ln in lines if ln.startswith(f"- {_claim_texts()[claim]}: "))
        mark = (" (within the seeds' spread)" * section.summary["claims_within_spread"][claim]
                + " (near its margin)" * section.summary["claims_near_margin"][claim])
        assert line.startswith(f"- {_claim_texts()[claim]}: **{claim_words(holds)}**{mark} (")
    assert set(section.summary["claims_within_spread"]) == set(section.summary["claims"])
    assert set(section.summary["claims_near_margin"]) == set(section.summary["claims"])
    # two repetitions of 40 pairs: D_sim stays at chance, so no claim on SCT or LSM is checkable (they would test
    # the failed adversary, not the method); the claims on AFL alone keep their verdicts
    assert not dsim["sct"]["learned"] and not dsim["lsm"]["learned"]
    on_similarity = [c for c in section.summary["claims"] if {"sct", "lsm"} & set(c.split("_"))]
    assert on_similarity and all(section.summary["claims"][c] is None for c in on_similarity)
    assert all("did not learn (below)" in next(ln for ln in lines if ln.startswith(f"- {_claim_texts()[c]}: "))
               for c in on_similarity)


TINY_CFG = {
    "dataset": "har", "methods": ["sct"], "lambdas": [1.0], "seeds": [0],
    "encoder": {"filters": [4, 4], "fc": 16},
    "pretrain": {"epochs": 2, "lr": 0.003, "batch_size": 20},
    "adversarial": {"lr": 0.001, "batch_size": 20, "adversary_samples": 40, "encoder_samples": 40, "repetitions": 2,
                    "adversary_hidden": [8], "adversary_hidden_dnn": [8, 4], "similarity_hidden": [8, 4]},
    "probe": {"hidden": [8, 4], "epochs": 2, "batch_size": 20}}


def _random_windows(n: int = 240, users: int = 4, activities: int = 3) -> cs.Windows:
    gen = torch.Generator().manual_seed(0)
    x = {k: torch.randn(n, 1, 2, 8, generator=gen) for k in ("train", "seen", "unseen")}
    y = {k: torch.randint(0, activities, (n,), generator=gen) for k in x}
    s = {k: torch.randint(0, users, (n,), generator=gen) for k in x}
    return cs.Windows(x, y, s, activities, users, "test", "random")


def test_user_probe_is_seeded_by_seed_and_checkpoint_not_by_what_ran_before():
    """The same checkpoint measured before or after another one (the global RNG anywhere) gives the same numbers:
    the probe's initial weights come from (seed, checkpoint index), never from the global RNG, which it leaves
    untouched."""
    import importlib

    censor_evaluate = importlib.import_module("replab.papers.censor.evaluate")
    data = _random_windows()
    cfg = parse(cs.Config, {"encoder": {"filters": [2], "fc": 8}, "probe": {"hidden": [16], "epochs": 2,
                                                                         "batch_size": 40}}, "censor")
    checkpoints = {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        encoder, classifier = cs.build_model(cfg, data, torch.device("cpu"))
        checkpoints[name] = {"encoder": encoder.state_dict(), "classifier": classifier.state_dict()}

    def measured(order: str, global_seed: int) -> dict:
        torch.manual_seed(global_seed)
        return {name: censor_evaluate.measure(cfg, checkpoints[name], data, torch.device("cpu"), 0, index=1)
                for name in order}

    first = measured("ab", 0)
    assert measured("ba", 123) == first
    state = torch.get_rng_state()
    z, users = torch.randn(40, 8, generator=torch.Generator().manual_seed(0)), torch.arange(40) % 4
    probes = [censor_evaluate.train_probe(cfg.probe, z, users, 4, torch.Generator().manual_seed(0), init)
              for init in (7, 7, 8)]
    assert torch.equal(torch.get_rng_state(), state)
    weights = [torch.cat([p.flatten() for p in probe.parameters()]) for probe in probes]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    assert censor_evaluate.probe_init_seed(0, 1) != censor_evaluate.probe_init_seed(0, 2)
    assert censor_evaluate.probe_init_seed(0, 1) != censor_evaluate.probe_init_seed(1, 1)


def test_evaluation_stage_measures_every_variant_as_alone_and_drops_stale_files(in_tmp):
    """`replab evaluate censor all` (the stage) gives every variant the numbers it gets evaluated alone, in
    either order, and leaves exactly one metrics file and one plot folder per variant of params.yaml."""
    import yaml

    from replab.io import read_json
    from replab.params import Runtime

    _tiny_windows(in_tmp)
    (in_tmp / "params.yaml").write_text(yaml.safe_dump({"censor": TINY_CFG}))
    cfg = parse(cs.Config, TINY_CFG, "censor")
    variants = [Variant("censor", "cnn-0", {"seed": 0}),
                Variant("censor", "sct-1.0-0", {"method": "sct", "lambda": 1.0, "seed": 0})]
    assert [v.key for v in cs.all_variants(cfg)] == [v.key for v in variants]
    runtime = Runtime(progress=False, threads=1)
    for variant in variants:
        cs.train(cfg, runtime, variant)

    def measured(order) -> dict:
        for variant in order:
            cs.evaluate(cfg, runtime, variant)
        return {v.key: read_json(v.metrics_path) for v in variants}

    alone = measured(variants)
    assert measured(variants[::-1]) == alone
    # checkpoint 0 of every method is the pretrained CNN: the same measures, user accuracy included
    assert {m: v[0] for m, v in alone["sct-1.0-0"]["history"].items()} == {
        m: alone["cnn-0"][m] for m in alone["cnn-0"]["history"]}
    (in_tmp / "metrics/censor/lsm-9.0-0.json").write_text("{}")  # a variant no longer in params.yaml
    (in_tmp / "plots/censor/variants/lsm-9.0-0").mkdir()
    cs.evaluate(cfg, runtime, Variant("censor", "all", {}))
    assert {v.key: read_json(v.metrics_path) for v in variants} == alone
    assert sorted(p.name for p in (in_tmp / "metrics/censor").iterdir()) == ["cnn-0.json", "sct-1.0-0.json"]
    assert sorted(p.name for p in (in_tmp / "plots/censor/variants").iterdir()) == ["cnn-0", "sct-1.0-0"]


def test_nan_features_stop_the_measure_with_one_line_naming_the_checkpoint():
    """A diverged encoder gives NaN features; argmax over them would pass silently as class 0."""
    import importlib

    from replab.io import NonFiniteError

    censor_evaluate = importlib.import_module("replab.papers.censor.evaluate")  # the package exports a function
    gen = torch.Generator().manual_seed(0)
    x = {k: torch.randn(12, 1, 2, 8, generator=gen) for k in ("train", "seen", "unseen")}
    y = {k: torch.arange(12) % 3 for k in x}
    s = {k: (torch.arange(12) // 3) % 4 for k in x}
    data = cs.Windows(x, y, s, 3, 4, "test", "tiny")
    cfg = parse(cs.Config, {"encoder": {"filters": [2], "fc": 4}, "probe": {"hidden": [4], "epochs": 1}}, "censor")
    encoder, classifier = cs.build_model(cfg, data, torch.device("cpu"))
    broken = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
              for k, v in encoder.state_dict().items()}
    checkpoint = {"encoder": broken, "classifier": classifier.state_dict()}
    with pytest.raises(NonFiniteError) as err:
        censor_evaluate.measure(cfg, checkpoint, data, torch.device("cpu"), 0, "censor sct-1.0-0 (checkpoint 2)")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("censor sct-1.0-0 (checkpoint 2): features z of the seen split: ")
    healthy = censor_evaluate.measure(cfg, {"encoder": encoder.state_dict(), "classifier": classifier.state_dict()},
                                      data, torch.device("cpu"), 0)
    assert 0 <= healthy["user_accuracy"] <= 100


def test_another_variants_model_is_not_credited_to_this_one(tmp_path):
    """afl_mlp's folder copied into sct's: train.json's method is not the variant's → one-line DataError."""
    from replab import runtime as rt
    from replab.io import DataError

    folder = tmp_path / "models/censor/sct-0.2-0"
    rt.save_trained(folder, {"checkpoints": []}, {"method": "afl_mlp", "lambda": 0.2, "seed": 0, "run": {}})
    assert rt.load_trained(folder, "cpu", ("checkpoints",), {"method": "afl_mlp", "lambda": 0.2, "seed": 0})
    with pytest.raises(DataError, match=r"train.json: method = 'afl_mlp', but this variant's is 'sct'"):
        rt.load_trained(folder, "cpu", ("checkpoints",), {"method": "sct", "lambda": 0.2, "seed": 0})
    with pytest.raises(DataError, match=r"model.pt: weights: missing"):
        rt.load_trained(folder, "cpu", ("weights",))
    # model.pt alone copied in from another variant (λ = 1.0), or edited: its train.json's sha256 no longer matches
    other = tmp_path / "models/censor/afl_mlp-1.0-0"
    rt.save_trained(other, {"checkpoints": [1]}, {"method": "afl_mlp", "lambda": 1.0, "seed": 0, "run": {}})
    shutil.copyfile(other / "model.pt", folder / "model.pt")
    with pytest.raises(DataError, match=rf"^{folder}/model.pt: not the model.pt its train.json was written with "
                                        r"\(sha256 [0-9a-f]{12}…, train.json's model_sha256 [0-9a-f]{12}…\)"):
        rt.load_trained(folder, "cpu", ("checkpoints",), {"method": "afl_mlp", "lambda": 0.2, "seed": 0})
    assert rt.load_trained(other, "cpu", ("checkpoints",))[0] == {"checkpoints": [1]}
    # train.json without its model_sha256 (edited by hand) had turned the check off
    from replab.io import NonFiniteError, read_json, sha256_file, write_json
    write_json(other / "train.json", {k: v for k, v in read_json(other / "train.json").items() if k != "model_sha256"})
    with pytest.raises(DataError, match=rf"^{other}/train.json: model_sha256: missing \(model.pt's sha256"):
        rt.load_trained(other, "cpu", ("checkpoints",))
    # a NaN weight, its sha256 recorded (save_trained refuses one): evaluated, every measure had been null, exit 0
    torch.save({"checkpoints": [torch.tensor([0.5, float("nan")])]}, other / "model.pt")
    write_json(other / "train.json", {"model_sha256": sha256_file(other / "model.pt")})
    with pytest.raises(NonFiniteError, match=rf"^{other}/model.pt: checkpoints.0: 1 of 2 values are NaN or infinite "
                                             r"\(first at flat index 1\); a diverged model's weights; rerun the"):
        rt.load_trained(other, "cpu", ("checkpoints",))


def _write_censor_metrics() -> tuple[cs.Config, dict]:
    """metrics/censor/ of a sweep of the CNN and SCT at λ = 1, seed 0, as evaluate.py writes them (two repetitions)."""
    from replab.io import write_json

    run = {"device": "cpu", "device_name": "cpu", "torch": "2", "python": "3", "threads": 1, "seed": 0,
           "data_source": "har (test)", "seconds": 1.0, "samples_per_s": 10.0}
    history = {"f1_seen": [80.0, 78.0, 77.0], "f1_unseen": [60.0, 59.0, 58.0], "user_accuracy": [70.0, 50.0, 40.0]}
    common = {"chance_user_accuracy": 25.0, "dataset": "har", "counts": {"train": 10, "seen": 2, "unseen": 4},
              "run": run}
    write_json("metrics/censor/cnn-0.json", {"method": "cnn", "lambda": None, "seed": 0, "f1_seen": 80.0,
                                             "f1_unseen": 60.0, "user_accuracy": 70.0, **common, "history": {
                                                 k: v[:1] for k, v in history.items()}})
    write_json("metrics/censor/sct-1.0-0.json", {
        "method": "sct", "lambda": 1.0, "seed": 0, **{k: v[-1] for k, v in history.items()}, **common,
        "history": history, "step1": {"adversary_loss": [0.6, 0.65], "adversary_accuracy": [66.0, 60.0]}})
    return parse(cs.Config, {"dataset": "har", "methods": ["sct"], "lambdas": [1.0], "seeds": [0],
                             "adversarial": {"repetitions": 2}}, "censor"), {
        "censor": {"lambdas": [1.0]}}


CNN, SCT = "metrics/censor/cnn-0.json", "metrics/censor/sct-1.0-0.json"


@pytest.mark.parametrize("file, key, value, message", [
    (CNN, ["user_accuracy"], None, r"record\.user_accuracy = (None|null): must be a number"),
    (CNN, ["user_accuracy"], "NaN", r"user_accuracy = NaN: not a finite number"),
    (CNN, ["chance_user_accuracy"], "x", r"record\.chance_user_accuracy = 'x': must be a number"),
    (SCT, ["f1_seen"], 180.0, r"f1_seen = 180\.0: out of range \(allowed: 0 … 100"),
    (SCT, ["history", "user_accuracy", 1], None, r"record\.history\.user_accuracy\[1\] = (None|null): must be a "),
    (SCT, ["history", "f1_unseen"], [60.0], r"record\.history\.f1_unseen: 1 values for 3 in f1_seen"),
    (SCT, ["step1", "adversary_loss", 0], "0.6", r"record\.step1\.adversary_loss\[0\] = '0\.6': must be a number"),
    (SCT, ["method"], "bogus", r"record\.method = 'bogus': not allowed \(allowed: cnn, afl_mlp, afl_dnn, sct, lsm"),
    (SCT, ["run", "seconds"], 10**400, r"run\.seconds = 1000+…: not a number in 0 … 1e\+100"),
    # a file of another run: its key's axes, params.yaml's data set and repetitions
    (SCT, ["lambda"], 2.5, r"lambda = 2\.5, expected 1\.0 from its key and params\.yaml \(params\.yaml changed since "),
    (CNN, ["method"], "sct", r"method = 'sct', expected 'cnn' from its key"),
    (SCT, ["dataset"], "usc_had", r"dataset = 'usc_had', expected 'har' from its key and params\.yaml"),
    (SCT, ["history"], {k: [50.0] * 4 for k in ("f1_seen", "f1_unseen", "user_accuracy")},
     r"history = 4 values, expected 3 values from params\.yaml's censor\.adversarial\.repetitions \(params"),
], ids=["null", "nan", "string", "out-of-range", "history-null", "history-short", "step1-string", "method",
        "huge-seconds", "lambda", "cnn-method", "dataset", "repetitions"])
def test_a_damaged_metrics_file_stops_the_censor_report_naming_file_and_key(in_tmp, file, key, value, message):
    """A null user accuracy in cnn-0.json crashed a comparison inside the report, and the one-line error named
    another file (the last value read: lsm-2.5-0.json's step1); a string passed into the means. Every value the
    report reads is checked first (evaluate.py always defines them: null is a damaged file, not a "–")."""
    import json
    import re
    from pathlib import Path

    cfg, params = _write_censor_metrics()
    cs.summarize(cfg, params)  # the undamaged files report
    record = json.loads(Path(file).read_text())
    node = record
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    text = json.dumps(record).replace('"NaN"', "NaN")  # NaN as a hand edit writes it
    Path(file).write_text(text)
    with pytest.raises(DataError) as err:
        cs.summarize(cfg, params)
    assert str(err.value).startswith(f"{file}: ") and re.search(message, str(err.value)), str(err.value)
    hint = "run `dvc repro`, which reruns what" if "expected" in message else "run `dvc repro -s -f eval_censor`"
    assert "\n" not in str(err.value) and hint in str(err.value)


def test_fig2_envelope_line_holds_the_next_points_value_between_two_points():
    """Between two points, (F1 80, user 30 %) and (F1 90, user 60 %), the lowest user accuracy with F1 ≥ 85 is the
    second point's 60 %: the line had held the first's 30 % (steps-post), drawing the envelope too low there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cbook import STEP_LOOKUP_MAP

    from replab.papers.censor.report import draw_envelope

    fig, ax = plt.subplots()
    line = draw_envelope(ax, np.array([90.0, 80.0]), np.array([60.0, 30.0]), color="tab:red")
    xs, ys = STEP_LOOKUP_MAP[line.get_drawstyle()](line.get_xdata(), line.get_ydata())
    plt.close(fig)
    level = [y0 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]) if x0 < 85 < x1 and y0 == y1]  # horizontal runs
    assert level == [60.0]
    assert list(zip(xs, ys))[-1] == (90.0, 60.0)  # ends at the last point: no F1 above it
