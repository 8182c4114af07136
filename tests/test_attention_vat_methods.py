"""attention_vat (source 004): the network's padding handling, the perturbations of the nine methods (Eq. 1–10)
against hand computations, and a tiny deterministic end-to-end run of every method."""

from __future__ import annotations

import importlib
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import without_timing
from replab.io import DataError, read_json, write_json, write_manifest
from replab.papers import Variant, parse_variant
from replab.params import ParamError, Runtime, parse

M = importlib.import_module("replab.papers.attention_vat.model")
T = importlib.import_module("replab.papers.attention_vat.train")

VOCAB = 30


def _model(seed=0, dtype=torch.double, **kw):
    torch.manual_seed(seed)
    return M.AttentionClassifier(VOCAB, embedding_dim=8, hidden=6, attention_dim=5, **kw).to(dtype)


def _batch(seed=0, n=6, length=9, pad_id=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    lengths[0] = length
    tokens = torch.randint(2, VOCAB, (n, length), generator=g)
    tokens[~M.real_mask(lengths, length)] = pad_id
    y = torch.randint(0, 2, (n,), generator=g).double()
    return tokens, lengths, y


def _cfg(**kw):
    return parse(M.Config, {"dataset": "rt_snippets", "datasets": ["rt_snippets"], "embedding_dim": 8, "hidden": 6,
                            "attention_dim": 5, **kw}, "attention_vat")


# ---------------------------------------------------------------------------------------------------------
# The network: padding never matters


def test_bilstm_equals_a_packed_bidirectional_lstm():
    """The masked BiLSTM (backward direction reversed within each length) gives exactly the states of PyTorch's
    packed bidirectional LSTM with the same weights, 0 on padding."""
    model = _model()
    tokens, lengths, _ = _batch()
    ref = nn.LSTM(8, 6, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref, name).copy_(getattr(model.lstm_forward, name))
            getattr(ref, f"{name}_reverse").copy_(getattr(model.lstm_backward, name))
    e = model.embedding(tokens)
    packed = nn.utils.rnn.pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=tokens.shape[1])
    h = model.encode(tokens, lengths).h
    torch.testing.assert_close(h, expected, rtol=0, atol=1e-12)


def test_attention_is_zero_on_padding_and_sums_to_one():
    out = _model()(*_batch()[:2])
    assert bool((out.attention[~out.mask] == 0).all()) and bool((out.scores[~out.mask] == 0).all())
    torch.testing.assert_close(out.attention.sum(1), torch.ones(len(out.logit), dtype=torch.double))


@pytest.mark.parametrize("method", M.METHODS)
def test_no_method_perturbs_or_attends_to_padding(method):
    """Other ids in the padding positions and extra padding columns: the same loss (Eq. 10), the same parameter
    gradients, and (for the perturbation itself) nothing added on padding."""
    cfg = _cfg(neighbours=3)
    tokens, lengths, y = _batch()
    other = tokens.clone()
    pad = ~M.real_mask(lengths, tokens.shape[1])
    other[pad] = torch.randint(2, VOCAB, (int(pad.sum()),), generator=torch.Generator().manual_seed(5))
    wider = torch.cat([other, torch.randint(2, VOCAB, (len(tokens), 3))], dim=1)
    results = []
    for toks in (tokens, other, wider):
        model = _model()
        neighbours = M.nearest_neighbours(model.embedding.weight, cfg.neighbours)
        loss = T.training_loss(model, cfg, method, toks, lengths, y, torch.Generator().manual_seed(1), neighbours)[0]
        loss.backward()
        results.append((loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}))
    (l0, g0), (l1, g1), (l2, g2) = results
    torch.testing.assert_close(l1, l0, rtol=0, atol=0)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=0, atol=0)
    if "vat" not in method:  # VAT's random start is drawn over [B, T]: a wider batch draws other numbers
        torch.testing.assert_close(l2, l0, rtol=1e-10, atol=1e-12)
        for k in g0:
            torch.testing.assert_close(g2[k], g0[k], rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------
# Perturbations against hand computations


def _per_sentence_norms(r, lengths):
    mask = M.real_mask(lengths, r.shape[1])
    flat = (r * (mask if r.dim() == 2 else mask[..., None])).flatten(1)
    return flat.norm(dim=1), mask


def test_at_perturbation_is_eps_g_over_norm_per_sentence():
    model = _model()
    tokens, lengths, y = _batch()
    enc = model.encode(tokens, lengths)
    logit, _ = model.attend(enc.h, enc.scores, enc.mask)
    loss = M.nll(logit, y)
    g_word, g_score = torch.autograd.grad(loss, (enc.embedded, enc.scores))
    for g, eps in ((g_word, 5.0), (g_score, 1.0)):
        r = M.at_perturbation(g, enc.mask, eps)
        for b in range(len(tokens)):
            k = int(lengths[b])
            gb = g[b, :k].numpy()
            np.testing.assert_allclose(r[b, :k].numpy(), eps * gb / np.linalg.norm(gb), rtol=1e-12)
            assert bool((r[b, k:] == 0).all())
    # the NLL gradient at padding is 0 anyway; the normalisation never spreads r there


def test_a_gradient_too_small_to_square_still_gives_a_perturbation_of_norm_eps():
    """The squares of a 1e-25 gradient underflow in float32 (‖g‖ = 0): divided by its max |g| first (Miyato's
    _scale_l2), the sentence still gets its direction at norm ε; ordinary gradients are normalised as before."""
    mask = torch.tensor([[True, True, False], [True, True, True]])
    g = torch.tensor([[3e-25, -4e-25, 7.0], [3.0, 4.0, 0.0]])
    assert float(g[0, :2].norm()) == 0.0  # what a plain normalisation would divide by
    assert torch.allclose(M.at_perturbation(g, mask, 2.0), torch.tensor([[1.2, -1.6, 0.0], [1.2, 1.6, 0.0]]))
    g_word = g[..., None].expand(-1, -1, 4)  # [B, T, d]: normalised jointly over T and d
    assert torch.allclose(M.at_perturbation(g_word, mask, 2.0), torch.tensor(
        [[0.6, -0.8, 0.0], [0.6, 0.8, 0.0]])[..., None].expand(-1, -1, 4))
    assert not M.at_perturbation(torch.zeros(2, 3), mask, 2.0).any()  # no gradient: no perturbation
    for scale in (1e-13, 1e-14, 1e-20):  # between the underflow and the 1e-12 guard too
        r = M.at_perturbation(g * scale, mask, 2.0)
        assert torch.allclose(r.norm(dim=1), torch.tensor([2.0, 2.0])), scale
    # iAT on the attention scores at a saturated output: still the sign step ε·sign(g_t)/√T (alpha_norm: token)
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.5]])
    g_att, full = torch.tensor([[1.0, -0.01, 0.5, 2.0]]), torch.ones(1, 4, dtype=torch.bool)
    for scale in (1.0, 1e-20):
        direction, _ = M.combine_directions(g_att * scale, M.attention_differences(scores, full), full)
        assert torch.allclose(direction, torch.tensor([[0.5, -0.5, 0.5, 0.5]]), atol=1e-6), scale


def _kl_closures(model, tokens, lengths, level):
    with torch.no_grad():
        enc = model.encode(tokens, lengths)
        ref = model.attend(enc.h, enc.scores, enc.mask)[0]
    if level == "attention":
        return lambda r: M.kl_binary(ref, model.attend(enc.h, enc.scores, enc.mask, r)[0]), enc
    return lambda r: M.kl_binary(ref, model(tokens, lengths, r_emb=r).logit), enc


