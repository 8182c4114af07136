"""Evaluation measures shared across papers, vectorised over a batch of padded rows (numpy only, no torch).

Rows are padded to a common length T; `mask` [N, T] (bool) marks the positions each measure uses (real tokens,
and for text models excluding SOS/EOS). Per-row results are NaN where the measure is undefined (fewer than two
positions, a constant row); the aggregates skip those rows and count them, so an undefined value never passes
silently as a number. Non-finite inputs inside the mask raise ValueError.

- `percent`: the share of true entries in %, from the integer count.
- `binary_f1`: F1 of the positive class (AllenNLP's `F1Measure(positive_label=1)`, which the attention
  papers' code reports).
- `masked_pearson`, `masked_kendall_tau`: per-row Pearson r and Kendall τ-b (`scipy.stats.pearsonr` /
  `scipy.stats.kendalltau` on each row's masked positions, computed for all rows at once).
- `token_soft_metrics`: ERASER's token-level soft-rationale scores (DeYoung et al. 2020,
  `rationale_benchmark/metrics.py::score_soft_tokens`): per document, scikit-learn's
  `precision_recall_curve` + `auc(recall, precision)` (AUPRC), `average_precision_score` and
  `roc_auc_score`; AUPRC averaged over every document, AP and ROC-AUC over the documents that have both
  classes (ERASER discards single-class documents for those two only).
"""

from __future__ import annotations

import numpy as np


def _check(name: str, values: np.ndarray, mask: np.ndarray) -> None:
    if values.shape != mask.shape:
        raise ValueError(f"{name}: shape {values.shape} does not match the mask's {mask.shape}")
    if not np.isfinite(values[mask]).all():
        raise ValueError(f"{name}: non-finite values at masked positions")


def percent(hits) -> float:
    """The share of true entries in % (an accuracy): 100·count/N from the integer count, so that 55 of 400 is
    13.75 and not 100·mean's 13.750000000000002. hits: [N] bool, a numpy array or a torch tensor on any device;
    NaN when N = 0."""
    n = hits.numel() if hasattr(hits, "numel") else np.size(hits)
    return 100 * int(hits.sum()) / n if n else float("nan")


def binary_f1(pred, labels) -> float:
    """F1 of the positive class (1) in [0, 1]: 2·TP / (2·TP + FP + FN); 0 when there is no positive at all.

    pred, labels: [N] of 0/1 (bool or int).
    """
    pred, labels = np.asarray(pred).astype(bool), np.asarray(labels).astype(bool)
    if pred.shape != labels.shape:
        raise ValueError(f"binary_f1: predictions {pred.shape} and labels {labels.shape} differ in shape")
    tp = np.count_nonzero(pred & labels)
    denominator = 2 * tp + np.count_nonzero(pred & ~labels) + np.count_nonzero(~pred & labels)
    return 2 * tp / denominator if denominator else 0.0


def masked_pearson(x, y, mask) -> np.ndarray:
    """Pearson r per row over the masked positions. x, y: [N, T] float; mask: [N, T] bool → [N] (NaN where a row
    has < 2 positions or is constant in x or y, as scipy.stats.pearsonr)."""
    mask = np.asarray(mask, bool)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    _check("x", x, mask)
    _check("y", y, mask)
    n = mask.sum(1)
    safe_n = np.maximum(n, 1)
    dx = np.where(mask, x - np.where(mask, x, 0).sum(1, keepdims=True) / safe_n[:, None], 0.0)
    dy = np.where(mask, y - np.where(mask, y, 0).sum(1, keepdims=True) / safe_n[:, None], 0.0)
    denominator = np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    ok = (n >= 2) & (denominator > 0)
    r = np.full(len(x), np.nan)
    r[ok] = np.clip((dx * dy).sum(1)[ok] / denominator[ok], -1.0, 1.0)
    return r


