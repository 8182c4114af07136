"""attention_vat evaluation: F1 on test (and dev, for Fig. 2), attention–gradient agreement (Pearson r, the seed's
measure; Kendall τ, Jain & Wallace's), rationale agreement (ERASER's token-soft metrics) and the attention maps of a
few test sentences for the report's figure.

Gradient importance (Jain & Wallace 2019, §3.1, and their `gradient_mem`): backpropagate Σ σ(ŷ) of a batch to the
embeddings e [B, T, d] with the graph cut at the attention (the weights held constant, as J&W do); a token's
importance is |Σ_d ∂σ(ŷ)/∂e ⊙ e|, normalised to sum 1 over the tokens compared. The model runs in eval mode (no
dropout; J&W's code switches to train mode because cuDNN's RNN backward needs it; we switch cuDNN off for this
backward instead). Samples do not interact in the network, so one backward gives every sentence's gradient.

Tokens compared: real tokens only, without `<SOS>`/`<EOS>` (J&W's [1:L−1]); a sentence with fewer than two such
tokens, or a constant attention or importance, has no correlation (counted as undefined, not averaged). Rationale
agreement: the attention weights as soft token scores against the evidence mask (ERASER movies: human evidence;
rt_snippets: VADER-lexicon evidence, reported as "lexicon-evidence agreement").

F1 is the positive class's (the attention papers' AllenNLP `F1Measure(positive_label=1)`), predicting positive when
σ(ŷ) > 0.5 (their code feeds the raw logit into that metric, which moves the threshold to logit 0.5).

`evaluate(cfg, runtime, variant)` measures one trained variant; `evaluate-<dataset>` every variant of that dataset in
one process (dvc.yaml's eval stage: one start-up and data load, not one per model, each a few seconds of work), into
fresh copies of its folders that replace the old ones whole at the end.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from replab import runtime as rt
from replab.data.text import read_vocab, special_ids, text_specials
from replab.io import DataError, atomic_dir, read_json, require_finite, write_json
from replab.measures import binary_f1, masked_kendall_tau, masked_pearson, nan_summary, percent, token_soft_metrics
from replab.papers import parse_record
from replab.papers.attention_vat.model import EVIDENCE_KIND, EVIDENCE_KINDS
from replab.params import ParamError, fail, param

EXAMPLES = 4  # test sentences whose attention maps the report draws
EXAMPLE_LENGTH = (6, 16)  # their number of words (short enough to label every token)
MAX_BATCH_TOKENS = 1 << 15  # padded tokens per evaluation batch (memory bound for long documents)
# the keys it takes, named on a bad one (papers.parse_variant)
KEYS = ("<dataset>-<method>-<setting>-<seed> dataset=… method=… setting=… seed=…", "fig2-<dataset>-<family>-<seed> "
        "dataset=… family=… seed=…", "evaluate-<dataset> dataset=…")


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
    specials = text_specials(text.special_ids)
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
    kind = EVIDENCE_KIND.get(dataset, EVIDENCE_KINDS[-1]) if splits["test"].evidence is not None else None
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


def run_split(model, split: TextSplit, with_gradients: bool, max_tokens: int = MAX_BATCH_TOKENS,
              what: str = "attention_vat model") -> Outputs:
    """Predictions and attention (and gradient importance) over a split in length-sorted batches, scattered back to
    split order. Non-finite ones (a diverged model) are a NonFiniteError naming `what` (the model and split)."""
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
    require_finite(probability, f"{what}: predictions")
    require_finite(attention, f"{what}: attention weights")
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


def measure(model, data: EvalData, what: str = "attention_vat model") -> tuple[dict, list[dict]]:
    """Every measure of one trained model on dev and test: (metrics, example attention maps). `what` names the
    model in an error."""
    model.eval()
    test = run_split(model, data.test, with_gradients=True, what=f"{what}, test split")
    dev = run_split(model, data.dev, with_gradients=False, what=f"{what}, dev split")
    test_pred, dev_pred = test.probability > 0.5, dev.probability > 0.5
    metrics = {"f1": 100 * binary_f1(test_pred, data.test.labels),
               "dev_f1": 100 * binary_f1(dev_pred, data.dev.labels),
               "accuracy": percent(test_pred == data.test.labels.astype(bool)),
               # 100 or 0: a constant classifier at the 0.5 threshold, whose F1 is no learned result
               "predicted_positive": percent(test_pred),
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


def linear_baseline(dataset: str, root: Path | None = None) -> dict:
    """Ours, a reference for what the labeled data allow (no paper reports it): sublinear TF-IDF bag of words →
    logistic regression (scikit-learn defaults, C = 1, not tuned), fit on the processed train split with the
    network's vocabulary, scored on dev and test (F1 and accuracy in %, ROC-AUC). Also the dev and test F1 of
    predicting every sentence positive, 2p/(1+p), which the positive-class F1 rewards."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    from replab.data.registry import PROCESSED_ROOT
    from replab.loaders.text import bag_of_words

    folder = (root or PROCESSED_ROOT) / dataset
    vocab = read_vocab(folder)
    specials = text_specials(special_ids(vocab))  # vocab.json's <SOS> / <EOS>: a text of those alone is refused
    splits = ("train", "dev", "test")
    (x_train, y_train), *held = (bag_of_words(folder / f"{s}.npz", len(vocab), specials) for s in splits)
    if len(np.unique(y_train)) < 2:
        raise DataError(f"{folder / 'train.npz'}: one class only; the linear baseline needs both")
    tfidf = TfidfTransformer(sublinear_tf=True).fit(x_train)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(tfidf.transform(x_train), y_train)
    out = {"model": "TF-IDF logistic regression (ours)", "n_labeled": int(len(y_train))}
    for split, (x, y) in zip(("dev", "test"), held):
        score = clf.decision_function(tfidf.transform(x))
        prefix = "dev_" if split == "dev" else ""
        out |= {f"{prefix}f1": 100 * float(binary_f1(score > 0, y)),
                f"{prefix}accuracy": percent((score > 0) == y), f"{prefix}auc": roc_auc(y, score)}
        out[f"{split}_f1_all_positive"] = 100 * float(binary_f1(np.ones(len(y), dtype=bool), y))
    return out


