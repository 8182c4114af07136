"""attention_vat measures, evaluation and report: ERASER token-soft metrics against hand-computed values,
Pearson/Kendall against scipy, gradient importance against autograd, the claims' verdicts both ways."""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from replab.io import write_manifest
from replab.measures import (
    binary_f1,
    masked_kendall_tau,
    masked_pearson,
    nan_summary,
    percent,
    token_soft_metrics,
    token_soft_per_document,
)
from replab.papers.attention_vat.model import AttentionClassifier, Config

# the package exports the functions evaluate() and summarize(); these tests need their modules
ev = importlib.import_module("replab.papers.attention_vat.evaluate")
rp = importlib.import_module("replab.papers.attention_vat.report")

# ---------------------------------------------------------------------------------------------------------
# ERASER token-soft metrics


def _docs(rows):
    """[(truth, scores)] of different lengths → padded truth, scores (padding scored highest: must not count),
    mask."""
    length = max(len(t) for t, _ in rows)
    truth = np.zeros((len(rows), length), bool)
    scores = np.full((len(rows), length), 99.0)
    mask = np.zeros((len(rows), length), bool)
    for i, (t, s) in enumerate(rows):
        truth[i, :len(t)], scores[i, :len(s)], mask[i, :len(t)] = t, s, True
    return truth, scores, mask


def test_token_soft_hand_computed():
    truth, scores, mask = _docs([
        ([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1]),  # PR points (R, P): (.5, 1), (.5, .5), (1, 2/3), (1, .5)
        ([1, 0, 0], [0.5, 0.5, 0.1]),          # a tie: one threshold for the first two tokens
        ([0, 0], [0.9, 0.1]),                  # no evidence: single class
        ([1], [0.3]),                          # all evidence: single class
    ])
    per_doc = token_soft_per_document(truth, scores, mask)
    # AUPRC: trapezoids from (0, 1): .5·1 + 0 + .5·(.5 + 2/3)/2 = 19/24; tie doc: 1·(1 + .5)/2 = .75;
    # no-evidence doc: recall 1 at every threshold (scikit-learn ≥ 1.1) → (1 − 0)·(0 + 1)/2 = .5; all evidence 1
    np.testing.assert_allclose(per_doc["auprc"], [19 / 24, 0.75, 0.5, 1.0])
    # AP = Σ ΔR·P: .5·1 + .5·2/3 = 5/6; tie doc 1·.5
    np.testing.assert_allclose(per_doc["average_precision"][:2], [5 / 6, 0.5])
    # ROC-AUC = P(score_pos > score_neg) + ½ P(tie): 3/4; tie doc (.5 + 1)/2
    np.testing.assert_allclose(per_doc["roc_auc"][:2], [0.75, 0.75])
    assert per_doc["single_class"].tolist() == [False, False, True, True]
    assert np.isnan(per_doc["average_precision"][2:]).all() and np.isnan(per_doc["roc_auc"][2:]).all()

    agg = token_soft_metrics(truth, scores, mask)
    assert agg["auprc"] == pytest.approx((19 / 24 + 0.75 + 0.5 + 1.0) / 4)  # every document (ERASER's _auprc)
    assert agg["average_precision"] == pytest.approx((5 / 6 + 0.5) / 2)  # single-class documents skipped
    assert agg["roc_auc_score"] == pytest.approx(0.75)
    assert (agg["documents"], agg["single_class_documents"], agg["documents_without_evidence"]) == (4, 2, 1)


@pytest.mark.filterwarnings("ignore:No positive class found")
def test_token_soft_matches_scikit_learn_with_ties():
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

    rng = np.random.default_rng(0)
    rows = [(rng.random(n) < 0.3, rng.integers(0, 4, n) / 4) for n in rng.integers(1, 15, 100)]
    per_doc = token_soft_per_document(*_docs(rows))
    for i, (t, s) in enumerate(rows):
        precision, recall, _ = precision_recall_curve(t, s)
        assert per_doc["auprc"][i] == pytest.approx(auc(recall, precision), abs=1e-12)
        if t.any() and not t.all():
            assert per_doc["average_precision"][i] == pytest.approx(average_precision_score(t, s), abs=1e-12)
            assert per_doc["roc_auc"][i] == pytest.approx(roc_auc_score(t, s), abs=1e-12)


def test_token_soft_rejects_bad_input():
    truth, scores, mask = _docs([([1, 0], [0.2, np.nan])])
    with pytest.raises(ValueError, match="non-finite"):
        token_soft_metrics(truth, scores, mask)
    with pytest.raises(ValueError, match="no tokens"):
        token_soft_metrics(np.zeros((1, 2), bool), np.zeros((1, 2)), np.zeros((1, 2), bool))


# ---------------------------------------------------------------------------------------------------------
# Pearson / Kendall per row against scipy


def test_pearson_and_kendall_match_scipy():
    from scipy.stats import kendalltau, pearsonr

    rng = np.random.default_rng(1)
    n, length = 300, 11
    lengths = rng.integers(1, length + 1, n)
    mask = np.arange(length)[None, :] < lengths[:, None]
    x = np.round(rng.random((n, length)), 1)  # ties in x
    y = x + rng.normal(0, 0.3, (n, length))
    y[:20] = 0.25  # constant rows: undefined
    x[mask == 0] = 1e6  # padding must not count
    r, tau = masked_pearson(x, y, mask), masked_kendall_tau(x, y, mask, max_elements=500)  # several chunks
    defined = 0
    for i in range(n):
        k = lengths[i]
        if k < 2 or np.ptp(y[i, :k]) == 0 or np.ptp(x[i, :k]) == 0:
            assert np.isnan(r[i]) and np.isnan(tau[i])
            continue
        defined += 1
        assert r[i] == pytest.approx(pearsonr(x[i, :k], y[i, :k])[0], abs=1e-9)
        assert tau[i] == pytest.approx(kendalltau(x[i, :k], y[i, :k])[0], abs=1e-12)
    assert defined > 200
    summary = nan_summary(r)
    assert summary["defined"] == defined and summary["undefined"] == n - defined
    assert summary["mean"] == pytest.approx(np.nanmean(r))