@pytest.mark.parametrize("level", ["word", "attention"])
def test_vat_perturbation_has_norm_eps_and_beats_random_directions(level):
    model = _model(seed=3)
    tokens, lengths, _ = _batch(seed=2)
    kl_at, enc = _kl_closures(model, tokens, lengths, level)
    base = enc.embedded if level == "word" else enc.scores
    eps = 2.0 if level == "word" else 1.0
    gen = torch.Generator().manual_seed(0)
    r = M.vat_perturbation(kl_at, M.random_direction(base, enc.mask, gen), enc.mask, eps, xi=1e-3, iterations=2)
    norms, mask = _per_sentence_norms(r, lengths)
    torch.testing.assert_close(norms, torch.full_like(norms, eps))
    assert bool((r[~mask] == 0).all())
    kl_vat = kl_at(r).item()
    random_kls = [kl_at(eps * M.random_direction(base, enc.mask, gen)).item() for _ in range(20)]
    assert kl_vat > max(random_kls) > 0


def test_attention_differences_by_hand():
    scores = torch.tensor([[1.0, 2.0, 4.0, 0.0]], dtype=torch.double)
    mask = torch.tensor([[True, True, True, False]])
    d = M.attention_differences(scores, mask)
    # d_1 = (0, −1, −3, pad) / √10, d_2 = (1, 0, −2) / √5, d_3 = (3, 2, 0) / √13 (Eq. 5–6); padding row/column 0
    expected = torch.tensor([[[0, -1, -3, 0], [1, 0, -2, 0], [3, 2, 0, 0], [0, 0, 0, 0]]], dtype=torch.double)
    expected[0, :3] /= torch.tensor([math.sqrt(10), math.sqrt(5), math.sqrt(13)], dtype=torch.double)[:, None]
    torch.testing.assert_close(d, expected)


@pytest.mark.parametrize("alpha_norm", ["token", "sentence"])
def test_attention_ivat_lies_in_the_span_of_the_difference_vectors(alpha_norm):
    """Eq. 5–9: α_t lies in the span of d̄_t (it is ∂KL/∂α_t = g_t·d̄_t, normalised), r_t = α_tᵀ d̄_t (Eq. 7),
    ‖r‖₂ = ε per sentence, 0 on padding. Per-token normalisation gives |r_t| equal over the real tokens."""
    model = _model(seed=4)
    tokens, lengths, _ = _batch(seed=3)
    kl_at, enc = _kl_closures(model, tokens, lengths, "attention")
    d_bar = M.attention_differences(enc.scores, enc.mask)
    start = M.uniform_alpha_direction(d_bar, enc.mask)
    eps, xi = 1.5, 0.1
    r = M.vat_perturbation(kl_at, start, enc.mask, eps, xi, 1, d_bar, alpha_norm)
    # the same step by hand: the gradient at ξ·start, α from it, then Eq. 7
    r0 = (xi * start).requires_grad_(True)
    (g,) = torch.autograd.grad(kl_at(r0), r0)
    _, alpha = M.combine_directions(g, d_bar, enc.mask, alpha_norm)
    norms, mask = _per_sentence_norms(r, lengths)
    torch.testing.assert_close(norms, torch.full_like(norms, eps))
    assert bool((r[~mask] == 0).all())
    for b in range(len(tokens)):
        k = int(lengths[b])
        dd, aa = d_bar[b, :k, :k].numpy(), alpha[b, :k, :k].numpy()
        for t in range(k):
            # α_t ∥ d̄_t: the rank of [α_t; d̄_t] is 1
            assert np.linalg.matrix_rank(np.stack([aa[t], dd[t]]), tol=1e-9) == 1
        eq7 = (aa * dd).sum(1)  # r(α_t) = α_tᵀ d̄_t
        np.testing.assert_allclose(r[b, :k].numpy(), eps * eq7 / np.linalg.norm(eq7), rtol=1e-9, atol=1e-12)
        if alpha_norm == "token":
            np.testing.assert_allclose(np.abs(r[b, :k].numpy()), eps / math.sqrt(k), rtol=1e-9)


def test_word_directions_point_to_the_k_nearest_embeddings():
    torch.manual_seed(0)
    weight = torch.randn(VOCAB, 8, dtype=torch.double)
    k = 4
    nn_ids = M.nearest_neighbours(weight, k, chunk=7)  # chunked like a large vocabulary
    w = weight.numpy() / np.linalg.norm(weight.numpy(), axis=1, keepdims=True)
    sim = w @ w.T
    np.fill_diagonal(sim, -np.inf)
    sim[:, [0, 1]] = -np.inf  # pad and unk are never neighbours
    np.testing.assert_array_equal(nn_ids.numpy(), np.argsort(-sim, axis=1, kind="stable")[:, :k])
    tokens, lengths, _ = _batch()
    dirs = M.word_directions(tokens, weight, nn_ids)
    b, t = 1, 0
    for j in range(k):
        diff = weight[nn_ids[tokens[b, t], j]] - weight[tokens[b, t]]
        torch.testing.assert_close(dirs[b, t, j], diff / diff.norm())


@pytest.mark.parametrize("kind", ["iat", "ivat"])
def test_word_iat_and_ivat_perturb_only_towards_neighbours(kind):
    """Each token's r_t is a combination of its k neighbour directions (least-squares residual 0); norm ε."""
    cfg = _cfg(neighbours=3)
    model = _model()
    tokens, lengths, y = _batch()
    nn_ids = M.nearest_neighbours(model.embedding.weight, 3)
    dirs = M.word_directions(tokens, model.embedding.weight, nn_ids)
    enc = model.encode(tokens, lengths)
    if kind == "iat":
        loss = M.nll(model.attend(enc.h, enc.scores, enc.mask)[0], y)
        (g,) = torch.autograd.grad(loss, enc.embedded)
        r = cfg.eps_word_interpretable * M.combine_directions(g, dirs, enc.mask)[0]
    else:
        kl_at, _ = _kl_closures(model, tokens, lengths, "word")
        r = M.vat_perturbation(kl_at, M.uniform_alpha_direction(dirs, enc.mask), enc.mask,
                               cfg.eps_word_interpretable, cfg.xi, 1, dirs)
    norms, mask = _per_sentence_norms(r, lengths)
    torch.testing.assert_close(norms, torch.full_like(norms, cfg.eps_word_interpretable))
    for b in range(len(tokens)):
        for t in range(int(lengths[b])):
            basis = dirs[b, t].detach().numpy().T  # [d, k]
            coef, *_ = np.linalg.lstsq(basis, r[b, t].detach().numpy(), rcond=None)
            np.testing.assert_allclose(basis @ coef, r[b, t].detach().numpy(), atol=1e-9)


def test_kl_binary_by_hand():
    ref, logit = torch.tensor([math.log(3.0)]), torch.tensor([0.0])  # p = 0.75, q = 0.5
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert M.kl_binary(ref, logit).item() == pytest.approx(expected, abs=1e-7)
    assert M.kl_binary(ref, ref).item() == pytest.approx(0.0, abs=1e-7)


