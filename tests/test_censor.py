"""censor (seed 002): losses by hand, pair sampling, envelope and F1 measures, a tiny end-to-end run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import run_variants, without_timing
from replab.cli import Variant, parse_variant
from replab.data.recordings import WindowingConfig, split_windows, write_windows
from replab.papers import censor as cs
from replab.params import ParamError, parse

# ---------------------------------------------------------------------------------------------------------
# Losses (Eq. 1–5) against hand-computed values


def test_afl_encoder_loss_is_label_ce_minus_lambda_user_ce():
    label_logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax (0.25, 0.75)
    user_logits = torch.tensor([[math.log(4.0), 0.0, 0.0]])  # softmax (4/6, 1/6, 1/6)
    y, s = torch.tensor([1]), torch.tensor([2])
    expected = -math.log(0.75) - 0.5 * (-math.log(1 / 6))
    assert cs.afl_encoder_loss(label_logits, y, user_logits, s, 0.5).item() == pytest.approx(expected, abs=1e-6)


def test_similarity_and_flipped_confusion_losses():
    logits = torch.tensor([math.log(3.0), 0.0])  # q = 0.75, 0.5
    g = torch.tensor([1.0, 0.0])
    eq2 = -(math.log(0.75) + math.log(0.5)) / 2  # −[g log q + (1 − g) log(1 − q)]
    eq4 = -(math.log(0.25) + math.log(0.5)) / 2  # −[(1 − g) log q + g log(1 − q)]
    assert cs.similarity_loss(logits, g).item() == pytest.approx(eq2, abs=1e-6)
    assert cs.confusion_loss(logits, g).item() == pytest.approx(eq4, abs=1e-6)


def test_similarity_maximisation_pulls_same_activity_pairs_together():
    logits = torch.tensor([math.log(4.0), math.log(4.0)])  # q = 0.8 for both pairs
    same_activity = torch.tensor([1.0, 0.0])  # G_np, G_nn
    expected = -(math.log(0.8) + math.log(0.2)) / 2  # Eq. 5
    assert cs.similarity_maximisation_loss(logits, same_activity).item() == pytest.approx(expected, abs=1e-6)


def test_pair_label_loss_is_the_mean_over_both_samples():
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    expected = 0.5 * (-math.log(0.5) - math.log(0.75))
    assert cs.pair_label_loss(a, torch.tensor([0]), b, torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)


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


def test_variant_keys_and_axes():
    cfg = parse(cs.Config, {"lambdas": [0.5, 1]}, "censor")
    assert cfg.lambdas == [0.5, 1.0]
    # DVC's matrix key spells an integer λ as `1`: the CLI still accepts it
    v = parse_variant("censor", "sct-1-0", ["method=sct", "lambda=1", "seed=0"], cfg, cs.axes_for("sct-1-0"))
    assert v.axes == {"method": "sct", "lambda": 1.0, "seed": 0}
    assert cs.axes_for("cnn-0") == {"seed": "seeds"}
    with pytest.raises(ParamError, match="lambda"):
        parse_variant("censor", "sct-3-0", ["method=sct", "lambda=3", "seed=0"], cfg, cs.AXES)


def test_config_rejects_an_encoder_that_leaves_no_time_steps():
    with pytest.raises(ParamError, match=r"censor\.encoder"):
        parse(cs.Config, {"encoder": {"filters": [8, 8, 8, 8, 8]}}, "censor")


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
            assert 0.0 <= rec[measure] <= 100.0
    assert without_timing(run_variants(cs, cfg, variants)) == without_timing(first)

    from replab.report import REPORT_PATH  # noqa: F401  (summaries draw into plots/)

    params = {"censor": {"lambdas": [1.0]}}
    section = cs.summarize(cfg, params)
    env = section.summary["envelope"]["f1_seen"]
    assert set(env) == {"thresholds", *cs.METHODS}
    assert "Fig. 2" in section.markdown and (in_tmp / "plots/censor/summary/fig2_tradeoff.png").exists()