def test_binary_f1_positive_class():
    # TP 2, FP 1, FN 1 → 2·2 / (4 + 1 + 1)
    assert binary_f1([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(4 / 6)
    assert binary_f1([0, 0], [0, 0]) == 0.0


def test_percent_is_exact_from_the_count():
    # 55 of 400: 100·mean gives 13.750000000000002 (split_vae's writer probe printed it); the count gives 13.75
    hits = np.arange(400) < 55
    assert 100 * float(hits.mean()) != 13.75
    assert percent(hits) == 13.75
    assert percent(torch.from_numpy(hits)) == 13.75  # a torch tensor: the same count
    assert percent(torch.ones(3, dtype=torch.bool)) == 100.0
    assert math.isnan(percent(np.zeros(0, dtype=bool)))


# ---------------------------------------------------------------------------------------------------------
# Gradient importance on the attention_vat network (small sizes)


def _tiny_model(vocab=12, dtype=torch.float32):
    torch.manual_seed(0)
    return AttentionClassifier(vocab, embedding_dim=6, hidden=5, attention_dim=4).to(dtype).eval()


def _toy_batch(seed=0, n=7, length=9, vocab=12):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    lengths[0] = length
    tokens = torch.randint(2, vocab, (n, length), generator=g)
    tokens[torch.arange(length)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


@pytest.mark.parametrize("detach_attention", [True, False])
def test_gradient_importance_matches_autograd_per_sentence(detach_attention):
    model = _tiny_model(dtype=torch.double)
    tokens, lengths = _toy_batch()
    compare = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
    compare[:, 0] = False  # e.g. an SOS position: left out of the comparison
    batch, logit, attention = ev.gradient_importance(model, tokens, lengths, compare, detach_attention=detach_attention)
    with torch.no_grad():  # the same pass gives the prediction and the attention
        out = model(tokens, lengths)
    torch.testing.assert_close(logit, out.logit)
    torch.testing.assert_close(attention, out.attention)
    checked = 0
    for i in range(len(tokens)):
        k = int(lengths[i])
        # this one sentence, unpadded: ∂σ(ŷ)/∂e = ∂σ(ŷ)/∂r at a zero perturbation r added to e
        r = torch.zeros(1, k, 6, dtype=torch.double, requires_grad=True)
        enc = model.encode(tokens[i:i + 1, :k], lengths[i:i + 1], r, dropout=False)
        scores = enc.scores.detach() if detach_attention else enc.scores
        (grad,) = torch.autograd.grad(torch.sigmoid(model.attend(enc.h, scores, enc.mask)[0]).sum(), r)
        raw = (grad * model.embedding(tokens[i:i + 1, :k]).detach()).sum(-1).abs()[0] * compare[i, :k]
        if raw.sum() == 0:  # a one-token sentence without its first position: nothing to compare
            assert torch.isnan(batch[i]).all()
            continue
        torch.testing.assert_close(batch[i, :k], raw / raw.sum())
        assert (batch[i, k:] == 0).all()
        assert batch[i, compare[i]].sum().item() == pytest.approx(1.0)
        checked += 1
    assert checked >= 5


def test_gradient_importance_cut_at_the_attention_differs():
    model = _tiny_model(dtype=torch.double)
    tokens, lengths = _toy_batch()
    compare = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
    cut = ev.gradient_importance(model, tokens, lengths, compare, detach_attention=True)[0]
    full = ev.gradient_importance(model, tokens, lengths, compare, detach_attention=False)[0]
    assert not torch.allclose(cut[0], full[0])


# ---------------------------------------------------------------------------------------------------------
# measure() on a tiny processed data set in the real format


def _write_processed(root: Path, name="rt_snippets", vocab_size=12, sos_eos=True, seed=0):
    rng = np.random.default_rng(seed)
    vocab = ["<pad>", "<unk>", "<SOS>", "<EOS>"] + [f"w{i}" for i in range(vocab_size - 4)]
    folder = root / name
    folder.mkdir(parents=True)
    for split, n in (("train", 20), ("dev", 10), ("test", 12)):
        words = rng.integers(7, 12, n)  # 7..11 words + SOS/EOS
        length = int(words.max()) + 2
        tokens = np.zeros((n, length), np.int64)
        evidence = np.zeros((n, length), np.uint8)
        for i, w in enumerate(words):
            tokens[i, 0], tokens[i, 1:w + 1], tokens[i, w + 1] = 2, rng.integers(4, vocab_size, w), 3
            evidence[i, 1:w + 1] = rng.random(w) < 0.3
        np.savez(folder / f"{split}.npz", tokens=tokens, lengths=words + 2, labels=rng.integers(0, 2, n),
                 evidence=evidence)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "meta.json").write_text(json.dumps({"counts": {"train": 20, "dev": 10, "test": 12},
                                                  "special_ids": {"pad": 0, "unk": 1, "sos": 2, "eos": 3}}))
    write_manifest(folder)  # as prepare records it
    return folder


def test_measure_on_real_format(tmp_path):
    _write_processed(tmp_path)
    data = ev.load_eval_data("rt_snippets", torch.device("cpu"), root=tmp_path)
    assert data.evidence_kind == "lexicon" and data.train_size == 20
    # SOS/EOS and padding are never compared
    tokens = data.test.tokens.numpy()
    assert not data.test.compare[np.isin(tokens, [0, 2, 3])].any()
    model = _tiny_model()
    metrics, rows = ev.measure(model, data)
    with torch.no_grad():
        prob = torch.sigmoid(model(data.test.tokens, data.test.lengths).logit).numpy()
    assert metrics["f1"] == pytest.approx(100 * binary_f1(prob > 0.5, data.test.labels))
    assert metrics["corr_sentences"] + metrics["corr_undefined"] == 12
    assert -1 <= metrics["corr_pearson"] <= 1 and -1 <= metrics["corr_kendall"] <= 1
    assert metrics["rationale"]["evidence"] == "lexicon" and metrics["rationale"]["documents"] == 12
    assert 0 <= metrics["rationale"]["auprc"] <= 1
    assert len(rows) == ev.EXAMPLES and all(len(r["words"]) == len(r["attention"]) for r in rows)
    assert all(not w.startswith("<") for r in rows for w in r["words"])
    # batching by length gives the same numbers as one batch
    outputs_small = ev.run_split(model, data.test, with_gradients=True, max_tokens=16)
    outputs_big = ev.run_split(model, data.test, with_gradients=True, max_tokens=1 << 20)
    np.testing.assert_allclose(outputs_small.attention, outputs_big.attention, atol=1e-6)
    np.testing.assert_allclose(outputs_small.importance, outputs_big.importance, atol=1e-6)


def test_load_eval_data_names_the_bad_file(tmp_path):
    folder = _write_processed(tmp_path)
    np.savez(folder / "test.npz", tokens=np.zeros((2, 3), np.int64), lengths=np.array([1, 5]),
             labels=np.array([0, 1]))
    write_manifest(folder)  # as prepare would record such a set
    from replab.io import DataError

    with pytest.raises(DataError, match=r"test\.npz: lengths holds 5 at row 1 \(allowed: 1 … 3, the tokens' width T\)"):
        ev.load_eval_data("rt_snippets", torch.device("cpu"), root=tmp_path)
    np.savez(folder / "test.npz", tokens=np.full((2, 3), 4), lengths=np.array([1, 3]), labels=np.array([0, 1]),
             evidence=np.zeros((2, 4), np.uint8))
    write_manifest(folder)
    with pytest.raises(DataError, match=r"test\.npz: evidence has shape \(2, 4\) \(expected \(N, 3\)\)"):
        ev.load_eval_data("rt_snippets", torch.device("cpu"), root=tmp_path)


def test_length_batches_cover_every_index_once():
    lengths = np.array([5, 1, 300, 7, 7, 2, 40])
    batches = ev.length_batches(lengths, max_tokens=64)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(len(b) == 1 or lengths[b].max() * len(b) <= 64 for b in batches)


# ---------------------------------------------------------------------------------------------------------
# The report: tables, NaN handling and every claim both ways


def _record(method, f1, corr, setting="supervised", n_ul=0, seed=0, dev_f1=None, rationale=None, ds="rt_snippets"):
    """A variant's metrics file with every key evaluate_variant writes (the report refuses one without)."""
    rec = {"dataset": ds, "method": method, "setting": setting, "seed": seed, "n_labeled": 100, "n_unlabeled": n_ul,
           "unlabeled_seen": n_ul, "eps": None, "best_epoch": 3, "f1": f1, "dev_f1": f1 if dev_f1 is None else dev_f1,
           "accuracy": 70.0, "predicted_positive": 55.0, "auc": 0.7, "dev_auc": 0.7, "corr_pearson": corr,
           "corr_kendall": corr / 2, "corr_sentences": 50, "corr_undefined": 0, "kendall_undefined": 0,
           "run": {"device": "cpu", "device_name": "x", "torch": "t", "python": "p", "data_source": "d",
                   "seconds": 1.0, "samples_per_s": 1.0}}
    if rationale is not None:
        rec["rationale"] = {"evidence": "lexicon", "auprc": rationale, "average_precision": rationale,
                            "roc_auc_score": rationale, "documents": 40, "single_class_documents": 10,
                            "documents_without_evidence": 10}
    return rec


def _records(ours_better: bool) -> dict[str, dict]:
    """A constructed sweep: the attention-level methods ahead on every measure (or behind)."""
    up = 1 if ours_better else -1
    recs = {}
    for m in rp.METHODS:
        mine = m in rp.OURS
        recs[f"{m}-sup"] = _record(m, 80 + (2 * up if mine else 0), 0.6 + (0.2 * up if mine else 0),
                                   rationale=0.4 + (0.1 * up if mine else 0))
    for m in rp.SEMI_METHODS:  # the unlabeled data help every method a little (F1 +1, r +0.1)
        mine = m in rp.OURS
        recs[f"{m}-semi"] = _record(m, 81 + (2 * up if mine else 0), 0.7 + (0.1 * up if mine else 0), "semi", 700,
                                    rationale=0.4 + (0.1 * up if mine else 0))
    for family in ("word", "attention"):  # the Fig. 2 stage of each family
        recs[f"fig2-{family}"] = {
            "dataset": "rt_snippets", "family": family, "seed": 0, "n_labeled": 100, "run": recs["vanilla-sup"]["run"],
            "curves": {m: {"n_unlabeled": [0, 300, 700], "dev_f1": [78.0, 78 + up, 78 + 2 * up]}
                       for m in rp.SEMI_METHODS if m.startswith(family)}}
    return recs


@pytest.mark.parametrize("ours_better", [True, False])
def test_claims_follow_the_numbers(ours_better):
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(_records(ours_better)).items()}
    words, flags, _ = rp.claims(per_ds)
    assert set(flags) == set(rp.PAPER_CLAIMS)
    for c in rp.PAPER_CLAIMS:
        assert flags[c] is ours_better
        assert words[c].startswith("holds" if ours_better else "does not hold")
    assert per_ds["rt_snippets"]["n_unlabeled"] == {m: 700 for m in rp.SEMI_METHODS}


def test_the_papers_own_table_1_holds_its_claims():
    """Table 1 of the seed, one 'seed' per cell, holds every claim drawn from it: semi-supervised VAT/iVAT above
    supervised AT/iAT of their level (Sec. 5.1's 有意な向上, e.g. SST Word VAT 83.04 vs Word AT 79.61, Attention VAT r
    0.898 vs Attention iAT 0.876), attention ≥ word level semi-supervised, and supervised Attention VAT/iVAT on a par
    with Attention AT/iAT (同等: IMDB 90.18 vs 90.21, r 0.857 vs 0.861, which half the printed precision as the only
    margin called a loss). One flipped cell fails the first, naming it."""
    def judged(table_1b):
        recs = {f"{ds}-{m}-sup": _record(m, *rp.PAPER_TABLE_1A[ds][m], ds=ds) for ds in rp.PAPER_TABLE_1A
                for m in rp.METHODS}
        recs |= {f"{ds}-{m}-semi": _record(m, *table_1b[ds][m], "semi", rp.PAPER_N_UL[ds], ds=ds) for ds in table_1b
                 for m in rp.SEMI_METHODS}
        return rp.claims({ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()})

    words, flags, _ = judged(rp.PAPER_TABLE_1B)
    table_1 = ("attention_f1_supervised", "vat_as_at_supervised", "attention_ge_word_semi", "semi_vat_above_at",
               "attention_higher_corr")
    assert {c: flags[c] for c in table_1} == dict.fromkeys(table_1, True), words
    assert ("imdb F1: Attention iVAT 90.18 vs Attention iAT 90.21, within the margin of a par ±0.25"
            in words["vat_as_at_supervised"])
    assert "imdb r: Attention iVAT 0.857 vs Attention iAT 0.861, within the margin of a par ±0.010" \
        in words["vat_as_at_supervised"]
    assert "sst F1 (semi vs supervised): Word VAT 83.04 vs Word AT 79.61" in words["semi_vat_above_at"]
    assert "imdb r (semi vs supervised): Attention VAT 0.879 vs Attention iAT 0.861" in words["semi_vat_above_at"]
    worse = {ds: dict(t) for ds, t in rp.PAPER_TABLE_1B.items()}
    worse["imdb"]["attention_ivat"] = (90.10, 0.883)  # below Attention iAT's supervised 90.21
    words, flags, _ = judged(worse)
    assert flags["semi_vat_above_at"] is False
    assert words["semi_vat_above_at"].startswith("does not hold (fails: imdb F1 (semi vs supervised): Attention iVAT "
                                                 "90.10 vs Attention iAT 90.21")


def test_table_1_and_fig_2_claims_leave_out_a_data_set_of_table_2_only():
    """eraser_movies stands in the paper's Table 2 alone: a Table 1 or Fig. 2 result there (where ours lose) must not
    decide those claims, while its rationale scores (where ours win) still count."""
    recs = _records(True)
    for key, rec in _records(False).items():
        recs[f"eraser-{key}"] = {**rec, "dataset": "eraser_movies", **(
            {"rationale": {**recs[key]["rationale"], "evidence": "human"}} if "rationale" in rec else {})}
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    words, flags, _ = rp.claims(per_ds)
    assert all(flags.values()), words
    assert "eraser_movies" in words["attention_better_rationales"]
    assert not any("eraser_movies" in words[c] for c in rp.PAPER_CLAIMS if c != "attention_better_rationales")


def test_an_n_ul_beyond_what_training_drew_is_shown_with_the_sentences_seen():
    recs = _records(True)
    for rec in recs.values():
        if rec.get("setting") == "semi":
            rec["unlabeled_seen"] = 480 if rec["method"] == "word_vat" else 700
    recs["word_vat-semi-1"] = {**recs["word_vat-semi"], "seed": 1, "unlabeled_seen": 512}  # the fewest is shown
    for fig2 in (recs["fig2-word"], recs["fig2-attention"]):
        fig2["curves"] = {m: {**c, "unlabeled_seen": [0, 300, 480 if m == "attention_vat" else 700]}
                          for m, c in fig2["curves"].items()}
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    s = per_ds["rt_snippets"]
    assert s["unlabeled_seen"]["table1b"] == {"word_vat": 480, "word_ivat": 700, "attention_vat": 700,
                                              "attention_ivat": 700}
    md = "\n".join(rp.tables_markdown("rt_snippets", s))
    assert "| Word VAT | 700 (480 seen) |" in md and "| Word iVAT | 700 |" in md and rp.SEEN_NOTE in md
    assert "N_ul = 700 (the sentences they drew: Table 1b)" in md
    fig2 = "\n".join(rp.fig2_table("rt_snippets", s))
    assert "| Attention VAT | 78.00 | 79.00 | 80.00 (480 seen) |" in fig2 and rp.SEEN_NOTE in fig2
    words, *_ = rp.claims(per_ds)
    assert "Attention VAT at N_ul=700 (480 seen)" in words["f1_rises_with_unlabeled"]
    assert "Word iVAT at N_ul=700 " in words["f1_rises_with_unlabeled"]  # drew them all: no note
    del recs["fig2-word"], recs["fig2-attention"]  # records written before train.json counted them (null): N_ul
    # alone, no note
    for rec in recs.values():
        rec["unlabeled_seen"] = None
    s = rp.dataset_summary(rp.group(recs)["rt_snippets"])
    assert set(s["unlabeled_seen"]["table1b"].values()) == {None}
    assert rp.SEEN_NOTE not in rp.tables_markdown("rt_snippets", s)


def test_a_constant_classifier_is_marked_in_the_f1_column():
    """Word AT predicted every test sentence positive: its F1 (the constant classifier's 76.56) topped Table 1a
    unmarked."""
    recs = _records(True)
    for rec in recs.values():
        if "curves" not in rec:
            rec["predicted_positive"] = 100.0 if rec["method"] == "word_at" else 55.0
            rec["f1"] = 81.0 if rec["method"] == "word_at" else rec["f1"]  # the best of the others: cited
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    md = "\n".join(rp.tables_markdown("rt_snippets", per_ds["rt_snippets"])).splitlines()
    word_at = next(line for line in md if line.startswith("| Word AT |"))
    assert word_at.startswith("| Word AT | 81.00 (all positive†) |")
    assert sum("(all positive†)" in line for line in md) == 1 and rp.CONSTANT_NOTE in md
    # no verdict weighs it: claim 1 failed on Word AT's constant F1 alone, and quoted it rather than the learned
    # models' numbers; it is judged on those, the constant one named as left out
    words, flags, _ = rp.claims(per_ds)
    assert flags["attention_f1_supervised"] is True
    assert words["attention_f1_supervised"] == ("holds (rt_snippets: Attention VAT 82.00 vs Vanilla 80.00 (Word AT "
                                                "(all positive†) left out))")
    recs["word_at-sup-1"] = {**recs["word_at-sup"], "seed": 1, "predicted_positive": 97.0}  # one seed learned
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    assert not any("†" in line for line in rp.tables_markdown("rt_snippets", per_ds["rt_snippets"]))
    recs["word_at-sup-1"]["predicted_positive"] = 0.0  # the other seed calls every sentence negative: no mean of 50
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}  # (with its std) reads as learned
    assert "\n| Word AT | 81.00 ± 0.00 (one class a seed†) |" in "\n".join(rp.tables_markdown("rt_snippets",
                                                                                            per_ds["rt_snippets"]))