def test_variant_axes_and_keys():
    cfg = _cfg(semi_methods=["attention_vat"])
    key = M.variant_key("rt_snippets", "attention_vat", "semi", 0)
    v = parse_variant("attention_vat", key, ["dataset=rt_snippets", "method=attention_vat", "setting=semi", "seed=0"],
                      cfg, M.axes_for(key))
    assert v.axes == {"dataset": "rt_snippets", "method": "attention_vat", "setting": "semi", "seed": 0}
    with pytest.raises(ParamError, match="semi_methods"):  # word_at has no semi-supervised variant
        parse_variant("attention_vat", "rt_snippets-word_at-semi-0",
                      ["dataset=rt_snippets", "method=word_at", "setting=semi", "seed=0"], cfg,
                      M.axes_for("rt_snippets-word_at-semi-0"))
    assert M.axes_for("fig2-rt_snippets-word-0") == {"dataset": "datasets", "family": "fig2_families", "seed": "seeds"}
    keys = [k for k, _ in M.sweep_variants(cfg)]
    assert len(keys) == 9 + 1 + 2 and keys[-2:] == ["fig2-rt_snippets-word-0", "fig2-rt_snippets-attention-0"]
    # a Fig. 2 stage whose family has no method in fig2.methods trains nothing: no variant to evaluate
    one = [k for k, _ in M.sweep_variants(replace(cfg, fig2=M.Fig2Config(methods=["attention_ivat"])))]
    assert one == keys[:-2] + ["fig2-rt_snippets-attention-0"]
    # the Fig. 2 families are those of the semi-supervised methods (vanilla has none)
    assert M.FIG2_FAMILIES == tuple(dict.fromkeys(M.method_family(m) for m in M.SEMI_METHODS))
    with pytest.raises(ParamError, match=r"^attention_vat variant fig2-rt_snippets-vanilla-0: family='vanilla' is not "
                                         r"in the sweep \(allowed: word, attention\)$"):
        parse_variant("attention_vat", "fig2-rt_snippets-vanilla-0", ["dataset=rt_snippets", "family=vanilla",
                      "seed=0"], cfg, M.axes_for("fig2-rt_snippets-vanilla-0"))
    # a training stage: every method of one family in one setting, each in its own subfolder named by the variant
    stage = M.group_key("rt_snippets", "semi", "attention", 0)
    assert stage == "rt_snippets-semi-attention-0"
    assert parse_variant("attention_vat", stage, ["dataset=rt_snippets", "setting=semi", "family=attention", "seed=0"],
                         cfg, M.axes_for(stage)).axes == {"dataset": "rt_snippets", "setting": "semi",
                                                          "family": "attention", "seed": 0}
    # families and settings are fixed by the code, not params.yaml keys: the message names the variant, not a key
    with pytest.raises(ParamError, match=r"^attention_vat variant rt_snippets-semi-char-0: family='char' is not in the "
                                         r"sweep \(allowed: vanilla, word, attention\)$"):
        parse_variant("attention_vat", "rt_snippets-semi-char-0",
                      ["dataset=rt_snippets", "setting=semi", "family=char", "seed=0"], cfg,
                      M.axes_for("rt_snippets-semi-char-0"))
    with pytest.raises(ParamError, match=r"^params.yaml: attention_vat.seeds: variant seed='7' is not in the sweep"):
        parse_variant("attention_vat", "rt_snippets-semi-word-7",
                      ["dataset=rt_snippets", "setting=semi", "family=word", "seed=7"], cfg,
                      M.axes_for("rt_snippets-semi-word-7"))
    # "vanilla" is a method and a family: a variant key has a method where a stage key has its setting
    assert M.axes_for("rt_snippets-vanilla-supervised-0") == M.AXES
    assert M.axes_for("rt_snippets-supervised-vanilla-0")["family"] == "families"
    assert M.variant_dir(key, v.axes).as_posix() == "rt_snippets-semi-attention-0/rt_snippets-attention_vat-semi-0"
    assert [M.method_family(m) for m in M.METHODS] == ["vanilla"] + ["word"] * 4 + ["attention"] * 4
    assert M.setting_methods(_cfg(), "supervised", "word") == ["word_at", "word_iat", "word_vat", "word_ivat"]
    assert M.variant_dir("fig2-rt_snippets-word-0", {"dataset": "rt_snippets", "family": "word", "seed": 0}
                         ).as_posix() == "fig2-rt_snippets-word-0"
    with pytest.raises(ParamError, match=r"every method of one family \(vanilla, word, attention\) in a setting; "
                                             r"its key is <dataset>-<setting>-<family>-<seed> dataset=…"):
        T.train(cfg, Runtime(progress=False, threads=1), v)  # one method alone is no training stage


# ---------------------------------------------------------------------------------------------------------
# End to end: every method, both settings and Fig. 2 on a tiny processed data set (the interface's format)


def _write_text_set(root, name="rt_snippets", vocab=40):
    """train/dev/test/unlabeled.npz, vocab.json, meta.json: the sentiment is carried by a few cue words."""
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir(parents=True)

    def split(n, labeled=True):
        lengths = rng.integers(3, 11, n)
        tokens = np.zeros((n, lengths.max()), np.int64)
        labels = rng.integers(0, 2, n)
        for i, k in enumerate(lengths):
            tokens[i, :k] = rng.integers(6, vocab, k)
            tokens[i, rng.integers(0, k)] = 2 + labels[i] * 2 + rng.integers(0, 2)  # cues 2,3 (neg) / 4,5 (pos)
        arrays = {"tokens": tokens, "lengths": lengths.astype(np.int64)}
        if labeled:
            arrays["labels"] = labels.astype(np.int64)
        return arrays
    for name_, n in (("train", 48), ("dev", 24), ("test", 24)):
        np.savez(folder / f"{name_}.npz", **split(n))
    np.savez(folder / "unlabeled.npz", **split(150, labeled=False))
    (folder / "vocab.json").write_text(json.dumps(["<pad>", "<unk>"] + [f"w{i}" for i in range(2, vocab)]))
    (folder / "meta.json").write_text(json.dumps({"source": "test", "special_ids": {"pad": 0, "unk": 1}}))
    write_manifest(folder)  # as prepare records it


def _stage(setting: str, family: str) -> Variant:
    """The training stage of one family in one setting (every method of it) on rt_snippets, seed 0."""
    return Variant("attention_vat", M.group_key("rt_snippets", setting, family, 0),
                   {"dataset": "rt_snippets", "setting": setting, "family": family, "seed": 0})


GROUPS = [("supervised", "vanilla"), ("supervised", "word"), ("supervised", "attention"), ("semi", "word"),
          ("semi", "attention")]


def _fig2_stage(family: str) -> Variant:
    return Variant("attention_vat", f"fig2-rt_snippets-{family}-0", {"dataset": "rt_snippets", "family": family,
                                                                     "seed": 0})


FIG2_STAGE = _fig2_stage("attention")


def _folder(key: str, axes: dict) -> Path:
    return Path("models/attention_vat") / M.variant_dir(key, axes)


def test_end_to_end_every_method_is_deterministic(in_tmp):
    _write_text_set(in_tmp / "data/processed")
    cfg = _cfg(epochs=2, batch_size=16, batch_unlabeled=16, neighbours=3, n_unlabeled=64,
               fig2={"methods": ["attention_vat"], "ratios": [0.0, 1.0, 2.0]})
    runtime = Runtime(progress=False, threads=1)
    variants = M.sweep_variants(cfg)
    assert len(variants) == 9 + 4 + 1

    def run():
        for stage in [_stage(*group) for group in GROUPS] + [_fig2_stage("word"), FIG2_STAGE]:
            T.train(cfg, runtime, stage)
        assert sorted(p.name for p in (in_tmp / "models/attention_vat").iterdir()) == [
            "fig2-rt_snippets-attention-0", "fig2-rt_snippets-word-0", "rt_snippets-semi-attention-0",
            "rt_snippets-semi-word-0", "rt_snippets-supervised-attention-0", "rt_snippets-supervised-vanilla-0",
            "rt_snippets-supervised-word-0"]
        # fig2.methods has no word method: that stage trains nothing, and its record and curves folder say so
        assert read_json(_fig2_stage("word").model_dir / "train.json")["curves"] == {}
        assert (in_tmp / _fig2_stage("word").live_dir).is_dir()
        return {key: read_json(_folder(key, axes) / "train.json") for key, axes in variants}

    first = run()
    for key, rec in first.items():
        if key.startswith("fig2-"):
            curve = rec["curves"]["attention_vat"]
            assert curve["n_unlabeled"] == [0, 48, 96]
            # 3 steps × 16 pool sentences an epoch: 48 by the first epoch's end, 96 by the second's
            assert curve["unlabeled_seen"] == [0, 48, 48 * curve["best_epoch"][2]]
            continue
        assert rec["n_labeled"] == 48 and len(rec["history"]) == 2 and 0 <= rec["dev_f1"] <= 100
        assert rec["dev_auc"] == max(h["dev_auc"] for h in rec["history"])  # the selected epoch (dev AUC)
        assert rec["n_unlabeled"] == (64 if rec["setting"] == "semi" else 0)
        if rec["setting"] == "semi":  # 48 of the 64 drawn in epoch 1; epoch 2 ends the first pass over the pool
            assert [h["unlabeled_seen"] for h in rec["history"]] == [48, 64]
            assert rec["unlabeled_seen"] == rec["history"][rec["best_epoch"] - 1]["unlabeled_seen"]
        else:
            assert rec["unlabeled_seen"] == 0 and "unlabeled_seen" not in rec["history"][0]
        assert math.isfinite(rec["history"][-1]["loss"])
        if rec["method"] != "vanilla":
            assert rec["history"][0]["adv"] > 0  # the second term of Eq. 10 is there
        model, config = M.load_model(_folder(key, dict(variants)[key]), torch.device("cpu"))
        assert config["vocab_size"] == 40 and not model.training
    # the semi-supervised run differs from the supervised one of the same method (the pool is used)
    assert first["rt_snippets-attention_vat-semi-0"]["history"] != first["rt_snippets-attention_vat-supervised-0"][
        "history"]

    def strip(records):
        out = {}
        for key, rec in records.items():
            rec = dict(rec)
            rec.pop("seconds_per_step", None)
            if "curves" in rec:
                rec["curves"] = {m: {k: v for k, v in c.items() if k != "seconds_per_step"}
                                 for m, c in rec["curves"].items()}
            out[key] = rec
        return without_timing(out)
    assert strip(run()) == strip(first)