@dataclass
class SavedConfig:
    """model.pt's `config` (model.model_config), checked before it builds the network (torch asserts on pad_id)."""

    vocab_size: int = param(ge=1)
    embedding_dim: int = param(ge=1)
    hidden: int = param(ge=1)
    attention_dim: int = param(ge=1)
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    pad_id: int = param(0, ge=0)

    def check(self, where: str) -> None:
        if self.pad_id >= self.vocab_size:
            fail(where, f"pad_id = {self.pad_id}: must be < vocab_size ({self.vocab_size}), a row of the embeddings")


@dataclass
class TrainRecord:
    """What the metrics copy from a train.json (its other fields are not read); Fig2Curve checks each curve."""

    n_labeled: int | None = param(None, ge=1)
    n_unlabeled: int = param(0, ge=0)
    unlabeled_seen: int | None = param(None, ge=0)  # distinct pool sentences the kept model drew (≤ N_ul)
    best_epoch: int | None = param(None, ge=0)
    eps: float | None = param(None, gt=0.0)
    eps_selection: dict[str, Any] | None = None  # train_group with eps_attention_grid: {"dev": {ε: dev score}}
    ratios: list[float] | None = param(None, ge=0.0)
    curves: dict[str, dict[str, Any]] | None = None
    run: dict[str, Any] | None = None