def test_a_constant_fig2_point_is_marked_and_left_out_of_its_claim(monkeypatch):
    """A Fig. 2 point whose model called every dev sentence positive (the quick profile's Word AT did: dev F1 68.18
    at 51.72 % accuracy) has the constant classifier's F1, which can beat a learned model's: "dev F1 rises with
    unlabeled data" judged it as learned. It is marked † in Fig. 2's table and left out of the claim."""
    recs = _records(False)  # every curve falls: 78 → 76
    for family in ("word", "attention"):
        for curve in recs[f"fig2-{family}"]["curves"].values():
            curve["dev_predicted_positive"] = [100.0, 40.0, 55.0]  # N_ul = 0: all positive (every seed: one)
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    words, flags, _ = rp.claims(per_ds)
    assert flags["f1_rises_with_unlabeled"] is None and words["f1_rises_with_unlabeled"].startswith(
        "not checkable (rt_snippets: not checkable: Word VAT at N_ul=0 (all positive†); ")
    table = rp.fig2_table("rt_snippets", per_ds["rt_snippets"])
    assert "| Word VAT | 78.00 (all positive†) | 77.00 | 76.00 |" in table[2] and rp.FIG2_CONSTANT_NOTE in table
    figures = []  # the figure rings each † point (N_ul = 0 only), labelled with its method
    monkeypatch.setattr(rp.report, "save_figure", lambda fig, path: figures.append(fig) or str(path))
    rp.fig2_figure(per_ds, Path("fig2.png"))
    rings = {line.get_label(): line.get_xdata().tolist() for line in figures[0].axes[0].get_lines()
             if "†" in line.get_label()}
    assert rings == {f"{rp.METHOD_LABELS[m]} †": [0] for m in rp.SEMI_METHODS}
    for family in ("word", "attention"):  # learned at both ends: judged, and it fails on the numbers
        for curve in recs[f"fig2-{family}"]["curves"].values():
            curve["dev_predicted_positive"] = [45.0, 40.0, 55.0]
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    assert rp.claims(per_ds)[1]["f1_rises_with_unlabeled"] is False
    assert not any("†" in line for line in rp.fig2_table("rt_snippets", per_ds["rt_snippets"]))
    recs["fig2-word"]["curves"]["word_vat"]["dev_predicted_positive"] = [45.0, 40.0, 0.0]  # the last: all negative
    recs["fig2-word-1"] = {**recs["fig2-word"], "seed": 1, "curves": {m: {k: v for k, v in c.items() if k.startswith(
        ("n_", "dev_f1"))} for m, c in recs["fig2-word"]["curves"].items()}}  # an older seed's file: no % recorded
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    assert "†" not in "".join(rp.fig2_table("rt_snippets", per_ds["rt_snippets"]))  # not known for every seed
    del recs["fig2-word-1"]
    words, flags, _ = rp.claims({ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()})
    assert "not checkable: Word VAT at N_ul=700 (all negative†)" in words["f1_rises_with_unlabeled"]
    assert "Word iVAT at N_ul=700 76.00 vs Word iVAT at N_ul=0 78.00" in words["f1_rises_with_unlabeled"]


def test_a_constant_classifiers_r_and_rationale_agreement_are_left_out_of_the_claims():
    """The quick profile's Word iVAT (semi) and Word iAT called every test sentence positive; "semi-supervised VAT/iVAT
    above supervised AT/iAT" failed on their Pearson r (−0.096 vs 0.161) while their F1 was "not checkable". No
    claim weighs a constant classifier: it is left out of that comparison (not checkable once no learned model is left
    on a side), and a constant Word VAT with the highest r is left out of "Attention VAT/iVAT give a higher
    correlation", a constant Word iVAT with the highest rationale agreement out of Table 2's claim."""
    recs = _records(True)
    for key, r, rationale in (("word_ivat-semi", -0.096, 0.99), ("word_iat-sup", 0.161, None),
                              ("word_vat-sup", 0.99, None)):
        recs[key]["predicted_positive"], recs[key]["corr_pearson"] = 100.0, r
        if rationale:
            recs[key]["rationale"] = {**recs[key]["rationale"], "auprc": rationale, "average_precision": rationale}
    judged = lambda: rp.claims({ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()})
    words, flags, _ = judged()
    assert ("rt_snippets r (semi vs supervised): Word VAT 0.700 vs Word AT 0.600 (Word iVAT (all positive†), Word iAT "
            "(all positive†) left out)") in words["semi_vat_above_at"] and flags["semi_vat_above_at"] is True
    for claim, constant in (("attention_higher_corr", "Word VAT"), ("attention_better_rationales", "Word iVAT")):
        assert flags[claim] is True and f"{constant} (all positive†) left out" in words[claim], words[claim]
    table2 = "\n".join(rp.tables_markdown("rt_snippets", rp.dataset_summary(rp.group(recs)["rt_snippets"])))
    assert "| Word iVAT (semi) (all positive†) |" in table2  # marked in Table 2 too, as its claim names it
    recs["word_at-sup"]["predicted_positive"] = 100.0  # no supervised word-level model learned: nothing to compare
    words, flags, _ = judged()
    assert ("rt_snippets r (semi vs supervised): not checkable: Word iVAT (all positive†), Word AT (all positive†), "
            "Word iAT (all positive†)") in words["semi_vat_above_at"] and flags["semi_vat_above_at"] is None