def test_fig2_takes_the_runs_of_the_training_stages_and_they_equal_its_own(in_tmp, capsys, monkeypatch):
    """Fig. 2's N_ul = 0 point is the supervised model's run and its N_ul = n_unlabeled point the semi-supervised one's
    (same params, seed, data and code: the same `fit_signature`): the stage takes their records instead of training
    them again, and only the point between is trained. The records taken equal what the stage trains itself with no
    such runs beside it; with other epochs for Fig. 2 (another run) nothing is taken."""
    _write_text_set(in_tmp / "data/processed")
    runtime = Runtime(progress=False, threads=1)
    cfg = _cfg(epochs=2, batch_size=16, batch_unlabeled=16, n_unlabeled=48, methods=["attention_vat"],
               semi_methods=["attention_vat"], fig2={"methods": ["attention_vat"], "ratios": [0.0, 0.5, 1.0]})

    def fig2_curve(cfg) -> dict:
        T.train(cfg, runtime, FIG2_STAGE)
        return _untimed(read_json(FIG2_STAGE.model_dir / "train.json"))["curves"]["attention_vat"]

    alone = fig2_curve(cfg)  # no training stage has run: every point trained here
    assert alone["n_unlabeled"] == [0, 24, 48] and "not trained again" not in capsys.readouterr().err
    for setting in ("supervised", "semi"):
        T.train(cfg, runtime, _stage(setting, "attention"))
    records = [read_json(_folder(key, axes) / "train.json") for key, axes in M.sweep_variants(cfg)
               if axes.get("method") == "attention_vat"]
    assert [r["n_unlabeled"] for r in records] == [0, 48]
    taken = fig2_curve(cfg)
    said = capsys.readouterr().err
    assert "attention_vat at N_ul = 0 is the run of rt_snippets-attention_vat-supervised-0" in said
    assert "attention_vat at N_ul = 48 is the run of rt_snippets-attention_vat-semi-0" in said
    assert "N_ul = 24" not in said
    assert taken == alone  # bit for bit: dev F1, AUC, accuracy, best epoch, sentences seen
    assert [taken["dev_f1"][0], taken["dev_f1"][2]] == [r["dev_f1"] for r in records]
    other = fig2_curve(replace(cfg, fig2=replace(cfg.fig2, epochs=1)))
    assert "not trained again" not in capsys.readouterr().err and other["best_epoch"] == [1, 1, 1]
    # under the very signature, a record of another N_ul (a train.json copied or edited by hand) or one short of a
    # number the curve keeps (here the % predicted positive) is no point's run: each point trained, no KeyError
    paths = [_folder(key, axes) / "train.json" for key, axes in M.sweep_variants(cfg)
             if axes.get("method") == "attention_vat"]
    for path, edit in zip(paths, (lambda r: r.pop("dev_predicted_positive"), lambda r: r.update(n_unlabeled=24)),
                          strict=True):
        edit(record := read_json(path))
        write_json(path, record)
    assert fig2_curve(cfg) == alone and "not trained again" not in capsys.readouterr().err
    # another machine's rounding (here: another SIMD level) is another run: trained, not taken
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "another SIMD level")
    assert fig2_curve(cfg) == alone and "not trained again" not in capsys.readouterr().err


def test_fit_signature_covers_the_shared_code_fit_runs():
    """The signature holds the code `fit` reaches outside this paper's files (an edit of the optimizer wrapper, the
    batches or the oneDNN layers changes what it trains), not only model.py and train.py."""
    from replab.code_closure import closure

    reached = closure("replab.papers.attention_vat.train", "fit")
    for name in ("replab.runtime:optimizer", "replab.runtime:LossGuard", "replab.batches:index_batches",
                 "replab.batches:take_batch", "replab.functional:linear",
                 "replab.papers.attention_vat.model:build_model"):
        assert name in reached, name


def test_fit_signature_holds_the_params_its_run_reads_and_no_other():
    """A run's signature changes with every param its `fit` reads and with none it does not: the supervised runs
    (N_ul = 0, which Fig. 2 takes) read no pool param, no method reads another family's ε, vanilla no ε, λ, ξ."""
    cfg, context = _cfg(), ["context"]
    sig = lambda method, n_ul=0, **changed: T.fit_signature(context, replace(cfg, **changed), method, n_ul)
    for method in ("vanilla", "word_at", "word_ivat", "attention_vat"):
        assert sig(method) == sig(method, batch_unlabeled=cfg.batch_unlabeled + 1, unlabeled_max_length=7,
                                  n_unlabeled=3, seeds=[5], eps_attention_grid=[0.5])
        assert sig(method) != sig(method, lr=cfg.lr * 2) != sig(method, hidden=cfg.hidden + 1)
    assert sig("word_vat", 20) != sig("word_vat", 20, batch_unlabeled=cfg.batch_unlabeled + 1)
    assert sig("word_vat", 20) != sig("word_vat", 20, unlabeled_max_length=7)
    for method, read, unread in (("vanilla", [], ["eps_word", "eps_attention", "lam", "xi", "neighbours"]),
                                 ("word_at", ["eps_word", "lam", "dropout_in_perturbed"],
                                  ["eps_attention", "eps_word_interpretable", "xi", "neighbours", "alpha_norm"]),
                                 ("word_ivat", ["eps_word_interpretable", "xi", "power_iterations", "neighbours",
                                                "alpha_norm"], ["eps_word", "eps_attention"]),
                                 ("attention_iat", ["eps_attention", "alpha_norm"],
                                  ["eps_word", "xi", "neighbours", "dropout_in_perturbed"])):
        for field in read + unread:
            value = getattr(cfg, field)
            other = (not value if isinstance(value, bool) else "sentence" if value == "token" else
                     "token" if isinstance(value, str) else value + 1)
            assert (sig(method) != sig(method, **{field: other})) is (field in read), (method, field)