def masked_kendall_tau(x, y, mask, max_elements: int = 1 << 22) -> np.ndarray:
    """Kendall τ-b per row over the masked positions (scipy.stats.kendalltau's default variant, ties handled).

    τ_b = (C − D) / sqrt((n0 − n_x)(n0 − n_y)) with n0 = n(n−1)/2 pairs and n_x, n_y the pairs tied in x, y.
    x, y: [N, T]; mask: [N, T] bool → [N] (NaN where every pair is tied in x or in y, or n < 2). Pairwise signs
    are built for chunks of rows of at most `max_elements` pair entries, so memory stays bounded for long texts.
    """
    mask = np.asarray(mask, bool)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    _check("x", x, mask)
    _check("y", y, mask)
    n_rows, length = x.shape
    upper = np.triu(np.ones((length, length), bool), k=1)
    rows = max(1, max_elements // max(1, length * length))
    tau = np.full(n_rows, np.nan)
    for start in range(0, n_rows, rows):
        part = slice(start, start + rows)
        m = mask[part]
        pairs = m[:, :, None] & m[:, None, :] & upper
        sx = np.sign(x[part][:, :, None] - x[part][:, None, :]) * pairs
        sy = np.sign(y[part][:, :, None] - y[part][:, None, :]) * pairs
        concordance = (sx * sy).sum((1, 2))
        untied = np.count_nonzero(sx, axis=(1, 2)) * np.count_nonzero(sy, axis=(1, 2)).astype(np.float64)
        ok = untied > 0
        chunk = np.full(len(m), np.nan)
        chunk[ok] = np.clip(concordance[ok] / np.sqrt(untied[ok]), -1.0, 1.0)
        tau[part] = chunk
    return tau


def token_soft_per_document(truth, scores, mask) -> dict[str, np.ndarray]:
    """ERASER's three token-soft scores for every document at once (no per-document Python loop).

    truth: [N, T] bool (evidence tokens); scores: [N, T] float (e.g. attention weights); mask: [N, T] bool (the
    document's tokens; every row needs at least one). Returns {"auprc", "average_precision", "roc_auc",
    "single_class"}, each [N]. The curves are scikit-learn's: thresholds at the distinct scores in decreasing
    order (ties form one step), precision = TP / (TP + FP), recall = TP / P with the point (recall 0, precision 1)
    appended; AUPRC is the trapezoidal area under it (`auc(recall, precision)`), AP = Σ ΔR·P, ROC-AUC the
    trapezoidal area under (FPR, TPR) from (0, 0). A document without evidence gets recall 1 at every threshold
    (scikit-learn ≥ 1.1), hence AUPRC 0.5 whatever the scores; one that is all evidence gets 1.0. AP and ROC-AUC
    are NaN for single-class documents (ERASER skips them).
    """
    mask = np.asarray(mask, bool)
    truth = np.asarray(truth, bool) & mask
    scores = np.asarray(scores, np.float64)
    _check("scores", scores, mask)
    if truth.shape != mask.shape:
        raise ValueError(f"truth: shape {truth.shape} does not match the mask's {mask.shape}")
    n_docs, length = scores.shape
    lengths = mask.sum(1)
    if (lengths == 0).any():
        raise ValueError(f"document {int(np.argmin(lengths))}: no tokens under the mask")
    # sort every row by decreasing score, masked-out positions last (stable, like scikit-learn's mergesort)
    key = np.where(mask, -scores, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    key = np.take_along_axis(key, order, 1)
    true_positives = np.cumsum(np.take_along_axis(truth, order, 1), axis=1)
    position = np.arange(length)
    # a threshold closes each group of tied scores: its last position
    group_end = np.ones((n_docs, length), bool)
    group_end[:, :-1] = key[:, 1:] != key[:, :-1]
    group_end &= position < lengths[:, None]
    # every position takes the curve point of its tie group (within a group the curve does not move)
    end_index = np.minimum.accumulate(np.where(group_end, position, length)[:, ::-1], axis=1)[:, ::-1]
    end_index = np.minimum(end_index, lengths[:, None] - 1)
    tps = np.take_along_axis(true_positives, end_index, 1).astype(np.float64)
    fps = end_index + 1 - tps
    positives = true_positives[np.arange(n_docs), lengths - 1].astype(np.float64)
    negatives = lengths - positives
    precision = tps / (end_index + 1)
    recall = np.where(positives[:, None] > 0, tps / np.maximum(positives, 1)[:, None], 1.0)
    recall = np.concatenate([np.zeros((n_docs, 1)), recall], axis=1)
    precision = np.concatenate([np.ones((n_docs, 1)), precision], axis=1)
    d_recall = np.diff(recall, axis=1)
    auprc = (d_recall * (precision[:, 1:] + precision[:, :-1]) / 2).sum(1)
    average_precision = (d_recall * precision[:, 1:]).sum(1)
    single = (positives == 0) | (negatives == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.concatenate([np.zeros((n_docs, 1)), tps / positives[:, None]], axis=1)
        fpr = np.concatenate([np.zeros((n_docs, 1)), fps / negatives[:, None]], axis=1)
        roc_auc = (np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2).sum(1)
    average_precision = np.where(single, np.nan, average_precision)
    roc_auc = np.where(single, np.nan, roc_auc)
    return {"auprc": auprc, "average_precision": average_precision, "roc_auc": roc_auc, "single_class": single}


def token_soft_metrics(truth, scores, mask) -> dict[str, float | int | None]:
    """ERASER's `token_soft_metrics` of a set of documents: {"auprc" (mean over every document),
    "average_precision", "roc_auc_score" (means over two-class documents; None if there is none),
    "documents", "single_class_documents", "documents_without_evidence"}. Shapes as `token_soft_per_document`."""
    per_doc = token_soft_per_document(truth, scores, mask)
    two_class = ~per_doc["single_class"]
    has_evidence = (np.asarray(truth, bool) & np.asarray(mask, bool)).any(1)

    def mean(values: np.ndarray) -> float | None:
        return float(values.mean()) if len(values) else None

    return {"auprc": mean(per_doc["auprc"]),
            "average_precision": mean(per_doc["average_precision"][two_class]),
            "roc_auc_score": mean(per_doc["roc_auc"][two_class]),
            "documents": int(len(two_class)),
            "single_class_documents": int((~two_class).sum()),
            "documents_without_evidence": int((~has_evidence).sum())}


def nan_summary(values) -> dict[str, float | int | None]:
    """Mean of the defined (finite) per-row values and how many rows were undefined: {"mean", "defined",
    "undefined"}; mean None when no row is defined."""
    values = np.asarray(values, np.float64)
    ok = np.isfinite(values)
    return {"mean": float(values[ok].mean()) if ok.any() else None, "defined": int(ok.sum()),
            "undefined": int((~ok).sum())}