def test_fig2_names_the_ratios_that_asked_for_more_than_the_pool():
    """`fig2.ratios=[0,1,50]` trained its 50× point on the whole pool, and the report's column read "13,237 (6.6×)"
    without a word that 50× was asked for (the note went to the training log alone)."""
    s = rp.dataset_summary(rp.group(_records(True))["rt_snippets"])  # N_l = 100, points at N_ul 0, 300, 700
    md = rp.fig2_table("rt_snippets", s, [0.0, 3.0, 7.0, 50.0])
    assert ("fig2.ratios 50 × N_l ask for more than the 700 unlabeled sentences of rt_snippets's pool: trained at all "
            "700 (7.0×).") in md
    assert not any("ask for more" in line for line in rp.fig2_table("rt_snippets", s, [0.0, 3.0, 7.0]))


def test_a_comparison_with_no_learned_f1_on_one_side_is_not_checkable():
    """Semi-supervised Word iVAT predicted every test sentence positive: "Attention iVAT ≥ Word iVAT" failed on its
    constant F1 while Attention VAT ≥ Word VAT held. Such a comparison is not checkable, named as such, and a
    failure elsewhere is still listed first."""
    recs = _records(True)
    recs["word_ivat-semi"] |= {"predicted_positive": 100.0, "f1": 90.0}
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    words, flags, _ = rp.claims(per_ds)
    assert flags["attention_ge_word_semi"] is None
    # the judged half is named as holding (it read as numbers without a verdict beside the unjudged one)
    assert words["attention_ge_word_semi"] == ("not checkable (holds: rt_snippets: Attention VAT 83.00 vs Word VAT "
                                               "81.00; rt_snippets: not checkable: Word iVAT (all positive†))")
    recs["attention_vat-semi"]["f1"] = 79.0  # a real loss besides: it fails, and the unjudged pair stays listed
    words, flags, _ = rp.claims({ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()})
    assert flags["attention_ge_word_semi"] is False
    assert words["attention_ge_word_semi"] == ("does not hold (fails: rt_snippets: Attention VAT 79.00 vs Word VAT "
                                               "81.00; rt_snippets: not checkable: Word iVAT (all positive†))")
    recs["attention_ivat-sup"] |= {"predicted_positive": 0.0}  # one of ours constant: judged on the other
    words, *_ = rp.claims({ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()})
    assert words["attention_f1_supervised"].endswith("(Attention iVAT (all negative†) left out))")


def test_a_failed_claim_lists_the_comparisons_that_fail_it_apart_from_those_that_hold():
    """Fig. 2's claim failed on Word VAT alone, and the report listed Attention VAT's rise beside it as if both
    were against the claim."""
    recs = _records(True)
    recs["fig2-word"]["curves"]["word_vat"]["dev_f1"] = [78.0, 76.0, 74.0]
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    words, flags, _ = rp.claims(per_ds)
    assert flags["f1_rises_with_unlabeled"] is False
    fails, holds = words["f1_rises_with_unlabeled"].split("; holds: ")
    assert fails == "does not hold (fails: rt_snippets: Word VAT at N_ul=700 74.00 vs Word VAT at N_ul=0 78.00"
    assert "Attention VAT at N_ul=700 80.00 vs Attention VAT at N_ul=0 78.00" in holds and "Word VAT" not in holds


def test_a_margin_within_the_seed_noise_is_no_win():
    recs = _records(True)
    for key, rec in list(recs.items()):  # a second seed: ours +0.2 / −0.2 around the others' 0.6 → mean 0.7, std 0.28
        if "curves" not in rec:
            second = {**rec, "seed": 1}
            if rec["method"] in rp.OURS:
                rec["corr_pearson"], second["corr_pearson"] = 0.9, 0.5
            recs[f"{key}-1"] = second
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    words, flags, _ = rp.claims(per_ds)
    assert flags["attention_higher_corr"] is False and "within the noise" in words["attention_higher_corr"]
    assert flags["attention_ge_word_semi"] is True


def test_on_a_par_with_attention_at_allows_the_noise_but_not_a_clear_loss():
    """The seed's supervised claims (Sec. 4, 5.1): F1 clearly above vanilla and Word AT/iAT; F1 and r on a par with
    Attention AT/iAT (同等/同程度), judged as "not below the better of them by more than the seeds' noise"."""
    def judged(ours_f1, ours_r, at_f1=(82.0, 82.0), at_r=(0.8, 0.8)):
        recs = _records(True)
        for seed, (f1, r, af1, ar) in enumerate(zip(ours_f1, ours_r, at_f1, at_r, strict=True)):
            for m in rp.METHODS:  # a second seed of every method; ours and attention AT/iAT as given
                rec = recs[f"{m}-sup"] if seed == 0 else recs.setdefault(f"{m}-sup-1", {**recs[f"{m}-sup"], "seed": 1})
                if m in (*rp.OURS, "attention_at", "attention_iat"):
                    rec["f1"], rec["corr_pearson"] = (f1, r) if m in rp.OURS else (af1, ar)
        per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
        return rp.claims(per_ds)

    # ours 81.5 ± 0.71 vs AT's 82.0 ± 0 (and r 0.790 ± 0.028 vs 0.800): below, within the seeds' std → on a par
    words, flags, close = judged((81.0, 82.0), (0.77, 0.81))
    assert flags["vat_as_at_supervised"] is True and flags["attention_f1_supervised"] is True
    # and so within the seeds' spread: the margin −0.50 lies 0.21 from the edge −0.707, nearer than the std 0.707
    assert close["vat_as_at_supervised"] is True
    assert "rt_snippets F1: Attention VAT 81.50 vs Attention AT 82.00, a difference within the noise ±0.707" \
        in words["vat_as_at_supervised"]
    # below by less than the margin of a par (0.25 F1 points, 0.01 in r) with no spread: on a par; beyond it a loss
    words, flags, _ = judged((81.8, 81.8), (0.795, 0.795))
    assert flags["vat_as_at_supervised"] is True
    assert "rt_snippets r: Attention VAT 0.795 vs Attention AT 0.800, within the margin of a par ±0.010" \
        in words["vat_as_at_supervised"]
    assert judged((81.7, 81.7), (0.8, 0.8))[1]["vat_as_at_supervised"] is False
    assert judged((82.0, 82.0), (0.785, 0.785))[1]["vat_as_at_supervised"] is False
    words, flags, close = judged((80.0, 80.0), (0.8, 0.8))
    assert flags["vat_as_at_supervised"] is False and close["vat_as_at_supervised"] is False  # no spread: settled
    assert words["vat_as_at_supervised"].startswith("does not hold (fails: rt_snippets F1: Attention VAT 80.00 vs")
    assert "holds: rt_snippets r:" in words["vat_as_at_supervised"]  # r is on a par: listed apart
    # above them by far still "on a par or better"; level with vanilla's 80.00 is no clear win over it
    assert judged((90.0, 90.0), (0.95, 0.95))[1]["vat_as_at_supervised"] is True
    assert judged((80.0, 80.0), (0.8, 0.8), (80.0, 80.0))[1]["attention_f1_supervised"] is False


def test_claims_not_measured_when_undefined():
    recs = _records(True)
    for rec in recs.values():
        rec["corr_pearson"] = None  # every sentence undefined (e.g. constant attention)
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    words, flags, _ = rp.claims(per_ds)
    assert flags["attention_higher_corr"] is None and words["attention_higher_corr"].startswith("not measured")
    assert flags["attention_ge_word_semi"] is True
    md = "\n".join(rp.tables_markdown("rt_snippets", per_ds["rt_snippets"]))
    assert "| Vanilla | 80.00 | 79.27 | – | 0.852 |" in md


def test_table2_says_when_the_evidence_ranking_is_at_chance():
    def table2(auc_of):
        recs = _records(True)
        for rec in recs.values():
            if "rationale" in rec:
                rec["rationale"]["roc_auc_score"] = auc_of(rec["method"])
        per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
        return "\n".join(rp.tables_markdown("rt_snippets", per_ds["rt_snippets"]))

    at_chance = table2(lambda m: 0.515 if m in rp.OURS else 0.485)
    assert "Ours rank the evidence tokens at chance (ROC-AUC 0.485–0.515 ≈ 0.5)." in at_chance
    assert "at chance" not in table2(lambda m: 0.62 if m in rp.OURS else 0.49)