@dataclass
class Fig2Curve:
    """What the report reads of one method's Fig. 2 curve (train.train_fig2): dev F1, sentences drawn and % of dev
    predicted positive (0 or 100: a constant classifier) at each N_ul."""

    n_unlabeled: list[int] = param(ge=0, nonempty=True)
    dev_f1: list[float] = param(ge=0.0, le=100.0, distinct=False)
    unlabeled_seen: list[int] | None = param(None, ge=0, distinct=False)
    dev_predicted_positive: list[float] | None = param(None, ge=0.0, le=100.0, distinct=False)

    def check(self, where: str) -> None:
        for name in ("dev_f1", "unlabeled_seen", "dev_predicted_positive"):
            if (values := getattr(self, name)) is not None and len(values) != len(self.n_unlabeled):
                fail(where, f"{name}: {len(values)} values for {len(self.n_unlabeled)} N_ul")


def recorded_axes(record: Any, axes: dict | None) -> dict:
    """The variant's `axes` (dataset, method, setting, seed) that its train.json `record` holds (train.train_group
    and train_fig2 write them all), to compare (`runtime.load_trained`): another variant's folder copied in under
    this variant's name carries its own train.json (and a model.pt of matching sha256), so only these tell."""
    return {k: v for k, v in (axes or {}).items() if k in record} if isinstance(record, dict) else {}


def load_variant(model_dir: Path, vocab_size: int, device, axes: dict | None = None):
    """(the network in eval mode, its TrainRecord) of a variant's folder: train.json's dataset, method, setting and
    seed must be `axes` (the variant's own; `recorded_axes`), and model.pt's config is checked (SavedConfig, and
    against the vocabulary it is evaluated on) before the network is built."""
    from replab.papers.attention_vat.model import AttentionClassifier

    path = model_dir / "model.pt"
    recorded = recorded_axes(read_json(model_dir / "train.json", expect=dict), axes) if axes else None
    state, record = rt.load_trained(model_dir, device, axes=recorded)
    config = parse_record(SavedConfig, state.get("config") if isinstance(state, dict) else state, f"{path}: config",
                          partial=False)
    if config.vocab_size != vocab_size:
        raise DataError(f"{path}: config.vocab_size = {config.vocab_size}, but the data's vocab.json has {vocab_size} "
                        "words (trained on other data? rerun its training stage)")
    try:
        model = AttentionClassifier(**asdict(config)).to(device)
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # torch's size mismatch spans lines
        raise DataError(f"{path}: not an attention_vat model ({' '.join(str(err).split())})") from None
    return model.eval(), parse_record(TrainRecord, record, f"{model_dir / 'train.json'}: record")


def evaluate_variant(key: str, axes: dict, folder: Path, data: EvalData, device, metrics: Path, plots: Path) -> None:
    """Every measure of one trained variant (its model in `folder`) → `metrics`/<key>.json and
    `plots`/<key>/examples.json (the report's attention maps)."""
    started = time.perf_counter()
    model, record = load_variant(folder, len(data.vocab), device, axes)
    measures, rows = measure(model, data, f"{folder / 'model.pt'} ({key})")
    if eps := record.eps:  # ε per token in RMS, against this model's own embedding rows or score spread
        measures["eps_per_token"] = eps / measures["mean_length"] ** 0.5
        scale = measures["score_spread" if axes["method"].startswith("attention_") else "embedding_norm"]
        measures["eps_share"] = measures["eps_per_token"] / scale if scale > 1e-12 else float("nan")  # constant ã
    write_json(plots / key / "examples.json", {"dataset": data.dataset, "examples": rows})
    write_json(metrics / f"{key}.json", {
        **axes, "n_labeled": record.n_labeled or data.train_size, "n_unlabeled": record.n_unlabeled,
        "unlabeled_seen": record.unlabeled_seen, "eps": eps, "best_epoch": record.best_epoch, **measures,
        "eval_seconds": round(time.perf_counter() - started, 3),
        **{k: v for k, v in (("eps_selection", record.eps_selection), ("run", record.run)) if v}})