def test_the_params_a_run_does_not_read_leave_its_record_and_weights_unchanged():
    """What `Config.reads` calls unread is unread: every method, at N_ul = 0 and > 0, trained with all of those
    params changed at once (dropout on, so that dropout_in_perturbed could matter) gives the same history and
    weights. A wrong entry would let Fig. 2 take another run's record as its own."""
    from replab.bench import synthetic_sentences
    from replab.loaders.text import TextData

    cpu = torch.device("cpu")
    (tok, ln, y), (ut, ul, _), (dt, dl, dy) = (synthetic_sentences(n, 40, length, cpu, seed=s)
                                               for n, length, s in ((48, 10, 1), (40, 12, 2), (16, 10, 3)))
    data = TextData({"train": tok, "dev": dt, "unlabeled": ut}, {"train": ln, "dev": dl, "unlabeled": ul},
                    {"train": y, "dev": dy}, 40, {"pad": 0, "unk": 1}, None, "synthetic", "bench")
    cfg = _cfg(dropout=0.3, epochs=2, batch_size=16, batch_unlabeled=8, neighbours=3)
    changed = {"batch_unlabeled": 5, "unlabeled_max_length": 7, "lam": 3.0, "eps_word": 9.0, "xi": 0.7,
               "eps_word_interpretable": 9.0, "eps_attention": 9.0, "power_iterations": 2, "alpha_norm": "sentence",
               "neighbours": 5, "dropout_in_perturbed": True}

    def run(c, method, n_ul):
        model, record = T.fit(c, method, data, n_ul, 0, cpu, Runtime(progress=False, threads=1))
        return record["history"], model.state_dict()

    for method in M.METHODS:
        for n_ul in (0, 24):
            unread = {k: v for k, v in changed.items() if not cfg.reads(method, n_ul)[k]}
            (h0, w0), (h1, w1) = run(cfg, method, n_ul), run(replace(cfg, **unread), method, n_ul)
            assert h0 == h1 and all(torch.equal(w0[k], w1[k]) for k in w0), (method, n_ul, sorted(unread))
            assert set(cfg.reads(method, n_ul)) == set(changed)


def test_semi_setting_without_a_pool_trains_with_n_ul_zero(in_tmp, capsys):
    """A data set prepared without a pool (eraser_movies): the VAT term on the labeled rows, recorded N_ul = 0."""
    _write_text_set(in_tmp / "data/processed")
    (in_tmp / "data/processed/rt_snippets/unlabeled.npz").unlink()
    write_manifest(in_tmp / "data/processed/rt_snippets")  # as prepare records a set without a pool
    cfg = _cfg(epochs=1, semi_methods=["word_vat"])
    T.train(cfg, Runtime(progress=False, threads=1), _stage("semi", "word"))
    assert read_json(_stage("semi", "word").model_dir / "rt_snippets-word_vat-semi-0/train.json")["n_unlabeled"] == 0
    assert "no unlabeled pool" in capsys.readouterr().err


def test_a_method_trained_after_others_in_one_process_equals_it_trained_alone(in_tmp):
    """A training stage trains every method of its family and setting in one process: each method's weights and
    record are those of the method trained alone (nothing carries over from the methods before it: global RNG, the batch
    generator, the data). Dropout on, so the global RNG is drawn from."""
    _write_text_set(in_tmp / "data/processed")
    runtime = Runtime(progress=False, threads=1)

    def trained(methods: list[str]) -> dict:
        cfg = _cfg(epochs=2, batch_size=16, batch_unlabeled=16, neighbours=3, n_unlabeled=64, dropout=0.2,
                   semi_methods=methods)
        stage = _stage("semi", "word")
        T.train(cfg, runtime, stage)
        folders = {m: stage.model_dir / M.variant_key("rt_snippets", m, "semi", 0) for m in methods}
        assert sorted(p.name for p in stage.model_dir.iterdir()) == sorted(p.name for p in folders.values())
        records = without_timing({m: _untimed(read_json(f / "train.json")) for m, f in folders.items()})
        return {m: (records[m], torch.load(f / "model.pt", weights_only=True)["state_dict"])
                for m, f in folders.items()}

    together = trained(["word_ivat", "word_vat"])
    for method in ("word_vat", "word_ivat"):
        record, weights = trained([method])[method]
        assert together[method][0] == record
        assert together[method][1].keys() == weights.keys()
        assert all(torch.equal(together[method][1][k], weights[k]) for k in weights), method


def _untimed(record: dict) -> dict:
    record = dict(record)
    record.pop("seconds_per_step", None)
    for curve in record.get("curves", {}).values():
        curve.pop("seconds_per_step", None)
    return record