@pytest.mark.parametrize("ours_better", [True, False])
def test_summarize_writes_tables_figures_and_claims(in_tmp, monkeypatch, ours_better):
    from replab.io import DataError, write_json

    recs = _records(ours_better)
    recs["vanilla-sup-1"] = {**recs["vanilla-sup"], "seed": 1, "f1": 80.5}
    for key, rec in recs.items():
        write_json(Path("metrics/attention_vat") / f"{key}.json", rec)
        if "curves" in rec:  # Fig. 2: no examples
            continue
        write_json(Path("plots/attention_vat/variants") / key / "examples.json", {"examples": [
            {"index": 3, "label": 1, "probability": 0.7, "words": ["a", "fine", "film"],
             "attention": [0.2, 0.5, 0.3], "importance": [0.1, 0.8, 0.1], "evidence": [0, 1, 0]}]})
    monkeypatch.setattr(rp, "metrics_files", lambda cfg: dict.fromkeys(recs, {}))
    section = rp.summarize(Config(), {})  # the defaults; metrics_files: the constructed sweep above
    summary, md = section.summary, section.markdown
    for c in rp.PAPER_CLAIMS:
        assert summary["claims"][c] is ours_better
        assert f"{rp.PAPER_CLAIMS[c]}: **{'holds' if ours_better else 'does not hold'}" in md
    assert "| Vanilla | 80.25 ± 0.35 | 79.27 |" in md  # two seeds: mean ± sample std, paper's SST beside
    assert "lexicon-evidence agreement" in md and "Table 1b" in md and "Fig. 2" in md
    assert Path("plots/attention_vat/summary/fig2_unlabeled.png").stat().st_size > 0
    assert Path("plots/attention_vat/summary/attention_examples.png").stat().st_size > 0
    table1a = summary["datasets"]["rt_snippets"]["table1a"]
    assert table1a["vanilla"]["f1"]["n"] == 2
    json.dumps(summary)  # what the report stage writes to metrics/attention_vat.json
    # every evaluated variant writes its examples: a damaged or missing file is named, never silently skipped
    examples = Path("plots/attention_vat/variants/vanilla-sup/examples.json")
    examples.write_text("{}")
    with pytest.raises(DataError, match=rf"^{examples}: examples: missing \(rerun"):
        rp.summarize(Config(), {})
    examples.unlink()
    with pytest.raises(DataError, match=rf"^{examples}: missing \(run the stage"):
        rp.summarize(Config(), {})


def _write_report_inputs(recs: dict, linear: dict | None = None) -> None:
    """The constructed sweep as the eval stage leaves it: metrics files (NaN / inf written as the tokens, as a hand
    edit leaves them: write_json would write null), each variant's examples.json, and the linear baseline's file."""
    for key, rec in recs.items():
        path = Path("metrics/attention_vat") / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
        if "curves" not in rec:
            (folder := Path("plots/attention_vat/variants") / key).mkdir(parents=True, exist_ok=True)
            (folder / "examples.json").write_text(json.dumps({"examples": [
                {"index": 3, "label": 1, "probability": 0.7, "words": ["a", "fine", "film"],
                 "attention": [0.2, 0.5, 0.3], "importance": [0.1, 0.8, 0.1], "evidence": [0, 1, 0]}]}))
    if linear is not None:
        Path("metrics/attention_vat/rt_snippets/linear_baseline.json").parent.mkdir(parents=True, exist_ok=True)
        Path("metrics/attention_vat/rt_snippets/linear_baseline.json").write_text(json.dumps(linear))


LINEAR = {"model": "TF-IDF logistic regression (ours)", "n_labeled": 100, "dev_f1": 72.0, "dev_accuracy": 62.8,
          "dev_auc": 0.76, "dev_f1_all_positive": 68.2, "f1": 78.4, "accuracy": 68.4, "auc": 0.77,
          "test_f1_all_positive": 76.6}  # what evaluate.linear_baseline writes


def _set(*path_and_value):
    """An edit of a record: set the value at the (nested) key; `DELETE` removes the key."""
    *path, value = path_and_value

    def edit(rec):
        node = rec
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return edit


DELETE = object()
VAT = "metrics/attention_vat/attention_vat-sup.json"
FIG2 = "metrics/attention_vat/fig2-attention.json"
BASELINE = "metrics/attention_vat/rt_snippets/linear_baseline.json"


def test_a_file_whose_axes_are_not_its_keys_is_refused(in_tmp, monkeypatch):
    """The report files each record by the method, setting and data set it holds: a file of another variant copied
    under a key (word AT's results as vanilla's) was counted twice for word AT and never for vanilla, silently."""
    from replab.io import DataError

    recs = _records(True)
    _write_report_inputs(recs, LINEAR)
    monkeypatch.setattr(rp, "metrics_files", lambda cfg: {k: {a: r[a] for a in ("dataset", "method", "setting", "seed")
                                                           if a in r} for k, r in recs.items()})
    rp.summarize(Config(), {})  # every file its key's
    Path(VAT).write_text(json.dumps({**recs["attention_vat-sup"], "method": "word_at"}))
    with pytest.raises(DataError, match=rf"^{re.escape(VAT)}: method = 'word_at', expected 'attention_vat' from its "
                                        r"key and params\.yaml \(params\.yaml changed since its run, or a file of "
                                        r"another run: run `dvc repro`, which reruns what either changed\)$"):
        rp.summarize(Config(), {})


def test_every_kind_of_evidence_has_its_table_2_name():
    """The kind a metrics file's rationale names (evaluate.py: its data set's, or "evidence" for one of no known
    kind) heads Table 2: human rationales, VADER-lexicon words, or an evidence mask of no known kind (all three were
    called "lexicon-evidence agreement" but the first)."""
    assert set(rp.TABLE_2_NAMES) == set(rp.EVIDENCE_KINDS) >= set(rp.EVIDENCE_KIND.values())
    assert "VADER" in rp.TABLE_2_NAMES["lexicon"] and "VADER" not in rp.TABLE_2_NAMES["evidence"]


@pytest.mark.parametrize(("file", "edit", "message"), [
    # a variant's record: a missing or null measure that evaluate.py always writes, NaN / inf (never written)
    (VAT, _set("f1", DELETE), r"record\.f1: missing \(required\)"),
    (VAT, _set("f1", float("nan")), r"f1 = NaN: not a finite number \(allowed: a number, or null where the measure"),
    (VAT, _set("f1", None), r"record\.f1 = (None|null): must be a number"),
    (VAT, _set("dev_auc", float("inf")), r"dev_auc = Infinity: not a finite number"),
    (VAT, _set("corr_pearson", 1.5), r"corr_pearson = 1\.5: out of range \(allowed: -1 … 1"),
    (VAT, _set("f1", 180.0), r"f1 = 180\.0: out of range \(allowed: 0 … 100"),
    # its settings and counts: a sign, a type, a name
    (VAT, _set("eps", -3), r"record\.eps = -3(\.0)?: must be > 0"),
    (VAT, _set("eps", "abc"), r"record\.eps = 'abc': must be a number"),
    (VAT, _set("unlabeled_seen", -5), r"record\.unlabeled_seen = -5: must be >= 0"),
    (VAT, _set("n_unlabeled", 1e300), r"record\.n_unlabeled = 1e\+300: must be an integer"),
    (VAT, _set("method", "bogus"), r"record\.method = 'bogus': not allowed \(allowed: vanilla, word_at"),
    (VAT, _set("rationale", DELETE), r"rationale: missing"),  # the others have evidence: this one must too
    (VAT, _set("rationale", "auprc", DELETE), r"rationale\.auprc: missing"),
    (VAT, _set("rationale", "evidence", 5), r"record\.rationale\.evidence = 5: must be a string"),
    (VAT, _set("rationale", "evidence", "crowd"), r"rationale\.evidence = 'crowd': not allowed \(allowed: human, lex"),
    (VAT, _set("rationale", "documents", 2.5), r"record\.rationale\.documents = 2\.5: must be an integer"),
    (VAT, _set("seed", 2**31), r"record\.seed = 2147483648: must be <= 2147483647"),  # (seeds up to SEED_MAX)
    (VAT, _set("rationale", "evidence", "human"), r"rationale\.evidence = 'human', but rt_snippets's evidence is 'lex"),
    # the Fig. 2 record: N_ul out of range, an unknown method, a NaN or a missing point
    (FIG2, _set("curves", "attention_vat", "n_unlabeled", [0, 300, -6000]),
     r"record\.curves\.attention_vat\.n_unlabeled\[2\] = -6000: must be >= 0"),
    (FIG2, _set("curves", "attention_vat", "n_unlabeled", [0, 300, 1e300]), r"n_unlabeled\[2\] = 1e\+300: must be an"),
    (FIG2, _set("curves", "attention_vat", "n_unlabeled", [0, 300, 10**12]), r"n_unlabeled\[2\] = 10+: must be <="),
    (FIG2, _set("curves", "bogus", {"n_unlabeled": [0, 700], "dev_f1": [78.0, 90.0]}),
     r"record\.curves\.bogus: not a method of Fig\. 2 \(allowed: word_vat, word_ivat, attention_vat, attention_iv"),
    (FIG2, _set("curves", "attention_vat", "dev_f1", [78.0, float("nan"), 80.0]),
     r"curves\.attention_vat\.dev_f1\.1 = NaN: not a finite number"),
    (FIG2, _set("curves", "attention_vat", "dev_f1", [78.0, 80.0]), r"curves\.attention_vat\.dev_f1: 2 values for 3"),
    (FIG2, _set("curves", "attention_vat", "dev_predicted_positive", []),
     r"curves\.attention_vat\.dev_predicted_positive: 0 values for 3"),
    (FIG2, _set("curves", "attention_vat", "dev_predicted_positive", [40.0, 150.0, 0.0]),
     r"dev_predicted_positive\.1 = 150(\.0)?: out of range"),
    (FIG2, _set("n_labeled", DELETE), r"record\.n_labeled: missing"),
    # the linear baseline beside them
    (BASELINE, _set("dev_auc", DELETE), r"record\.dev_auc: missing"),
    (BASELINE, _set("dev_auc", 7.5), r"dev_auc = 7\.5: out of range \(allowed: 0 … 1"),
    (BASELINE, lambda rec: rec.clear(), r"record\.n_labeled: missing"),
    (BASELINE, "[]", r"top level is an array, expected an object"),
    (BASELINE, _set("n_labeled", -100), r"record\.n_labeled = -100: must be >= 1"),
], ids=["no-f1", "f1-nan", "f1-null", "auc-inf", "r-out", "f1-out", "eps-neg", "eps-str", "seen-neg", "n-ul-float",
        "method", "no-rationale", "no-auprc", "evidence-type", "evidence-kind", "documents", "seed-max",
        "evidence-of-another",
        "fig2-n-neg", "fig2-n-huge", "fig2-n-int", "fig2-method", "fig2-nan",
        "fig2-short", "fig2-positive-empty", "fig2-positive-out", "fig2-no-nl",
        "linear-no-auc", "linear-auc-out", "linear-empty", "linear-array",
        "linear-n-neg"])
