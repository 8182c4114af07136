"""attention_vat evaluation: F1 on test (and dev, for Fig. 2), attention–gradient agreement (Pearson r, the
seed's measure; Kendall τ, Jain & Wallace's), rationale agreement (ERASER's token-soft metrics) and the attention
maps of a few test sentences for the report's figure.

Gradient importance (Jain & Wallace 2019, §3.1, and their `gradient_mem`): backpropagate Σ σ(ŷ) of a batch to
the embeddings e [B, T, d] with the graph cut at the attention (the weights held constant, as J&W do); a token's
importance is |Σ_d ∂σ(ŷ)/∂e ⊙ e|, normalised to sum 1 over the tokens compared. The model runs in eval mode (no
dropout; J&W's code switches to train mode because cuDNN's RNN backward needs it; we switch cuDNN off for this
backward instead). Samples do not interact in the network, so one backward gives every sentence's gradient.

Tokens compared: real tokens only, without `<SOS>`/`<EOS>` (J&W's [1:L−1]); a sentence with fewer than two
such tokens, or a constant attention or importance, has no correlation (counted as undefined, not averaged).
Rationale agreement: the attention weights as soft token scores against the evidence mask (ERASER movies: human
evidence; rt_snippets: VADER-lexicon evidence, reported as "lexicon-evidence agreement").

F1 is the positive class's (the attention papers' AllenNLP `F1Measure(positive_label=1)`), predicting positive
when σ(ŷ) > 0.5. (Their code feeds the raw logit into that metric, which moves the threshold to logit 0.5; we
use the probability.)

`evaluate(cfg, runtime, variant)` measures one trained variant; with the key `evaluate-<dataset>` it measures every
variant of that dataset in params.yaml in one process (dvc.yaml's eval stage): one interpreter start and one data
load instead of one per model (13 models and the Fig. 2 curves, each a few seconds of work; a process start-up
costs about as much).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from replab import runtime as rt
from replab.data.text import load_text_split, read_vocab
from replab.io import DataError, read_json, write_json
from replab.measures import binary_f1, masked_kendall_tau, masked_pearson, nan_summary, token_soft_metrics
from replab.params import ParamError

EXAMPLES = 4  # test sentences whose attention maps the report draws
EXAMPLE_LENGTH = (6, 16)  # their number of words (short enough to label every token)
MAX_BATCH_TOKENS = 1 << 15  # padded tokens per evaluation batch (memory bound for long documents)
EVIDENCE_KIND = {"eraser_movies": "human", "rt_snippets": "lexicon"}


@dataclass
class TextSplit:
    """One processed split on the device: tokens [N, T] (0-padded), lengths [N], labels [N] (numpy), evidence
    [N, T] bool (numpy) or None, and `compare` [N, T] bool: the positions the agreement measures use."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: np.ndarray
    evidence: np.ndarray | None
    compare: np.ndarray


@dataclass
class EvalData:
    dataset: str
    dev: TextSplit
    test: TextSplit
    vocab: list[str]
    evidence_kind: str | None  # "human" | "lexicon" | None
    train_size: int | None  # labeled training sentences (meta.json), the N_l of Fig. 2's x axis


def load_eval_data(dataset: str, device, root: Path | None = None) -> EvalData:
    """dev and test of data/processed/<dataset>/ (replab.loaders.text.load_text checks the arrays) with their evidence
    masks, the vocabulary and the SOS/EOS ids of meta.json."""
    from replab.data.registry import PROCESSED_ROOT
    from replab.loaders.text import load_text

    folder = (root or PROCESSED_ROOT) / dataset
    text = load_text(dataset, device, root=root, splits=("dev", "test"))
    specials = [int(text.special_ids[k]) for k in ("sos", "eos") if text.special_ids.get(k) is not None]
    vocab = read_vocab(folder)
    splits = {}
    for name in ("dev", "test"):
        tokens, lengths = text.tokens[name], text.lengths[name]
        real = (torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]).cpu().numpy()
        compare = real & ~np.isin(tokens.cpu().numpy(), specials)
        evidence = text.evidence.get(name)  # 0/1 of the tokens' shape
        if evidence is not None:
            evidence = evidence.astype(bool) & compare
        splits[name] = TextSplit(tokens, lengths, text.labels[name].cpu().numpy().astype(np.int64), evidence, compare)
    kind = EVIDENCE_KIND.get(dataset, "evidence") if splits["test"].evidence is not None else None
    train_size = (read_json(folder / "meta.json", expect=dict).get("counts") or {}).get("train")
    return EvalData(dataset, splits["dev"], splits["test"], vocab, kind, train_size)