def collect_fig2(key: str, axes: dict, folder: Path, metrics: Path) -> None:
    """The Fig. 2 stage trains without keeping weights; its curves (the model-selection dev F1 of every method at
    every N_ul) are copied into `metrics`/<key>.json, so the report reads metrics only. A null, NaN or out-of-range
    value there is an error naming the file (the report would show a silent "–")."""
    path = folder / "train.json"
    written = read_json(path)
    for axis, expected in recorded_axes(written, axes).items():  # another seed's or dataset's curves copied in
        if not rt._same(written[axis], expected):
            raise DataError(f"{path}: {axis} = {written[axis]!r}, but this variant's is {expected!r} (another "
                            f"variant's files in {folder}?); rerun the training stage")
    record = parse_record(TrainRecord, written, f"{path}: record")
    if record.curves is None:
        raise DataError(f"{path}: no `curves` (not a Fig. 2 training record)")
    for method, curve in record.curves.items():
        parse_record(Fig2Curve, curve, f"{path}: curves.{method}")
    write_json(metrics / f"{key}.json", {**axes, "n_labeled": record.n_labeled, "ratios": record.ratios,
                                         "curves": record.curves, **({"run": record.run} if record.run else {})})


def evaluate(cfg, runtime, variant) -> None:
    """One variant into metrics/attention_vat/<dataset>/<key>.json and plots/attention_vat/variants/<dataset>/<key>/,
    or with the key `evaluate-<dataset>` every variant of that dataset in params.yaml (one process: one interpreter
    start and one data load instead of one per model) into fresh copies of both folders (the stage's outs) that
    replace the old ones only once every variant is measured: a failed or killed stage leaves the old files, and no
    file of a variant no longer in params.yaml survives."""
    from replab.papers.attention_vat.model import EVALUATE_ALL, FIG2, PAPER, sweep_variants, variant_dir

    if "setting" in variant.axes and "family" in variant.axes:
        raise ParamError(f"attention_vat {variant.key}: a training stage's key, not a variant; evaluate "
                         + ", ".join(KEYS))
    dataset, every = variant.axes["dataset"], variant.key.startswith(f"{EVALUATE_ALL}-")
    variants = [(k, a) for k, a in sweep_variants(cfg) if a["dataset"] == dataset] if every else [
        (variant.key, variant.axes)]
    linear = linear_baseline(dataset) if every else None
    device, data, swap = rt.setup(runtime, 0), None, atomic_dir if every else nullcontext
    metrics, plots = Path("metrics") / PAPER / dataset, Path("plots") / PAPER / "variants" / dataset
    with swap(metrics) as metrics, swap(plots) as plots:  # fresh copies, or (one variant) the folders themselves
        if every:
            write_json(metrics / "linear_baseline.json", linear)
        for key, axes in rt.progress(variants, enabled=runtime.progress, desc="evaluate attention_vat"):
            # models/attention_vat/<dataset>-<setting>-<family>-<seed>/<key>/ (its stage's folder), Fig. 2: <key>/
            folder = Path("models") / PAPER / variant_dir(key, axes)
            if key.startswith(f"{FIG2}-"):
                collect_fig2(key, axes, folder, metrics)
                continue
            data = data or load_eval_data(dataset, device)  # one dataset: loaded once
            evaluate_variant(key, axes, folder, data, device, metrics, plots)


def metrics_files(cfg) -> dict[str, dict]:
    """The sweep's metrics files (<dataset>/<key> in metrics/attention_vat/), each with the fields it must hold: its
    axes, a Fig. 2 file its N_ul ratios, a semi-supervised one its N_ul where params.yaml sets it (0: the pool's)."""
    from replab.papers.attention_vat.model import sweep_variants

    files = {}
    for key, axes in sweep_variants(cfg):
        fields = dict(axes)
        if "family" in axes:  # a Fig. 2 stage's
            fields["ratios"] = cfg.fig2.ratios
        elif axes["setting"] == "semi" and cfg.n_unlabeled:  # (0: the whole pool, whose size only the data know)
            fields["n_unlabeled"] = cfg.n_unlabeled
        files[f"{axes['dataset']}/{key}"] = fields
    return files