def test_a_damaged_metrics_file_stops_the_report_in_one_line_naming_file_and_key(in_tmp, monkeypatch, file, edit,
                                                                                  message):
    """Each value the report reads is checked as evaluate.py writes it: a missing key, a wrong type, a value out of
    range, null where a measure is always defined, NaN or infinity (strict JSON is written: an edited file) stop it
    naming the file and key. Before, f1 deleted or NaN showed "–" and made two claims "not measured" silently, ε = -3
    was printed, an unknown Fig. 2 method added a row and entered a claim, and a bad ε was blamed on another file."""
    from replab.io import DataError

    recs = _records(True)
    _write_report_inputs(recs, LINEAR)
    monkeypatch.setattr(rp, "metrics_files", lambda cfg: dict.fromkeys(recs, {}))
    if isinstance(edit, str):
        Path(file).write_text(edit)
    else:
        edit(rec := json.loads(Path(file).read_text()))
        Path(file).write_text(json.dumps(rec))
    with pytest.raises(DataError) as err:
        rp.summarize(Config(), {})
    text = str(err.value)
    assert re.match(rf"{re.escape(file)}: ", text) and re.search(message, text), text
    assert "\n" not in text and "dvc repro -s -f eval_attention_vat" in text


def test_an_undefined_measure_shows_as_a_dash_with_the_note_of_missing_values(in_tmp, monkeypatch):
    """null as evaluate.py writes it (no sentence with a defined correlation, no two-class document for ROC-AUC, a
    single-class dev split for the linear model's AUC) is no error: "–", the claims needing it not measured, and the
    report's note naming each file and measure."""
    from replab import report

    recs = _records(True)
    recs["vanilla-sup"]["corr_pearson"] = None
    recs["attention_vat-semi"]["rationale"]["roc_auc_score"] = None
    _write_report_inputs(recs, {**LINEAR, "dev_auc": None})
    monkeypatch.setattr(rp, "metrics_files", lambda cfg: dict.fromkeys(recs, {}))
    monkeypatch.setattr(report, "_GATHERED", {})
    section = rp.summarize(Config(), {})
    assert "| Vanilla | 80.00 | 79.27 | – | 0.852 |" in section.markdown
    assert "| Attention VAT (semi) | 0.500 / 0.403 | 0.500 / 0.477 | – / 0.646 |" in section.markdown
    assert section.summary["claims"]["attention_higher_corr"] is None  # not measured: vanilla's r is undefined
    assert section.summary["claims"]["attention_better_rationales"] is None
    assert "Diagnosis" not in section.markdown  # the linear model's dev AUC is undefined: nothing to compare
    assert report.missing_note(rp.PAPER) == (
        "Missing values (3; NaN or infinite in the run, written as null, shown as – and left out of means): "
        "`vanilla-sup`: corr_pearson; `attention_vat-semi`: rationale.roc_auc_score; `rt_snippets/linear_baseline`: "
        "dev_auc.")


TINY_CONFIG = {"vocab_size": 12, "embedding_dim": 6, "hidden": 5, "attention_dim": 4}  # _tiny_model's


def _write_trained(root: Path):
    """A scratch tree of the eval stage's inputs: data/processed/rt_snippets and, for the sweep of two supervised
    methods and one semi-supervised one (seed 0), a trained model per variant and the Fig. 2 record. → its cfg."""
    from replab.io import write_json
    from replab.papers.attention_vat.model import Config, Fig2Config, save_model, sweep_variants, variant_dir

    _write_processed(root / "data/processed")
    cfg = Config(datasets=["rt_snippets"], methods=["vanilla", "attention_vat"], semi_methods=["attention_vat"],
                 seeds=[0], n_unlabeled=20, fig2=Fig2Config(methods=["attention_vat"], ratios=[0.0, 1.0]))
    model = _tiny_model()
    run = _record("vanilla", 0, 0)["run"]
    for key, axes in sweep_variants(cfg):
        folder = root / "models/attention_vat" / variant_dir(key, axes)  # <dataset>-<setting>-<seed>/<key>/
        if key.startswith("fig2-"):
            write_json(folder / "train.json", {
                "dataset": "rt_snippets", "family": "attention", "seed": 0, "n_labeled": 20, "ratios": [0.0, 1.0],
                "curves": {"attention_vat": {"n_unlabeled": [0, 20], "dev_f1": [60.0, 65.0]}}, "run": run})
        else:
            eps = None if axes["method"] == "vanilla" else cfg.eps_for(axes["method"])
            save_model(model, TINY_CONFIG, folder, {"n_labeled": 20, "n_unlabeled": 20 if axes["setting"] == "semi"
                                                    else 0, "eps": eps, "run": run})
    return cfg


def _evaluate_dataset(cfg) -> None:
    """The eval stage of rt_snippets: `replab evaluate attention_vat evaluate-rt_snippets dataset=rt_snippets`."""
    from replab.papers import Variant
    from replab.params import Runtime

    ev.evaluate(cfg, Runtime(progress=False, threads=1),
                Variant("attention_vat", "evaluate-rt_snippets", {"dataset": "rt_snippets"}))


def test_evaluate_every_variant_of_a_dataset_then_report(in_tmp):
    """The eval stage's route: `evaluate-<dataset>` measures each trained variant of the sweep (and copies the
    Fig. 2 curves) into metrics/attention_vat/<dataset>/; the report reads exactly those."""
    from replab.io import read_json

    cfg = _write_trained(in_tmp)
    _evaluate_dataset(cfg)
    metrics = read_json("metrics/attention_vat/rt_snippets/rt_snippets-vanilla-supervised-0.json")
    assert metrics["method"] == "vanilla" and metrics["setting"] == "supervised" and metrics["n_unlabeled"] == 0
    assert metrics["rationale"]["documents"] == 12 and 0 <= metrics["f1"] <= 100
    assert "eps_share" not in metrics  # vanilla perturbs nothing
    vat = read_json("metrics/attention_vat/rt_snippets/rt_snippets-attention_vat-semi-0.json")
    assert vat["eps_per_token"] == pytest.approx(cfg.eps_attention / vat["mean_length"] ** 0.5)
    assert vat["eps_share"] == pytest.approx(vat["eps_per_token"] / vat["score_spread"])  # the scores it moves
    assert Path("plots/attention_vat/variants/rt_snippets/rt_snippets-vanilla-supervised-0/examples.json").exists()
    assert read_json("metrics/attention_vat/rt_snippets/fig2-rt_snippets-attention-0.json")["curves"]["attention_vat"][
        "dev_f1"] == [60.0, 65.0]
    section = rp.summarize(cfg, {})
    assert section.summary["claims"]["f1_rises_with_unlabeled"] is True  # 60 → 65 on the curve written above
    assert section.summary["datasets"]["rt_snippets"]["fig2"]["attention_vat"]["20"]["mean"] == 65.0
    assert "| Vanilla |" in section.markdown and "| Attention VAT | 20 |" in section.markdown
    linear = read_json("metrics/attention_vat/rt_snippets/linear_baseline.json")  # ours, beside the networks
    assert linear["n_labeled"] == 20 and 0 <= linear["dev_auc"] <= 1
    assert "Diagnosis (rt_snippets, ours)" in section.markdown
    assert 0 <= metrics["dev_auc"] <= 1 and 0 <= metrics["auc"] <= 1


def test_a_file_of_other_params_than_params_yamls_is_refused(in_tmp):
    """A Fig. 2 file holds the N_ul ratios and the methods of `fig2.methods` its family has, a semi-supervised
    model's file the N_ul params.yaml sets: a file of other params (copied in, or params.yaml edited since) is named
    with both values, never drawn as this run's."""
    from dataclasses import replace

    from replab.io import DataError

    cfg = _write_trained(in_tmp)
    _evaluate_dataset(cfg)
    rp.summarize(cfg, {})  # every file its params'
    fig2 = "metrics/attention_vat/rt_snippets/fig2-rt_snippets-attention-0.json"
    semi = "metrics/attention_vat/rt_snippets/rt_snippets-attention_vat-semi-0.json"
    for changed, message in [
            (replace(cfg, fig2=replace(cfg.fig2, ratios=[0.0, 3.0])), rf"^{fig2}: ratios = \[0\.0, 1\.0\], expected "
                                                                       r"\[0\.0, 3\.0\] from its key and params\.yaml"),
            (replace(cfg, n_unlabeled=30), rf"^{semi}: n_unlabeled = 20, expected 30 from its key and params\.yaml"),
            (replace(cfg, fig2=replace(cfg.fig2, methods=["attention_vat", "attention_ivat"])),
             rf"^{fig2}: curves = attention_vat, expected attention_vat, attention_ivat from params\.yaml's "
             r"attention_vat\.fig2\.methods \(attention family\) \(params\.yaml changed since its run, or a file of "
             r"another run: run `dvc repro`")]:
        with pytest.raises(DataError, match=message):
            rp.summarize(changed, {})
    assert rp.metrics_files(replace(cfg, n_unlabeled=0))["rt_snippets/rt_snippets-attention_vat-semi-0"] == {
        "dataset": "rt_snippets", "method": "attention_vat", "setting": "semi", "seed": 0}  # 0: the pool, any size


def _files(*folders: str) -> dict[str, bytes]:
    """Every file below the folders (relative path → contents)."""
    return {str(f): f.read_bytes() for folder in folders for f in sorted(Path(folder).rglob("*")) if f.is_file()}


OUTS = ("metrics/attention_vat/rt_snippets", "plots/attention_vat/variants/rt_snippets")  # dvc.yaml's eval outs


DIVERGED = Path("models/attention_vat/rt_snippets-semi-attention-0/rt_snippets-attention_vat-semi-0/model.pt")