def length_batches(lengths: np.ndarray, max_tokens: int = MAX_BATCH_TOKENS) -> list[np.ndarray]:
    """Indices grouped by similar length (sorted), each batch at most `max_tokens` padded tokens."""
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = int(lengths[order[min(len(order), start + 1) - 1]])
        size = max(1, max_tokens // max(longest, 1))
        # the longest of the batch is its last element (sorted): shrink until it fits
        while size > 1 and int(lengths[order[min(len(order), start + size) - 1]]) * size > max_tokens:
            size //= 2
        batches.append(order[start:start + size])
        start += size
    return batches


def gradient_importance(model, tokens: torch.Tensor, lengths: torch.Tensor, compare: torch.Tensor,
                        detach_attention: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """J&W's gradient importance: |Σ_d ∂σ(ŷ)/∂e ⊙ e| per token, normalised to sum 1 over `compare`.

    tokens [B, T] long, lengths [B] long, compare [B, T] bool → (importance [B, T] (0 outside `compare`; NaN rows
    where it sums to 0), logit [B], attention [B, T]) — the pass that gives the gradient also gives the
    prediction. `detach_attention`: the graph is cut at the attention (J&W §3.1: "we disconnect the computation
    graph at the attention module"), so the gradient reaches e only through the BiLSTM states. Uses the model's
    `encode` (→ embedded, h, scores, mask) and `attend(h, scores, mask)` (→ logit, attention).
    """
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        enc = model.encode(tokens, lengths, dropout=False)
        scores = enc.scores.detach() if detach_attention else enc.scores
        logit, attention = model.attend(enc.h, scores, enc.mask)
        if not enc.embedded.requires_grad:
            raise RuntimeError("attention_vat model: the embeddings are not on the autograd graph")
        (grad,) = torch.autograd.grad(torch.sigmoid(logit).sum(), enc.embedded)
    importance = (grad * enc.embedded.detach()).sum(-1).abs() * compare
    total = importance.sum(1, keepdim=True)
    importance = torch.where(total > 0, importance / total.clamp_min(1e-30), torch.full_like(importance, float("nan")))
    return importance, logit.detach(), attention.detach()


@dataclass
class Outputs:
    """A split's model outputs on the host: probability [N], attention [N, T], importance [N, T] (or None)."""

    probability: np.ndarray
    attention: np.ndarray
    importance: np.ndarray | None


def run_split(model, split: TextSplit, with_gradients: bool, max_tokens: int = MAX_BATCH_TOKENS) -> Outputs:
    """Predictions and attention (and gradient importance) over a split in length-sorted batches, scattered back to
    split order."""
    n, length = split.tokens.shape
    probability = np.empty(n)
    attention = np.zeros((n, length))
    importance = np.zeros((n, length)) if with_gradients else None
    compare = torch.from_numpy(split.compare).to(split.tokens.device)
    for idx in length_batches(split.lengths.cpu().numpy(), max_tokens):
        index = torch.from_numpy(idx).to(split.tokens.device)
        width = int(split.lengths[index].max())
        tokens, lengths = split.tokens[index, :width], split.lengths[index]
        if with_gradients:
            imp, logit, att = gradient_importance(model, tokens, lengths, compare[index, :width])
            importance[idx, :width] = imp.double().cpu().numpy()
        else:
            with torch.no_grad():
                out = model(tokens, lengths)
            logit, att = out.logit, out.attention
        probability[idx] = torch.sigmoid(logit.double()).cpu().numpy()
        attention[idx, :width] = att.double().cpu().numpy()
    if not (np.isfinite(probability).all() and np.isfinite(attention).all()):
        raise DataError("attention_vat model: non-finite prediction or attention (a diverged model)")
    return Outputs(probability, attention, importance)


def agreement(attention: np.ndarray, importance: np.ndarray, compare: np.ndarray) -> dict:
    """Attention–gradient agreement per sentence, averaged over the sentences where it is defined."""
    pearson = nan_summary(masked_pearson(attention, np.nan_to_num(importance), compare))
    kendall = nan_summary(masked_kendall_tau(attention, np.nan_to_num(importance), compare))
    return {"corr_pearson": pearson["mean"], "corr_kendall": kendall["mean"], "corr_sentences": pearson["defined"],
            "corr_undefined": pearson["undefined"], "kendall_undefined": kendall["undefined"]}


def pick_examples(data: EvalData, count: int = EXAMPLES) -> np.ndarray:
    """The same test sentences for every variant: the first `count` with EXAMPLE_LENGTH words (and some
    evidence, where the data set has it); the first sentences at all if too few qualify."""
    words = data.test.compare.sum(1)
    ok = (words >= EXAMPLE_LENGTH[0]) & (words <= EXAMPLE_LENGTH[1])
    if data.test.evidence is not None:
        ok &= data.test.evidence.any(1)
    chosen = np.flatnonzero(ok)[:count]
    return chosen if len(chosen) else np.arange(min(count, len(words)))


def examples(data: EvalData, outputs: Outputs, indices: np.ndarray) -> list[dict]:
    """Words, attention, importance and evidence of the chosen test sentences (only the compared tokens)."""
    tokens = data.test.tokens.cpu().numpy()
    rows = []
    for i in indices:
        keep = data.test.compare[i]
        rows.append({
            "index": int(i), "label": int(data.test.labels[i]), "probability": float(outputs.probability[i]),
            "words": [data.vocab[t] if 0 <= t < len(data.vocab) else "<?>" for t in tokens[i][keep]],
            "attention": outputs.attention[i][keep].tolist(),
            "importance": None if outputs.importance is None else np.nan_to_num(outputs.importance[i][keep]).tolist(),
            "evidence": None if data.test.evidence is None else data.test.evidence[i][keep].astype(int).tolist()})
    return rows


def measure(model, data: EvalData) -> tuple[dict, list[dict]]:
    """Every measure of one trained model on dev and test: (metrics, example attention maps)."""
    model.eval()
    test = run_split(model, data.test, with_gradients=True)
    dev = run_split(model, data.dev, with_gradients=False)
    test_pred, dev_pred = test.probability > 0.5, dev.probability > 0.5
    metrics = {"f1": 100 * binary_f1(test_pred, data.test.labels),
               "dev_f1": 100 * binary_f1(dev_pred, data.dev.labels),
               "accuracy": 100 * float((test_pred == data.test.labels.astype(bool)).mean()),
               # 100 or 0: a constant classifier at the 0.5 threshold, whose F1 is no learned result
               "predicted_positive": 100 * float(test_pred.mean()),
               "auc": roc_auc(data.test.labels, test.probability), "dev_auc": roc_auc(data.dev.labels, dev.probability),
               **agreement(test.attention, test.importance, data.test.compare),
               **perturbation_scale(model, data.test, test.attention)}
    if data.test.evidence is not None:
        metrics["rationale"] = {"evidence": data.evidence_kind,
                                **token_soft_metrics(data.test.evidence, test.attention, data.test.compare)}
    return metrics, examples(data, test, pick_examples(data))


@torch.no_grad()
def perturbation_scale(model, split: TextSplit, attention: np.ndarray) -> dict[str, float]:
    """What the methods' ε are set against, on a split's real tokens: the mean L2 norm of their embedding rows
    (every token counted), the mean sentence length T, and the spread of the attention scores ã: their standard
    deviation within a sentence, averaged over sentences of 2+ tokens (from the weights a [N, T]: ã_t − mean ã =
    log a_t − mean log a, the softmax being shift-invariant). A perturbation of norm ε per sentence moves each
    token by ε/√T in root mean square."""
    mask = torch.arange(split.tokens.shape[1], device=split.tokens.device) < split.lengths[:, None]
    norms = model.embedding.weight.norm(dim=1)[split.tokens[mask]]
    lengths = split.lengths.cpu().numpy()
    real = np.arange(attention.shape[1])[None, :] < lengths[:, None]
    # the weights came from a float32 softmax: an underflowed one stands at float32's floor, not float64's
    log_a = np.where(real, np.log(np.clip(attention, np.finfo(np.float32).smallest_subnormal, None)), 0.0)
    centred = np.where(real, log_a - log_a.sum(1, keepdims=True) / lengths[:, None], 0.0)
    spread = np.sqrt((centred ** 2).sum(1) / lengths)[lengths > 1]
    return {"embedding_norm": float(norms.mean()), "mean_length": float(lengths.mean()),
            "score_spread": float(spread.mean()) if len(spread) else float("nan")}


def roc_auc(labels: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of `score` for the positive class; NaN on a single-class split."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, score)) if 0 < labels.sum() < len(labels) else float("nan")


def bag_of_words(path: Path, vocab_size: int):
    """Token counts [N, vocab_size] (scipy CSR) of a processed split's real tokens, and its labels [N]: the same
    vocabulary and tokens as the network's input (train-fit vocabulary, <unk> for unseen words)."""
    from scipy.sparse import csr_matrix

    arrays = load_text_split(path.parent, path.stem, vocab_size)  # ids < vocab_size, 1 <= length <= T, 0/1
    tokens, lengths = arrays["tokens"], arrays["lengths"]
    real = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    rows = np.repeat(np.arange(len(tokens)), real.sum(1))
    counts = csr_matrix((np.ones(len(rows)), (rows, tokens[real])), shape=(len(tokens), vocab_size))
    counts.sum_duplicates()
    return counts, arrays["labels"].astype(np.int64)


def linear_baseline(dataset: str, root: Path | None = None) -> dict:
    """Ours, a reference for what the labeled data allow (no paper reports it): sublinear TF-IDF bag of words →
    logistic regression (scikit-learn defaults, C = 1, not tuned), fit on the processed train split with the
    network's vocabulary, scored on dev and test (F1 and accuracy in %, ROC-AUC). Also the dev and test F1 of
    predicting every sentence positive, 2p/(1+p), which the positive-class F1 rewards."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    from replab.data.registry import PROCESSED_ROOT

    folder = (root or PROCESSED_ROOT) / dataset
    vocab_size = len(read_vocab(folder))
    (x_train, y_train), *held = (bag_of_words(folder / f"{s}.npz", vocab_size) for s in ("train", "dev", "test"))
    if len(np.unique(y_train)) < 2:
        raise DataError(f"{folder / 'train.npz'}: one class only; the linear baseline needs both")
    tfidf = TfidfTransformer(sublinear_tf=True).fit(x_train)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(tfidf.transform(x_train), y_train)
    out = {"model": "TF-IDF logistic regression (ours)", "n_labeled": int(len(y_train))}
    for split, (x, y) in zip(("dev", "test"), held):
        score = clf.decision_function(tfidf.transform(x))
        prefix = "dev_" if split == "dev" else ""
        out |= {f"{prefix}f1": 100 * float(binary_f1(score > 0, y)),
                f"{prefix}accuracy": 100 * float(((score > 0) == y).mean()), f"{prefix}auc": roc_auc(y, score)}
    for split, (_, y) in zip(("dev", "test"), held):
        out[f"{split}_f1_all_positive"] = 100 * float(binary_f1(np.ones(len(y), dtype=bool), y))
    return out


@dataclass(frozen=True)
class Target:
    """One trained variant and where its evaluation goes: metrics/attention_vat/<dataset>/<key>.json and
    plots/attention_vat/variants/<dataset>/<key>/ (one evaluation stage per dataset owns its folder). Its model
    is in models/attention_vat/<dataset>-<setting>-<seed>/<key>/ (the folder of the stage that trained every
    method of the setting), a Fig. 2 record in models/attention_vat/<key>/."""

    key: str
    axes: dict

    @property
    def model_dir(self) -> Path:
        from replab.papers.attention_vat.model import variant_dir

        return Path("models") / "attention_vat" / variant_dir(self.key, self.axes)

    @property
    def metrics_path(self) -> Path:
        return Path("metrics") / "attention_vat" / self.axes["dataset"] / f"{self.key}.json"

    @property
    def plots_dir(self) -> Path:
        return Path("plots") / "attention_vat" / "variants" / self.axes["dataset"] / self.key


def evaluate_variant(target: Target, data: EvalData, device) -> None:
    """Every measure of one trained variant → its metrics JSON and examples.json (the report's attention maps)."""
    from replab.papers.attention_vat.model import load_model

    started = time.perf_counter()
    model, _ = load_model(target.model_dir, device)
    record = read_json(target.model_dir / "train.json")
    metrics, rows = measure(model, data)
    if eps := record.get("eps"):  # ε per token in RMS, against this model's own embedding rows or score spread
        metrics["eps_per_token"] = eps / metrics["mean_length"] ** 0.5
        scale = metrics["score_spread" if target.axes["method"].startswith("attention_") else "embedding_norm"]
        metrics["eps_share"] = metrics["eps_per_token"] / scale if scale > 1e-12 else float("nan")  # constant ã
    write_json(target.plots_dir / "examples.json", {"dataset": data.dataset, "examples": rows})
    write_json(target.metrics_path, {
        **target.axes, "n_labeled": record.get("n_labeled", data.train_size),
        "n_unlabeled": record.get("n_unlabeled", 0), "best_epoch": record.get("best_epoch"),
        "eps": record.get("eps"), **metrics, "eval_seconds": round(time.perf_counter() - started, 3),
        **({"run": record["run"]} if record.get("run") else {})})


def collect_fig2(target: Target) -> None:
    """The Fig. 2 stage trains without keeping weights; its curves (the model-selection dev F1 of every method at
    every N_ul) are copied into the metrics, so the report reads metrics only."""
    record = read_json(target.model_dir / "train.json")
    curves = record.get("curves")
    if not isinstance(curves, dict):
        raise DataError(f"{target.model_dir / 'train.json'}: no `curves` (not a Fig. 2 training record)")
    write_json(target.metrics_path, {**target.axes, "n_labeled": record.get("n_labeled"),
                                     "ratios": record.get("ratios"), "curves": curves,
                                     **({"run": record["run"]} if record.get("run") else {})})


def evaluate(cfg, runtime, variant) -> None:
    """One variant, or with the key `evaluate-<dataset>` every variant of that dataset in params.yaml (one
    process: one interpreter start and one data load instead of one per model)."""
    from replab.papers.attention_vat.model import EVALUATE_ALL, FIG2, sweep_variants

    if "family" in variant.axes:
        raise ParamError(f"attention_vat {variant.key}: a training stage's key, not a variant; evaluate "
                         "<dataset>-<method>-<setting>-<seed>, fig2-<dataset>-<seed> or evaluate-<dataset>")
    if variant.key.startswith(f"{EVALUATE_ALL}-"):
        dataset = variant.axes["dataset"]
        targets = [Target(key, axes) for key, axes in sweep_variants(cfg) if axes["dataset"] == dataset]
        write_json(Path("metrics") / "attention_vat" / dataset / "linear_baseline.json", linear_baseline(dataset))
    else:
        targets = [Target(variant.key, variant.axes)]
    device = rt.setup(runtime, 0)
    cache: dict[str, EvalData] = {}
    for target in rt.progress(targets, enabled=runtime.progress, desc="evaluate attention_vat"):
        if target.key.startswith(f"{FIG2}-"):
            collect_fig2(target)
            continue
        dataset = target.axes["dataset"]
        if dataset not in cache:
            cache[dataset] = load_eval_data(dataset, device)
        evaluate_variant(target, cache[dataset], device)