@pytest.mark.parametrize("key", ["rt_snippets-semi-word-0", "fig2-rt_snippets-attention-0"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(in_tmp, monkeypatch, capsys, key):
    """Checkpoints at every epoch (runtime.checkpoint_every = 0); a stage killed in the second epoch of its second
    fit (method, or Fig. 2 point) resumes from the last checkpoint to the records and DVCLive curves of an
    uninterrupted run (the unlabeled stream and RNGs included), without training the first fit again."""
    _write_text_set(in_tmp / "data/processed")
    cfg = _cfg(epochs=3, batch_size=16, batch_unlabeled=16, neighbours=3, n_unlabeled=64,
               semi_methods=["word_ivat", "word_vat"], fig2={"methods": ["attention_vat"], "ratios": [0.0, 1.0]})
    runtime = Runtime(progress=False, threads=1, checkpoint_every=0)
    variant = FIG2_STAGE if key.startswith("fig2") else _stage("semi", "word")

    def results() -> dict:
        records = {str(p.relative_to(variant.model_dir)): _untimed(read_json(p))
                   for p in sorted(variant.model_dir.rglob("train.json"))}
        for rec in records.values():
            rec.pop("run")
        curves = {str(p.relative_to(variant.live_dir)): p.read_text()
                  for p in sorted(variant.live_dir.rglob("*")) if p.is_file()}
        return {"records": records, "curves": curves}

    T.train(cfg, runtime, variant)
    uninterrupted = results()
    assert len(uninterrupted["records"]) == (1 if key.startswith("fig2") else 2)
    if key.startswith("fig2"):  # a DVCLive folder per method, a row per N_ul: the curves stage's Fig. 2 chart
        tsv = uninterrupted["curves"]["fig2-rt_snippets-attention_vat-0/plots/metrics/fig2/dev_f1_by_n_unlabeled.tsv"]
        assert [row.split("\t")[0] for row in tsv.splitlines()] == ["step", "0", "48"]

    calls, real = {"n": 0}, T.dev_scores

    def stop_at_fifth(model, data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # the kill: 3 epochs of the first fit and 1 of the second saved
        return real(model, data)
    monkeypatch.setattr(T, "dev_scores", stop_at_fifth)
    shutil.rmtree(variant.model_dir)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, runtime, variant)
    assert (in_tmp / "checkpoints/attention_vat" / key / "checkpoint.pt").exists()
    shutil.rmtree(variant.model_dir, ignore_errors=True)  # as DVC does before it reruns the stage
    shutil.rmtree(variant.live_dir)
    calls["n"] = -100  # no more stops
    capsys.readouterr()
    T.train(cfg, runtime, variant)
    assert "resuming from" in capsys.readouterr().err
    assert calls["n"] == -100 + 2  # the second fit's last two epochs only
    assert results() == uninterrupted
    assert not (in_tmp / "checkpoints/attention_vat" / key / "checkpoint.pt").exists()




def test_eps_grid_keeps_each_attention_method_best_on_dev_and_resumes_mid_grid(in_tmp, monkeypatch):
    """`eps_attention_grid`: every attention method trained at each ε (its curves in <key>@eps=<ε>/), the model
    with the best dev AUC kept: bit for bit the model trained at that ε alone, its record giving the ε and every
    ε's dev score. A kill in the middle of the grid resumes to the same models without retraining the ε's done."""
    _write_text_set(in_tmp / "data/processed")
    runtime = Runtime(progress=False, threads=1, checkpoint_every=0)
    methods = ["vanilla", "attention_at", "attention_vat"]
    stage = _stage("supervised", "attention")
    grid = [0.5, 4.0]

    def trained(**kw) -> dict:
        shutil.rmtree(stage.model_dir, ignore_errors=True)
        T.train(_cfg(epochs=2, batch_size=16, methods=methods, **kw), runtime, stage)
        out = {}
        for key in (M.variant_key("rt_snippets", m, "supervised", 0) for m in ("attention_at", "attention_vat")):
            record = _untimed(read_json(stage.model_dir / key / "train.json"))
            record.pop("run")
            out[key] = (record, torch.load(stage.model_dir / key / "model.pt", weights_only=True)["state_dict"])
        return out

    with_grid = trained(eps_attention_grid=grid)
    live = sorted(p.name for p in stage.live_dir.iterdir())
    assert live == sorted(f"rt_snippets-{m}-supervised-0@eps={e:g}" for m in ("attention_at", "attention_vat")
                          for e in grid)  # vanilla is another family's stage
    for key, (record, weights) in with_grid.items():
        record = dict(record)
        dev = record.pop("eps_selection")["dev"]
        assert set(dev) == {"0.5", "4"} and record["eps"] == float(max(dev, key=dev.get))  # a tie: the first
        assert record["dev_auc"] == max(dev.values())
        alone, alone_weights = trained(eps_attention=record["eps"])[key]
        assert alone == record and all(torch.equal(alone_weights[k], weights[k]) for k in weights), key

    calls, real = {"n": 0}, T.dev_scores

    def stop_at_sixth(model, data):  # 2 epochs per fit: attention_at at both ε, then attention_vat's first ε
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(model, data)
    monkeypatch.setattr(T, "dev_scores", stop_at_sixth)
    shutil.rmtree(stage.live_dir)
    with pytest.raises(KeyboardInterrupt):
        trained(eps_attention_grid=grid)
    calls["n"] = -100
    resumed = trained(eps_attention_grid=grid)
    assert calls["n"] == -100 + 1 + 2  # attention_vat's first ε: its last epoch; its second ε: both
    for key, (record, weights) in with_grid.items():
        assert resumed[key][0] == record and all(torch.equal(resumed[key][1][k], weights[k]) for k in weights)

def test_eps_grid_values_alike_to_six_digits_keep_a_run_and_a_score_each(in_tmp):
    """ε's of the grid that `:g` printed alike (1 and 1.0000001) were one name: the second run's curves replaced the
    first's and one dev score was recorded for two models. Names are now exact (`io.number_text`)."""
    _write_text_set(in_tmp / "data/processed")
    stage = _stage("supervised", "attention")
    T.train(_cfg(epochs=1, batch_size=16, methods=["attention_at"], eps_attention_grid=[1.0, 1.0000001]),
            Runtime(progress=False, threads=1, checkpoint_every=0), stage)
    key = M.variant_key("rt_snippets", "attention_at", "supervised", 0)
    assert sorted(p.name for p in stage.live_dir.iterdir()) == [f"{key}@eps=1", f"{key}@eps=1.0000001"]
    assert set(read_json(stage.model_dir / key / "train.json")["eps_selection"]["dev"]) == {"1", "1.0000001"}


def test_a_saved_state_of_another_shape_stops_the_group_with_one_line(in_tmp, monkeypatch):
    """A checkpoint of the per-method loop whose weights no longer fit the model (here: one tensor of another
    shape) is one DataError line naming the checkpoint, which is discarded so that the rerun starts over; the
    curves of that method are opened through the checkpoint like every other paper's."""
    from replab.io import DataError

    _write_text_set(in_tmp / "data/processed")
    cfg = _cfg(epochs=2, batch_size=16, batch_unlabeled=16, neighbours=3, n_unlabeled=64,
               semi_methods=["word_ivat", "word_vat"])
    runtime = Runtime(progress=False, threads=1, checkpoint_every=0)
    variant = _stage("semi", "word")
    real, calls = T.dev_scores, {"n": 0}

    def stop_at_third(model, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the second method's first epoch saved
        return real(model, data)
    monkeypatch.setattr(T, "dev_scores", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, runtime, variant)
    path = in_tmp / "checkpoints/attention_vat/rt_snippets-semi-word-0/checkpoint.pt"
    saved = torch.load(path, weights_only=True)
    weights = saved["state"]["model"]
    name = next(iter(weights))
    weights[name] = torch.zeros(*weights[name].shape[:-1], weights[name].shape[-1] + 1)
    torch.save(saved, path)
    monkeypatch.setattr(T, "dev_scores", real)
    with pytest.raises(DataError) as err:
        T.train(cfg, runtime, variant)
    message = str(err.value)
    assert message.startswith(f"{Path('checkpoints/attention_vat/rt_snippets-semi-word-0/checkpoint.pt')}: "
                              "unusable checkpoint: its state does not load into the ") and "\n" not in message
    assert "size mismatch" in message and message.endswith("discarded; rerun to start over")
    assert not path.exists()
    T.train(cfg, runtime, variant)  # the rerun starts over
    assert len(list(variant.model_dir.rglob("model.pt"))) == 2

def test_bench_case_runs_the_training_loop():
    cfg = _cfg(batch_size=8, batch_unlabeled=4)
    case = T.bench_setup(cfg, torch.device("cpu"))
    assert case.samples_per_step == 12 and case.batch_size == 8
    model = case.train(2, Runtime(progress=False, threads=1))
    assert isinstance(model, M.AttentionClassifier)


def test_a_family_without_methods_in_the_list_writes_empty_stage_folders(in_tmp, capsys):
    """methods: [vanilla, attention_vat] leaves the supervised word stage nothing to train: it says so and writes
    its declared outputs (model and curve folders) empty, so DVC's run completes."""
    _write_text_set(in_tmp / "data/processed")
    stage = _stage("supervised", "word")
    T.train(_cfg(epochs=1, methods=["vanilla", "attention_vat"]), Runtime(progress=False, threads=1), stage)
    assert "no word method in attention_vat.methods" in capsys.readouterr().err
    assert stage.model_dir.is_dir() and not any(stage.model_dir.iterdir())
    assert stage.live_dir.is_dir() and not any(stage.live_dir.iterdir())


@pytest.mark.parametrize("key, axes, message", [
    ("evaluate-rt_snippets", {"dataset": "rt_snippets"}, "a training stage trains every method of one family"),
    ("rt_snippets-semi-vanilla-0", {"dataset": "rt_snippets", "setting": "semi", "family": "vanilla", "seed": 0},
     "the semi setting has no vanilla method"),
])
def test_a_key_that_is_no_training_stage_is_a_one_line_error_that_writes_nothing(in_tmp, key, axes, message):
    _write_text_set(in_tmp / "data/processed")
    with pytest.raises(ParamError, match=message) as err:
        T.train(_cfg(epochs=1), Runtime(progress=False, threads=1), Variant("attention_vat", key, axes))
    assert "\n" not in str(err.value)
    assert not any((in_tmp / folder).exists() for folder in ("models", "checkpoints", "plots"))


def test_a_stage_whose_data_is_missing_leaves_no_checkpoint_folder(in_tmp):
    with pytest.raises(DataError, match="data/processed/rt_snippets"):
        T.train(_cfg(epochs=1), Runtime(progress=False, threads=1), _stage("supervised", "word"))
    assert not (in_tmp / "checkpoints").exists()


def test_evaluating_a_training_stage_key_is_a_one_line_error(in_tmp):
    """A stage key names a folder of several variants, not a model: evaluate says which keys it takes."""
    from replab.papers.attention_vat.evaluate import evaluate

    with pytest.raises(ParamError, match="a training stage's key, not a variant; evaluate <dataset>-<method>"):
        evaluate(_cfg(), Runtime(progress=False, threads=1), _stage("supervised", "word"))
    assert not (in_tmp / "metrics").exists()


@pytest.mark.parametrize("special_ids, message", [
    ({"pad": 5000000, "unk": 1}, r"special_ids\.pad = 5000000: must be a token id in 0 … 39 \(vocab\.json's words\);"),
    ("x", r"special_ids = 'x': expected an object \{name: token id\}"),
    ({"pad": 0, "unk": True}, r"special_ids\.unk = True: must be a token id"),
    ({"pad": 0, "eos": "3"}, r"special_ids\.eos = '3': must be a token id in 0 … 39 \(vocab\.json's words\) or null"),
    ({"pad": None}, r"special_ids\.pad = None: must be a token id"),
    ({"pad": 0, "bos": 2}, r"special_ids\.bos: unknown \(allowed: pad, unk, sos, eos\)"),
])
def test_bad_special_ids_in_meta_json_are_a_one_line_error_naming_it(in_tmp, special_ids, message):
    """meta.json's special_ids index the embedding table (pad: its padding row) and end cut pool sequences; a bad
    one failed deep in torch (AssertionError) or on `.get` (AttributeError) at training."""
    from replab.loaders.text import load_text

    _write_text_set(in_tmp / "data/processed")
    meta = in_tmp / "data/processed/rt_snippets/meta.json"
    meta.write_text(json.dumps({"source": "test", "special_ids": special_ids}))
    write_manifest(meta.parent)  # a meta.json that prepare wrote so (not an edit the manifest refuses)
    with pytest.raises(DataError, match=r"rt_snippets/meta\.json: " + message) as err:
        load_text("rt_snippets", torch.device("cpu"), root=in_tmp / "data/processed")
    assert "\n" not in str(err.value) and "prepare@rt_snippets" in str(err.value)
    with pytest.raises(DataError, match=r"meta\.json: special_ids"):  # the training stage stops on it too
        T.train(_cfg(epochs=1), Runtime(progress=False, threads=1), _stage("supervised", "vanilla"))
    meta.write_text(json.dumps({"special_ids": {"pad": 0, "unk": 1, "sos": None, "eos": None}}))  # no SOS/EOS
    write_manifest(meta.parent)
    assert load_text("rt_snippets", torch.device("cpu"), root=in_tmp / "data/processed").special_ids["eos"] is None


@pytest.mark.parametrize("key, assignments", [("all", []), ("garbage", []), ("garbage", ["family=word"])])
def test_a_bad_key_names_the_keys_train_and_evaluate_take(key, assignments):
    """`replab evaluate attention_vat all` and `replab train attention_vat garbage` asked for method=…, which no
    stage takes: the message names the real forms (a stage's family=, the eval stage's evaluate-<dataset>)."""
    with pytest.raises(ParamError) as err:
        parse_variant("attention_vat", key, assignments, _cfg(), M.axes_for(key))
    message = str(err.value)
    assert "attention_vat's keys: `train <dataset>-<setting>-<family>-<seed> dataset=… setting=… family=… seed=…`, " \
           "`train fig2-<dataset>-<family>-<seed> dataset=… family=… seed=…`" in message
    assert "`evaluate evaluate-<dataset> dataset=…`" in message and "\n" not in message


def test_evaluate_all_says_the_paper_has_no_such_evaluation():
    """`replab evaluate attention_vat all` read `all` as a broken key (missing dataset=…, method=…): attention_vat
    is evaluated per dataset, and the message says so before naming its keys."""
    from replab.cli import command_variant

    with pytest.raises(ParamError) as err:
        command_variant("attention_vat", "all", [], _cfg(), True)
    assert str(err.value).startswith("evaluate attention_vat all: attention_vat has no `all` evaluation; "
                                     "attention_vat's keys: ")
    assert "`evaluate evaluate-<dataset> dataset=…`" in str(err.value)


def test_papers_whose_keys_are_their_axes_keep_their_message():
    from replab.papers import paper_module
    from replab.params import parse as parse_section

    aae = paper_module("aae_ssl")
    with pytest.raises(ParamError) as err:
        parse_variant("aae_ssl", "all", [], parse_section(aae.Config, {}, "aae_ssl"), aae.AXES)
    assert str(err.value) == "aae_ssl variant all: missing model=…, n_labeled=…, seed=…"


def test_selection_on_auc_with_a_dev_split_of_one_class_is_refused_before_training(in_tmp):
    """A hand-edited prepared set whose dev split held one class trained silently: dev ROC-AUC was NaN at every
    epoch, so model selection kept the first. check_data (before any training stage) names the param and the
    value that works; selection on F1 passes."""
    _write_text_set(in_tmp / "data/processed")
    path = in_tmp / "data/processed/rt_snippets/dev.npz"
    with np.load(path) as npz:
        arrays = dict(npz)
    np.savez(path, **{**arrays, "labels": np.ones_like(arrays["labels"])})
    write_manifest(path.parent)  # as prepare would record such a set
    with pytest.raises(ParamError) as err:
        T.check_data(_cfg())
    assert str(err.value) == ("params.yaml: attention_vat.selection = auc: the dev split of data/processed/rt_snippets "
                              "holds class 1 only, where ROC-AUC is undefined (allowed: f1)")
    T.check_data(_cfg(selection="f1"))


def test_a_pool_cut_that_keeps_no_word_is_refused_by_check_data(in_tmp):
    """unlabeled_max_length = 2 on a set wrapped in <SOS> … <EOS> passed check_data (it loaded the pool uncut) and
    failed only in the training stages, after DVC had deleted the semi-supervised and Fig. 2 outputs: check_data
    now loads the pool as training does."""
    from replab.data import text

    vocab = ["<pad>", "<unk>", "<SOS>", "<EOS>", "good", "bad", "film"]
    splits = {name: {"docs": [["good", "film"], ["bad", "film"]], "labels": [1, 0]} for name in text.SPLITS}
    text.write_text_splits(in_tmp / "data/processed/rt_snippets", splits, vocab,
                           {"dataset": "rt_snippets", "source": "test"}, sos_eos=True, unlabeled=[["good", "film"]])
    write_manifest(in_tmp / "data/processed/rt_snippets")
    with pytest.raises(ParamError) as err:
        T.check_data(_cfg(unlabeled_max_length=2))
    assert str(err.value).startswith("attention_vat.unlabeled_max_length = 2: keeps no word of rt_snippets's pool")


def test_more_neighbours_than_the_vocabulary_holds_is_a_param_error():
    """neighbours = 10⁶ was clamped to the vocabulary without a word, and one epoch ran for minutes."""
    weight = torch.randn(VOCAB, 8)
    assert M.nearest_neighbours(weight, VOCAB - 3).shape == (VOCAB, VOCAB - 3)  # every word but itself, pad, unk
    for k in (VOCAB - 2, 10**6, 0):
        with pytest.raises(ParamError, match=rf"^params\.yaml: attention_vat\.neighbours = {k:,}: the vocabulary of "
                                             rf"{VOCAB} words has {VOCAB - 3} others to choose from "
                                             rf"\(allowed: 1 … {VOCAB - 3}\)$"):
            M.nearest_neighbours(weight, k)


def test_fig2_points_above_the_pool_are_capped_and_said(capsys):
    cfg = _cfg(fig2={"ratios": [0.0, 1.0, 7.0, 100.0]})
    from replab.papers.attention_vat.train import fig2_points

    assert fig2_points(cfg, 100, 500) == [0, 100, 500]
    assert capsys.readouterr().err == ("attention_vat Fig. 2: fig2.ratios 7, 100 × N_l = 100 ask for more than the "
                                       "pool's 500 unlabeled sequences: trained at 500\n")
    assert fig2_points(cfg, 10, 5000) == [0, 10, 70, 1000] and capsys.readouterr().err == ""


def test_pretrained_rows_of_another_size_and_a_diverged_loss_name_the_params(in_tmp):
    from replab.loaders.text import load_text

    _write_text_set(in_tmp / "data/processed")
    data = load_text("rt_snippets", torch.device("cpu"), root=in_tmp / "data/processed")
    data.embeddings = torch.zeros(data.vocab_size, 300)  # fastText's 300-d rows; the params say 8
    with pytest.raises(ParamError, match=r"^params\.yaml: attention_vat\.embedding_dim = 8: data/processed/"
                                         r"rt_snippets/embeddings\.npy has 300-d pretrained rows \(allowed: 300\)$"):
        M.build_model(_cfg(), data, torch.device("cpu"))
    # a diverged run's hint names the keys of its method: "attention_vat attention_vat …" suggested the lr or ε
    # only, never λ or ξ (lr = 1e38 and one step an epoch diverge every method; λ or ξ beyond float32's range, which
    # once did it, are refused by the params check)
    cfg = _cfg(epochs=1, batch_size=1024, lr=1e38, methods=["attention_at"])
    with pytest.raises(ParamError, match=r"^attention_vat rt_snippets-attention_at-supervised-0: weight model\.\S+ is "
                                         r"not finite after iteration 1 \(lower attention_vat\.lr, \.eps_attention, "
                                         r"\.lam\?\)$"):
        T.train(cfg, Runtime(progress=False, threads=1), _stage("supervised", "attention"))
    cfg = _cfg(epochs=1, batch_size=1024, lr=1e38, weight_decay=1e-5, methods=["word_vat"])
    with pytest.raises(ParamError, match=r"^attention_vat rt_snippets-word_vat-supervised-0: weight model\.\S+ is not "
                                         r"finite after iteration 1 \(lower attention_vat\.lr, \.weight_decay, "
                                         r"\.eps_word, \.lam, \.xi\?\)$"):
        T.train(cfg, Runtime(progress=False, threads=1), _stage("supervised", "word"))
    # an ε of eps_attention_grid: the hint named eps_attention, which that run did not read
    cfg = _cfg(epochs=1, batch_size=1024, lr=1e38, eps_attention=1.0, eps_attention_grid=[30.0],
               methods=["attention_at"])
    with pytest.raises(ParamError, match=r"^attention_vat rt_snippets-attention_at-supervised-0@eps=30: weight "
                                         r"model\.\S+ is not finite after iteration 1 \(lower attention_vat\.lr, "
                                         r"\.eps_attention_grid, \.lam\?\)$"):
        T.train(cfg, Runtime(progress=False, threads=1), _stage("supervised", "attention"))
    # lr = 1e38 and one step an epoch: that step's loss is finite, the weights after it are not, and the dev
    # evaluation that follows failed inside scikit-learn (ValueError: Input contains NaN) before the guard spoke
    cfg = _cfg(epochs=1, batch_size=1024, lr=1e38, methods=["vanilla"])
    with pytest.raises(ParamError, match=r"^attention_vat rt_snippets-vanilla-supervised-0: weight model\.\S+ is not "
                                         r"finite after iteration 1 \(lower attention_vat\.lr\?\)$"):
        T.train(cfg, Runtime(progress=False, threads=1), _stage("supervised", "vanilla"))


def _with_sos_eos(folder: Path) -> None:
    """Make ids 2 and 3 of a `_write_text_set` set its <SOS> / <EOS> (vocab.json and meta.json's special_ids)."""
    vocab = json.loads((folder / "vocab.json").read_text())
    (folder / "vocab.json").write_text(json.dumps(["<pad>", "<unk>", "<SOS>", "<EOS>", *vocab[4:]]))
    (folder / "meta.json").write_text(json.dumps({"source": "test",
                                                  "special_ids": {"pad": 0, "unk": 1, "sos": 2, "eos": 3}}))
    write_manifest(folder)  # as prepare records such a set


@pytest.mark.parametrize("row, length", [([2, 3], 2), ([2], 1), ([2, 3, 3], 3)])
def test_a_text_of_sos_and_eos_alone_is_refused_naming_file_and_row(in_tmp, row, length):
    """A test sentence of <SOS> <EOS> only (lengths ≤ 2) reached the rationale measures and died in a ValueError
    traceback ("document 0: no tokens under the mask"): loading refuses it, naming the file, the row and the
    minimum, before the linear baseline or any model runs; the evaluation writes nothing."""
    from replab.loaders.text import load_text
    ev = importlib.import_module("replab.papers.attention_vat.evaluate")

    _write_text_set(in_tmp / "data/processed")
    folder = in_tmp / "data/processed/rt_snippets"
    _with_sos_eos(folder)
    test = dict(np.load(folder / "test.npz"))
    test["tokens"][1] = 0
    test["tokens"][1, :len(row)] = row
    test["lengths"][1] = length
    np.savez(folder / "test.npz", **test)
    write_manifest(folder)  # as prepare would record such a set
    message = (r"rt_snippets/test\.npz: text row 1 holds no word \(lengths\[1\] = \d: <SOS> / <EOS> only; allowed: "
               r"at least 1 word between <SOS> and <EOS>, lengths ≥ 3\)$")
    with pytest.raises(DataError, match=message):
        load_text("rt_snippets", torch.device("cpu"), root=in_tmp / "data/processed")
    with pytest.raises(DataError, match=message):
        ev.load_eval_data("rt_snippets", torch.device("cpu"), root=in_tmp / "data/processed")
    with pytest.raises(DataError, match=message):  # the eval stage: the linear baseline reads test.npz first
        ev.evaluate(_cfg(), Runtime(progress=False, threads=1),
                    Variant("attention_vat", "evaluate-rt_snippets", {"dataset": "rt_snippets"}))
    assert not (in_tmp / "metrics").exists() and not (in_tmp / "plots").exists()
    # the same ids without SOS/EOS in meta.json are words: the row is a text of two (or one) words
    (folder / "meta.json").write_text(json.dumps({"source": "test", "special_ids": {"pad": 0, "unk": 1}}))
    write_manifest(folder)
    assert load_text("rt_snippets", torch.device("cpu"), root=in_tmp / "data/processed").lengths["test"][1] == length


def _saved_variant(data, cfg, key: str, axes: dict, record: dict) -> Path:
    folder = _folder(key, axes)
    M.save_model(M.build_model(cfg, data, "cpu"), M.model_config(cfg, data), folder, record)
    return folder


def test_another_variants_folder_copied_in_is_refused_naming_its_train_json(in_tmp):
    """word_at's model.pt and train.json copied into the vanilla variant's folder passed the sha256 check (the
    record travels with its model) and the vanilla metrics carried word_at's F1: train.json's dataset, method,
    setting and seed must be the variant's own."""
    from replab.loaders.text import load_text
    ev = importlib.import_module("replab.papers.attention_vat.evaluate")

    _write_text_set(in_tmp / "data/processed")
    cfg = _cfg()
    text = load_text("rt_snippets", torch.device("cpu"))
    data = ev.load_eval_data("rt_snippets", torch.device("cpu"))
    own = {"dataset": "rt_snippets", "method": "vanilla", "setting": "supervised", "seed": 0}
    vanilla = "rt_snippets-vanilla-supervised-0"
    for axis, value in (("method", "word_at"), ("seed", 1), ("setting", "semi"), ("dataset", "sst"),
                        ("seed", "0"), ("seed", True)):
        folder = _saved_variant(text, cfg, vanilla, own, {**own, axis: value, "n_labeled": 48})
        with pytest.raises(DataError) as err:
            ev.evaluate_variant(vanilla, own, folder, data, torch.device("cpu"), in_tmp / "metrics", in_tmp / "plots")
        assert str(err.value) == (f"{folder / 'train.json'}: {axis} = {value!r}, but this variant's is "
                                  f"{own[axis]!r} (another variant's files in {folder}?); rerun the training stage")
        assert not (in_tmp / "metrics").exists()
    folder = _saved_variant(text, cfg, vanilla, own, {**own, "seed": 0.0, "n_labeled": 48})  # 0.0 is 0
    ev.evaluate_variant(vanilla, own, folder, data, torch.device("cpu"), in_tmp / "metrics", in_tmp / "plots")
    assert read_json(in_tmp / "metrics" / f"{vanilla}.json")["method"] == "vanilla"
    # the Fig. 2 record of another seed copied in
    fig2 = {"dataset": "rt_snippets", "family": "attention", "seed": 0}
    (in_tmp / "models/attention_vat/fig2-rt_snippets-attention-0").mkdir(parents=True)
    path = in_tmp / "models/attention_vat/fig2-rt_snippets-attention-0/train.json"
    for axis, value in (("seed", 3), ("family", "word")):
        path.write_text(json.dumps({**fig2, axis: value, "n_labeled": 48,
                                    "curves": {"attention_vat": {"n_unlabeled": [0], "dev_f1": [50.0]}}}))
        with pytest.raises(DataError, match=rf"fig2-rt_snippets-attention-0/train\.json: {axis} = {value!r}, but this "
                                            r"variant's is .* \(another variant's files in .*\?\); rerun the training "
                                            "stage$"):
            ev.collect_fig2("fig2-rt_snippets-attention-0", fig2, path.parent, in_tmp / "metrics")