def _diverge(model_pt: Path) -> None:
    """A NaN weight in a saved model, as a diverged training run would leave it, with train.json's model_sha256
    made to match (`save_trained` refuses such weights, and `load_trained` an edited model.pt or NaN weights)."""
    from replab.io import read_json, sha256_file, write_json

    state = torch.load(model_pt, weights_only=True)
    state["state_dict"]["decoder.weight"][0, 0] = float("nan")
    torch.save(state, model_pt)
    record = model_pt.parent / "train.json"
    write_json(record, {**read_json(record), "model_sha256": sha256_file(model_pt)})


def test_a_failed_evaluation_leaves_every_old_output(in_tmp):
    """A model that fails the evaluation (here a diverged one) stops the stage with the metrics and plot folders
    exactly as the last run left them (none half rewritten), and no temp folder beside them."""
    from replab.io import DataError

    cfg = _write_trained(in_tmp)
    _evaluate_dataset(cfg)
    before = _files(*OUTS)
    assert "metrics/attention_vat/rt_snippets/linear_baseline.json" in before and len(before) == 2 * 3 + 2
    _diverge(DIVERGED)
    with pytest.raises(DataError):
        _evaluate_dataset(cfg)
    assert _files(*OUTS) == before
    assert sorted(p.name for p in Path("metrics/attention_vat").iterdir()) == ["rt_snippets"]
    assert sorted(p.name for p in Path("plots/attention_vat/variants").iterdir()) == ["rt_snippets"]


def test_a_diverged_model_is_named_by_its_file_and_variant(in_tmp, monkeypatch):
    from replab import runtime as rt
    from replab.io import DataError
    from replab.papers import Variant
    from replab.params import Runtime

    cfg = _write_trained(in_tmp)
    _diverge(DIVERGED)
    key = "rt_snippets-attention_vat-semi-0"
    variant = Variant("attention_vat", key, {"dataset": "rt_snippets", "method": "attention_vat", "setting": "semi",
                                             "seed": 0})
    with pytest.raises(DataError) as err:  # one variant alone: `replab evaluate attention_vat <key> axis=…`
        ev.evaluate(cfg, Runtime(progress=False, threads=1), variant)
    assert str(err.value) == (f"{DIVERGED}: state_dict.decoder.weight: 1 of 10 values are NaN or infinite (first at "
                              "flat index 0); a diverged model's weights; rerun the training stage")
    assert not Path("metrics").exists()
    # past the weights' check (finite weights can still overflow), the predictions' own check names the variant
    monkeypatch.setattr("replab.io.first_non_finite", lambda state: None)
    assert rt.load_trained(DIVERGED.parent, "cpu")  # (the check is off now)
    with pytest.raises(DataError) as err:
        ev.evaluate(cfg, Runtime(progress=False, threads=1), variant)
    assert str(err.value).startswith(f"{DIVERGED} ({key}), test split: predictions: 12 of 12 values are NaN")
    assert "\n" not in str(err.value) and not Path("metrics").exists()


def test_evaluating_fewer_variants_leaves_no_file_of_the_dropped_ones(in_tmp):
    """The stage's folders are replaced whole: a variant no longer in params.yaml (here Attention VAT supervised)
    keeps neither metrics nor plot data, and nothing else left in the folders survives either."""
    from dataclasses import replace

    cfg = _write_trained(in_tmp)
    _evaluate_dataset(cfg)
    Path(OUTS[0], "stray.json").write_text("{}")
    _evaluate_dataset(replace(cfg, methods=["vanilla"]))
    names = sorted(Path(f).name for f in _files(OUTS[0]))
    assert names == ["fig2-rt_snippets-attention-0.json", "linear_baseline.json",
                     "rt_snippets-attention_vat-semi-0.json", "rt_snippets-vanilla-supervised-0.json"]
    assert sorted(p.name for p in Path(OUTS[1]).iterdir()) == ["rt_snippets-attention_vat-semi-0",
                                                                "rt_snippets-vanilla-supervised-0"]


def _saved(folder: Path, config: dict | None = None, weights: dict | None = None, record=None) -> Path:
    """A model folder as save_model writes it, with `config` / `weights` / train.json contents replaced."""
    from replab.papers.attention_vat.model import save_model

    save_model(weights or _tiny_model(), config or TINY_CONFIG, folder, {"n_labeled": 20})
    if isinstance(record, dict):  # the model's sha256 kept, so the check of the record's value is reached
        record = {**record, "model_sha256": json.loads((folder / "train.json").read_text())["model_sha256"]}
    if record is not None:
        (folder / "train.json").write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize("change, message", [
    ({"config": {**TINY_CONFIG, "pad_id": 99999}}, r"model\.pt: config\.pad_id = 99999: must be < vocab_size \(12\)"),
    ({"config": {**TINY_CONFIG, "hidden": "5"}}, r"model\.pt: config\.hidden = '5': must be an integer"),
    ({"config": {**TINY_CONFIG, "dropout": float("nan")}}, r"model\.pt: config\.dropout = nan: must be finite"),
    ({"config": {**TINY_CONFIG, "layers": 2}}, r"model\.pt: config\.layers: unknown key"),
    ({"config": {**TINY_CONFIG, "vocab_size": 13}},  # trained on another vocabulary
     r"model\.pt: config\.vocab_size = 13, but the data's vocab\.json has 12"),
    ({"weights": {**_tiny_model().state_dict(), "embedding.weight": torch.zeros(13, 6)}},  # torch: two lines
     r"model\.pt: not an attention_vat model \(Error\(s\) in loading .* size mismatch for embedding\.weight"),
    ({"record": []}, r"train\.json: top level is an array, expected an object"),
    ({"record": {"eps": "5"}}, r"train\.json: record\.eps = '5': must be a number"),
])
def test_a_corrupt_model_folder_is_a_one_line_error_naming_the_file(tmp_path, change, message):
    from replab.io import DataError

    folder = _saved(tmp_path / "m", **change)
    with pytest.raises(DataError, match=message) as err:
        ev.load_variant(folder, 12, torch.device("cpu"))
    assert "\n" not in str(err.value) and "\t" not in str(err.value)
    model, record = ev.load_variant(_saved(tmp_path / "ok"), 12, torch.device("cpu"))  # the unchanged folder loads
    assert record.n_labeled == 20 and record.eps is None and not model.training


@pytest.mark.parametrize("curve, message", [
    ({"n_unlabeled": [0, 20], "dev_f1": [60.0, None]},
     r"curves\.attention_vat\.dev_f1\[1\] = (None|null): must be a number"),
    ({"n_unlabeled": [0, 20], "dev_f1": [60.0, 165.0]}, r"curves\.attention_vat\.dev_f1\[1\] = 165\.0: must be <= 100"),
    ({"n_unlabeled": [0, 20], "dev_f1": [60.0]}, r"curves\.attention_vat\.dev_f1: 1 values for 2 N_ul"),
    ({"dev_f1": [60.0]}, r"curves\.attention_vat\.n_unlabeled: missing"),
])
def test_a_fig2_curve_with_a_null_or_bad_value_is_refused_naming_the_file(in_tmp, curve, message):
    """A null dev F1 (or NaN, which reads as null) would reach the report's Fig. 2 as a silent "–"."""
    from replab.io import DataError, write_json

    key, axes = "fig2-rt_snippets-attention-0", {"dataset": "rt_snippets", "family": "attention", "seed": 0}
    folder = in_tmp / "models/attention_vat" / key
    write_json(folder / "train.json", {"n_labeled": 20, "curves": {"attention_vat": curve}})
    with pytest.raises(DataError, match=rf"{key}/train\.json: {message}") as err:
        ev.collect_fig2(key, axes, folder, in_tmp / "metrics")
    assert "\n" not in str(err.value) and not (in_tmp / "metrics").exists()
    (folder / "train.json").write_text('{"curves": {"attention_vat": {"n_unlabeled": [0], "dev_f1": [NaN]}}}')
    with pytest.raises(DataError, match=r"train\.json: holds the number NaN, which replab never writes"):
        ev.collect_fig2(key, axes, folder, in_tmp / "metrics")
    (folder / "train.json").write_text('{"curves": {"attention_vat": {"n_unlabeled": [0], "dev_f1": [null]}}}')
    with pytest.raises(DataError, match=r"dev_f1\[0\] = (None|null): must be a number"):
        ev.collect_fig2(key, axes, folder, in_tmp / "metrics")


def _write_keyword_set(root: Path) -> Path:
    """A processed set in the real layout whose label is whether the word w0 occurs (every word seen in train)."""
    rng = np.random.default_rng(3)
    vocab = ["<pad>", "<unk>", "<SOS>", "<EOS>"] + [f"w{i}" for i in range(8)]
    folder = root / "rt_snippets"
    folder.mkdir(parents=True)
    for split, n in (("train", 60), ("dev", 30), ("test", 40)):
        words = rng.integers(3, 7, n)
        tokens = np.zeros((n, int(words.max()) + 2), np.int64)
        labels = np.arange(n) % 2 if split != "dev" else (np.arange(n) % 3 == 0).astype(np.int64)
        for i, w in enumerate(words):
            body = rng.integers(5, 12, w)  # w1..w7
            body[rng.integers(w)] = 4 if labels[i] else body[0]  # w0 marks a positive sentence
            tokens[i, 0], tokens[i, 1:w + 1], tokens[i, w + 1] = 2, body, 3
        np.savez(folder / f"{split}.npz", tokens=tokens, lengths=words + 2, labels=labels)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    write_manifest(folder)  # as prepare records it
    return folder


def test_linear_baseline_matches_sklearn_on_the_words(tmp_path):
    """The baseline on token ids equals scikit-learn's TfidfVectorizer + LogisticRegression on the sentences
    written out as words (an independent route); the keyword set is separable; all-positive F1 is 2p/(1+p)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    folder = _write_keyword_set(tmp_path)
    out = ev.linear_baseline("rt_snippets", root=tmp_path)
    vocab = json.loads((folder / "vocab.json").read_text())

    def texts(split):
        a = np.load(folder / f"{split}.npz")
        return [" ".join(vocab[t] for t in row[:n]) for row, n in zip(a["tokens"], a["lengths"])], a["labels"]

    (xtr, ytr), (xd, yd), (xt, yt) = texts("train"), texts("dev"), texts("test")
    vec = TfidfVectorizer(sublinear_tf=True, token_pattern=r"\S+", lowercase=False).fit(xtr)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(vec.transform(xtr), ytr)
    assert out["n_labeled"] == 60
    assert out["dev_auc"] == pytest.approx(roc_auc_score(yd, clf.decision_function(vec.transform(xd))), abs=1e-6)
    assert out["auc"] == pytest.approx(roc_auc_score(yt, clf.decision_function(vec.transform(xt))), abs=1e-6)
    assert out["auc"] == 1.0 and out["accuracy"] == 100.0
    p = yd.mean()  # 10 of 30 positive
    assert out["dev_f1_all_positive"] == pytest.approx(100 * 2 * p / (1 + p))


def test_linear_baseline_one_class_train_is_an_error(tmp_path):
    from replab.io import DataError

    folder = _write_keyword_set(tmp_path)
    a = dict(np.load(folder / "train.npz"))
    np.savez(folder / "train.npz", **{**a, "labels": np.zeros_like(a["labels"])})
    with pytest.raises(DataError, match=r"train\.npz: one class only"):
        ev.linear_baseline("rt_snippets", root=tmp_path)


def test_diagnosis_compares_the_networks_with_the_linear_model():
    recs = _records(True)
    for rec in recs.values():
        if "method" in rec:
            rec["dev_auc"] = 0.70 if rec["method"] == "vanilla" else 0.65
    s = rp.dataset_summary(rp.group(recs)["rt_snippets"])
    linear = {"n_labeled": 100, "dev_auc": 0.75, "f1": 78.0, "dev_f1_all_positive": 68.2}
    text = rp.diagnosis_markdown("rt_snippets", s, linear)[0]
    assert "dev AUC 0.650–0.700 and test F1 80.00–83.00" in text and "reaches dev ROC-AUC 0.750" in text
    assert "Every network stays at least 0.050 AUC below the linear model" in text
    assert "reach the linear model" in rp.diagnosis_markdown("rt_snippets", s, {**linear, "dev_auc": 0.705})[0]


def test_report_states_the_perturbation_settings_and_each_eps_against_what_it_moves():
    """SPEC: ε on the attention scores is ours to choose, so the report states it (and ξ, K, λ, α's normalisation),
    each ε with its per-token RMS size and its share of what it moves (evaluate.py: the model's own embedding rows
    or score spread), averaged over the models trained with it."""
    recs = _records(True)
    sizes = {"attention": (1.0, 0.25, 0.5), "word_iat": (4.9, 1.225, 0.3), "word_ivat": (4.9, 1.225, 0.3),
             "word": (1.6, 0.4, 0.1)}
    for rec in recs.values():
        if rec.get("method", "vanilla") != "vanilla":
            key = next(k for k in sizes if rec["method"] == k or rec["method"].startswith(k + "_"))
            rec["eps"], rec["eps_per_token"], rec["eps_share"] = sizes[key]
    recs["word_at-sup"]["eps_share"] = 0.2  # the mean over a group's models: (0.2 + 0.1 + 0.1) / 3
    cfg = SimpleNamespace(xi=0.1, power_iterations=1, lam=1.0, alpha_norm="token", selection="auc")
    (text, _) = rp.settings_markdown(cfg, recs)
    assert "best dev" not in text  # one ε, not chosen
    assert ("ε = 1 for Attention AT, Attention iAT, Attention VAT, Attention iVAT (rt_snippets 0.25 per token in "
            "RMS, 50% of the score spread); 1.6 for Word AT, Word VAT (rt_snippets 0.40 per token in RMS, 13% of a "
            "row); 4.9 for Word iAT, Word iVAT (rt_snippets 1.23 per token in RMS, 30% of a row); ξ = 0.1, K = 1, "
            "λ = 1; iAT/iVAT normalise α per token (`alpha_norm: token`): on the attention scores a sign-gradient "
            "step") in text
    # a second data set of long documents: its sizes stand beside the first's, never averaged with them
    recs["word_at-sup-imdb"] = {**recs["word_at-sup"], "dataset": "imdb", "eps_per_token": 0.1, "eps_share": 0.02}
    assert "1.6 for Word AT, Word VAT (imdb 0.10 per token in RMS, 2% of a row; rt_snippets 0.40 per token in RMS, " \
        "13% of a row)" in rp.settings_markdown(cfg, recs)[0]
    del recs["word_at-sup-imdb"]
    # eps_attention_grid: each attention model's ε chosen on dev; the grid is said once, the choices as above
    chosen = {k: {**r, "eps_selection": {"dev": {"1": 0.7, "3": 0.71}}} for k, r in recs.items()
              if r.get("method", "").startswith("attention_")}
    text = rp.settings_markdown(cfg, {**recs, **chosen})[0]
    assert "(rt_snippets 0.25 per token in RMS, 50% of the score spread); 1.6 for Word AT" in text
    assert ("30% of a row); the attention ε of each model: its best dev auc of 1, 3 (the word-level ε's are fixed, "
            "Miyato's and Sato's scaled: only the attention side is tuned on dev, which favours it in the "
            "attention-vs-word claims); ξ = 0.1") in text
    sentence = rp.settings_markdown(SimpleNamespace(**{**vars(cfg), "alpha_norm": "sentence"}), recs)[0]
    assert "over the sentence (`alpha_norm: sentence`)" in sentence and "sign-gradient" not in sentence
    del recs["word_at-sup"]["eps_share"]  # a record of an older evaluation: ε without its size
    assert "1.6 for Word AT, Word VAT;" in rp.settings_markdown(cfg, recs)[0]
    assert rp.settings_markdown(cfg, _records(True)) == []  # records without ε (older runs): no line


def test_table2_gives_the_semi_supervised_models_n_ul_and_says_when_there_was_no_pool():
    recs = _records(True)
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    assert "the semi-supervised models at N_ul = 700" in "\n".join(rp.tables_markdown("rt_snippets",
                                                                                       per_ds["rt_snippets"]))
    for rec in recs.values():
        if rec.get("setting") == "semi":
            rec["n_unlabeled"] = 0  # e.g. eraser_movies prepared without a pool
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    md = "\n".join(rp.tables_markdown("rt_snippets", per_ds["rt_snippets"]))
    assert "the semi-supervised models at N_ul = 0 (no unlabeled pool prepared" in md
    recs["word_vat-semi"]["n_unlabeled"] = 700  # one method with a pool: no such remark
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    md = "\n".join(rp.tables_markdown("rt_snippets", per_ds["rt_snippets"]))
    assert "at N_ul = 0 / 700" in md and "no unlabeled pool" not in md


def test_a_mean_over_some_seeds_is_marked_once():
    recs = _records(True)
    recs["vanilla-sup-1"] = {**recs["vanilla-sup"], "seed": 1, "corr_pearson": None}
    per_ds = {ds: rp.dataset_summary(g) for ds, g in rp.group(recs).items()}
    md = "\n".join(rp.tables_markdown("rt_snippets", per_ds["rt_snippets"]))
    vanilla = next(line for line in md.splitlines() if line.startswith("| Vanilla |"))
    assert vanilla.count("(1 of 2)") == 1, vanilla


def test_perturbation_scale_counts_every_real_token_and_no_padding():
    embedding = torch.nn.Embedding(4, 2, padding_idx=0)
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor([[9.0, 9.0], [3.0, 4.0], [0.0, 1.0], [6.0, 8.0]]))  # norms –, 5, 1, 10
    split = SimpleNamespace(tokens=torch.tensor([[1, 1, 3], [2, 0, 0]]), lengths=torch.tensor([3, 1]))
    # sentence 0: scores (0, ln 2, ln 4) + any shift → weights 1/7, 2/7, 4/7; sentence 1 (one token) has no spread
    attention = np.array([[1 / 7, 2 / 7, 4 / 7], [1.0, 0.0, 0.0]])
    scale = ev.perturbation_scale(SimpleNamespace(embedding=embedding), split, attention)
    spread = float(np.std([0.0, math.log(2), math.log(4)]))
    assert scale == {"embedding_norm": pytest.approx((5 + 5 + 10 + 1) / 4), "mean_length": 2.0,
                     "score_spread": pytest.approx(spread)}


def test_the_diagnosis_gives_the_test_f1_of_learned_networks_only():
    """"our networks reach … test F1 66.39–76.56": 76.56 was the all-positive Word iVAT's, which the report elsewhere
    calls no learned result. The F1 range leaves out constant classifiers (†); the AUC range keeps every network."""
    def net(auc, f1, positive):
        return {"dev_auc": {"mean": auc}, "f1": {"mean": f1},
                "predicted_positive": {"mean": positive, "std": 0.0, "n": 1, "missing": 0}}

    s = {"table1a": {"vanilla": net(0.70, 70.0, 55.0), "word_iat": net(0.60, 76.56, 100.0)},
         "table1b": {"attention_vat": net(0.68, 73.0, 40.0)}}
    linear = {"n_labeled": 100, "dev_auc": 0.8, "f1": 78.0, "dev_f1_all_positive": 68.0}
    text = rp.diagnosis_markdown("rt_snippets", s, linear)[0]
    assert "our networks reach dev AUC 0.600–0.700 and test F1 70.00–73.00 (constant classifiers † aside)." in text
    s["table1a"].pop("vanilla"), s["table1b"].pop("attention_vat")
    assert "test F1 – (each a constant classifier †)." in rp.diagnosis_markdown("rt_snippets", s, linear)[0]
