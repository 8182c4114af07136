"""attention_vat model: configuration, text data on the device, the BiLSTM + additive-attention classifier
(Appendix A, Eq. 11–12) and the perturbations of the nine methods (Eq. 1–10); our choices: package docstring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from replab.functional import Linear, rescale_underflowing_rows
from replab.io import DataError
from replab.loaders.text import TextData
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, ParamError, param

PAPER = "attention_vat"
TEXT_DATASETS = ("rt_snippets", "sst", "imdb", "eraser_movies")
METHODS = ("vanilla", "word_at", "word_iat", "word_vat", "word_ivat",
           "attention_at", "attention_iat", "attention_vat", "attention_ivat")
SEMI_METHODS = ("word_vat", "word_ivat", "attention_vat", "attention_ivat")
SETTINGS = ("supervised", "semi")
# What a method perturbs decides the params it reads; a training stage trains one family (an ε sweep retrains one)
FAMILIES = ("vanilla", "word", "attention")
METHOD_LABELS = {"vanilla": "Vanilla", "word_at": "Word AT", "word_iat": "Word iAT", "word_vat": "Word VAT",
                 "word_ivat": "Word iVAT", "attention_at": "Attention AT", "attention_iat": "Attention iAT",
                 "attention_vat": "Attention VAT", "attention_ivat": "Attention iVAT"}
FIG2 = "fig2"  # key prefix of the Fig. 2 stages: fig2-<dataset>-<family>-<seed>
FIG2_FAMILIES = ("word", "attention")  # the families of SEMI_METHODS: one Fig. 2 stage each
EVALUATE_ALL = "evaluate"  # key prefix of the evaluation stage: evaluate-<dataset> (every variant of a dataset)
KEY_PREFIXES = (FIG2, EVALUATE_ALL)  # the prefixes a key may carry before its axes' values (papers.parse_variant)
ALPHA_NORMS = ("token", "sentence")
TINY = 1e-12  # guards the L2 normalisations against all-zero gradients

# The seed's numbers (references for the report, never our results). Table 1: (F1 %, Pearson r).
PAPER_TABLE_1A = {
    "sst": {"vanilla": (79.27, 0.852), "word_at": (79.61, 0.647), "word_iat": (79.57, 0.643),
            "word_vat": (81.90, 0.651), "word_ivat": (81.98, 0.648), "attention_at": (81.72, 0.852),
            "attention_iat": (82.20, 0.876), "attention_vat": (82.19, 0.878), "attention_ivat": (82.21, 0.881)},
    "imdb": {"vanilla": (88.77, 0.788), "word_at": (89.65, 0.838), "word_iat": (89.64, 0.839),
             "word_vat": (89.79, 0.841), "word_ivat": (89.78, 0.843), "attention_at": (90.00, 0.819),
             "attention_iat": (90.21, 0.861), "attention_vat": (90.20, 0.859), "attention_ivat": (90.18, 0.857)},
}
PAPER_TABLE_1B = {  # semi-supervised; SST N_ul = 50,000, IMDB N_ul = 150,000
    "sst": {"word_vat": (83.04, 0.779), "word_ivat": (83.07, 0.781), "attention_vat": (83.18, 0.898),
            "attention_ivat": (83.22, 0.901)},
    "imdb": {"word_vat": (92.21, 0.853), "word_ivat": (92.30, 0.859), "attention_vat": (92.48, 0.879),
             "attention_ivat": (92.56, 0.883)},
}
PAPER_N_UL = {"sst": 50_000, "imdb": 150_000}
# "On a par" (同等): losses up to 0.03 F1 points and 0.004 in r are so in Table 1a, gains from 0.53 and 0.014 clear
PAR_MARGIN = {"f1": 0.25, "corr_pearson": 0.01}
PAPER_TABLE_2 = {"vanilla": (0.326, 0.395, 0.563), "word_vat": (0.349, 0.413, 0.581),  # Table 2 (ERASER movies):
                 "word_ivat": (0.350, 0.414, 0.582), "attention_vat": (0.403, 0.477, 0.646),  # AUPRC, avg. precision,
                 "attention_ivat": (0.417, 0.489, 0.651)}  # ROC-AUC
PAPER_TABLE_2_RATIONALE_MODEL = 0.502  # DeYoung et al.'s model optimised for rationales (AUPRC)
# rt_snippets holds SST's kind of sentence (Rotten Tomatoes snippets): its rows stand beside the SST columns
PAPER_COLUMN = {"sst": "sst", "imdb": "imdb", "rt_snippets": "sst"}
# the rationale measures' evidence: a data set's human rationales, or VADER-lexicon words (rt_snippets' stand-in)
EVIDENCE_KIND = {"eraser_movies": "human", "rt_snippets": "lexicon"}
EVIDENCE_KINDS = ("human", "lexicon", "evidence")  # (the last: a data set with an evidence mask of no known kind)


@dataclass(frozen=True)
class Fig2Config:
    """Fig. 2: dev F1 against the amount of unlabeled data, for the semi-supervised methods."""

    methods: list[str] = param(list(SEMI_METHODS), each_choices=SEMI_METHODS, nonempty=True)
    ratios: list[float] = param([0.0, 1.0, 3.0, 5.0, 7.0], ge=0.0, le=MAX_COUNT, nonempty=True,
                                doc="N_ul as multiples of the labeled count N_l (seed: 0 … ≈ 7×)")
    epochs: int = param(0, ge=0, le=MAX_COUNT, doc="0 = attention_vat.epochs")


@dataclass(frozen=True)
class Config:
    dataset: str = param("sst", choices=TEXT_DATASETS, doc="the data set the pipeline prepares for this paper")
    datasets: list[str] = param(["sst"], each_choices=TEXT_DATASETS, nonempty=True,
                                doc="the matrix axis: every data set trained on (each must be in `datasets:`)")
    methods: list[str] = param(list(METHODS), each_choices=METHODS, nonempty=True, doc="supervised setting")
    semi_methods: list[str] = param(list(SEMI_METHODS), each_choices=SEMI_METHODS, nonempty=True,
                                    doc="semi-supervised setting (Table 1b)")
    seeds: list[int] = param([0], ge=0, le=SEED_MAX, nonempty=True)
    embedding_dim: int = param(300, ge=1, le=MAX_SIZE)
    hidden: int = param(128, ge=1, le=MAX_SIZE, doc="BiLSTM units per direction")
    attention_dim: int = param(128, ge=1, le=MAX_SIZE, doc="d' of W ∈ R^{d'×m} in ã_t = cᵀ tanh(W h_t + b)")
    dropout: float = param(0.0, ge=0.0, lt=1.0, doc="on the embeddings; ours (the AT code's model has none)")
    dropout_in_perturbed: bool = param(False, doc="dropout also in the perturbed passes (Sato's code) or not")
    epochs: int = param(8, ge=1, le=MAX_COUNT)
    selection: str = param("auc", choices=("auc", "f1"), doc="dev metric of model selection (the AT code: AUC)")
    batch_size: int = param(32, ge=1, le=MAX_SIZE)
    batch_unlabeled: int = param(32, ge=1, le=MAX_SIZE, doc="unlabeled rows per semi-supervised step (Miyato: = batch)")
    lr: float = param(1e-3, gt=0.0, doc="Adam (amsgrad)")
    amsgrad: bool = param(True)
    weight_decay: float = param(0.0, ge=0.0, doc="the AT code: 1e-5 on encoder and output; the seed: none")
    lam: float = param(1.0, ge=0.0, doc="λ of Eq. 10")
    eps_word: float = param(5.0, gt=0.0, doc="‖r‖₂ of Word AT / VAT (Miyato)")
    eps_word_interpretable: float = param(15.0, gt=0.0, doc="‖r‖₂ of Word iAT / iVAT (Sato)")
    eps_attention: float = param(1.0, gt=0.0, doc="‖r‖₂ on the attention scores (all four attention methods)")
    eps_attention_grid: list[float] = param([], gt=0.0, doc="ε's each attention method is trained at, keeping the "
                                            "best on dev (`selection`); [] = eps_attention alone")
    xi: float = param(0.1, gt=0.0, doc="power-iteration step ξ (Miyato's finite difference)")
    power_iterations: int = param(1, ge=1, le=MAX_COUNT, doc="K")
    neighbours: int = param(10, ge=1, le=MAX_SIZE, doc="k nearest words of Word iAT / iVAT (Sato)")
    alpha_norm: str = param("token", choices=ALPHA_NORMS, doc="iAT/iVAT: α's gradient normalised per token over "
                            "its directions (Sato) or over the whole sentence")
    n_unlabeled: int = param(0, ge=0, le=MAX_COUNT, doc="N_ul of the semi setting; 0 = the whole prepared pool "
                             "(data.<name>.n_unlabeled: the paper's 50,000 SST / 150,000 IMDB)")
    unlabeled_max_length: int = param(0, ge=0, le=MAX_SIZE, doc="tokens per pool sequence, <EOS> kept last; 0 = no cut")
    fig2: Fig2Config = param(Fig2Config())

    @property
    def settings(self) -> list[str]:  # the setting axis's values (the CLI checks `setting=` against them)
        return list(SETTINGS)

    @property
    def families(self) -> list[str]:  # the family axis's values of a training stage (the CLI checks `family=`)
        return list(FAMILIES)

    @property
    def fig2_families(self) -> list[str]:  # the family axis's values of a Fig. 2 stage
        return list(FIG2_FAMILIES)

    def eps_key(self, method: str) -> str:  # the param holding ‖r‖₂ of the method's perturbation
        return ("eps_attention" if method.startswith("attention_") else
                "eps_word_interpretable" if method in ("word_iat", "word_ivat") else "eps_word")

    def eps_for(self, method: str) -> float:  # ‖r‖₂ of the method's perturbation
        return getattr(self, self.eps_key(method))

    def reads(self, method: str, n_unlabeled: int) -> dict[str, bool]:  # (train.fit_signature; other fields: all do)
        """Whether a run of `method` at N_ul reads each method-dependent field: the pool's only with N_ul > 0, λ and
        its own ε all but vanilla, ξ, K VAT/iVAT, α's norm i-methods, k Word iAT/iVAT, dropout_in_perturbed words."""
        level, kind = method.split("_") if method != "vanilla" else ("", "")
        vat, interpretable, own_eps = kind.endswith("vat"), kind.startswith("i"), self.eps_key(method)
        eps = {k: bool(kind) and k == own_eps for k in ("eps_word", "eps_word_interpretable", "eps_attention")}
        return {"batch_unlabeled": n_unlabeled > 0, "unlabeled_max_length": n_unlabeled > 0, "lam": bool(kind), **eps,
                "xi": vat, "power_iterations": vat, "alpha_norm": interpretable,
                "neighbours": level == "word" and interpretable, "dropout_in_perturbed": level == "word"}


AXES = {"dataset": "datasets", "method": "methods", "setting": "settings", "seed": "seeds"}
GROUP_AXES = {"dataset": "datasets", "setting": "settings", "family": "families", "seed": "seeds"}


def axes_for(key: str) -> dict[str, str]:
    """Keys: `<dataset>-<method>-supervised|semi-<seed>` (method from `methods` | `semi_methods`), a training stage
    `<dataset>-<setting>-<family>-<seed>`, `fig2-<dataset>-<family>-<seed>` (every Fig. 2 point of a family, dataset
    and seed), `evaluate-<dataset>` (every variant of a dataset). Names have no `-`; stage keys have no method."""
    if key.startswith(f"{FIG2}-"):
        return {"dataset": "datasets", "family": "fig2_families", "seed": "seeds"}
    if key.startswith(f"{EVALUATE_ALL}-"):
        return {"dataset": "datasets"}
    if key.count("-") == 3 and key.split("-")[1] in SETTINGS:
        return GROUP_AXES
    return {**AXES, "method": "semi_methods"} if "-semi-" in key else AXES


def method_family(method: str) -> str:  # its entry of FAMILIES: vanilla, or the level it perturbs (word_vat → word)
    return method.split("_")[0]


def variant_key(dataset: str, method: str, setting: str, seed: int) -> str:
    """The key naming one trained method everywhere (metrics, curves, report): dataset-method-setting-seed."""
    return f"{dataset}-{method}-{setting}-{seed}"


def group_key(dataset: str, setting: str, family: str, seed: int) -> str:
    """dvc.yaml's ${key} of a training stage: one process, every method of one family in the setting."""
    return f"{dataset}-{setting}-{family}-{seed}"


def setting_methods(cfg: Config, setting: str, family: str | None = None) -> list[str]:
    """The methods trained in `setting` (`semi_methods` with the unlabeled pool, else `methods`) [of `family`]."""
    methods = cfg.semi_methods if setting == "semi" else cfg.methods
    return [m for m in methods if family is None or method_family(m) == family]


def variant_dir(key: str, axes: dict) -> Path:
    """A variant's folder below models/attention_vat/ (and plots/attention_vat/curves/): <group>/<key>/ for a
    trained method (its stage writes the group folder, one subfolder per method), <key>/ for Fig. 2."""
    if "method" not in axes:
        return Path(key)
    return Path(group_key(axes["dataset"], axes["setting"], method_family(axes["method"]), axes["seed"])) / key


def fig2_key(dataset: str, family: str, seed: int) -> str:  # the Fig. 2 stage and variant of one family's methods
    return f"{FIG2}-{dataset}-{family}-{seed}"


def fig2_methods(cfg: Config, family: str) -> list[str]:  # the methods of `fig2.methods` a Fig. 2 stage trains
    return [m for m in cfg.fig2.methods if method_family(m) == family]


def sweep_variants(cfg: Config) -> list[tuple[str, dict]]:
    """(key, axes) of every trained variant in params.yaml: datasets × methods × seeds supervised, × semi_methods
    × seeds semi-supervised, Fig. 2 datasets × families of `fig2.methods` × seeds. Models in
    models/attention_vat/<variant_dir>, evaluations in
    metrics/attention_vat/<dataset>/<key>.json."""
    out = [(variant_key(d, m, setting, s), {"dataset": d, "method": m, "setting": setting, "seed": s})
           for d in cfg.datasets for setting in ("supervised", "semi") for m in setting_methods(cfg, setting)
           for s in cfg.seeds]
    return out + [(fig2_key(d, f, s), {"dataset": d, "family": f, "seed": s}) for d in cfg.datasets
                  for f in FIG2_FAMILIES if fig2_methods(cfg, f) for s in cfg.seeds]


def real_mask(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """bool [B, T]: True on the first `lengths[b]` positions (real tokens), False on padding."""
    return torch.arange(length, device=lengths.device)[None, :] < lengths[:, None]


def reverse_within_length(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """int64 [B, T]: position t ↦ lengths[b] − 1 − t on real tokens, t on padding (an involution)."""
    t = torch.arange(length, device=lengths.device)[None, :]
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


def gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, T, C] reordered along time by index [B, T]."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


# ---------------------------------------------------------------------------------------------------------
# The network (Appendix A)

class Output(NamedTuple):
    logit: torch.Tensor  # [B] pre-sigmoid; ŷ = σ(logit) = p(y = 1 | X)
    attention: torch.Tensor  # [B, T] a = masked softmax(ã + r) (Eq. 11), exactly 0 on padding
    scores: torch.Tensor  # [B, T] ã (before softmax, without r), 0 on padding
    embedded: torch.Tensor  # [B, T, d] word embeddings w_t (before r and dropout): ∂ŷ/∂e by autograd
    mask: torch.Tensor  # [B, T] bool, True on real tokens


class Encoded(NamedTuple):
    embedded: torch.Tensor  # [B, T, d]
    h: torch.Tensor  # [B, T, 2·hidden] BiLSTM states, 0 on padding
    scores: torch.Tensor  # [B, T] ã, 0 on padding
    mask: torch.Tensor  # [B, T] bool


class AttentionClassifier(nn.Module):
    """Embedding (d) → 1-layer BiLSTM (hidden per direction) → additive attention ã_t = cᵀ tanh(W h_t + b) →
    masked softmax (Eq. 11) → h_a = Σ_t a_t h_t → Linear → logit (σ gives ŷ). Padding never reaches a real
    token's state, the attention or a gradient (see `encode`)."""

    def __init__(self, vocab_size: int, embedding_dim: int = 300, hidden: int = 128, attention_dim: int = 128,
                 dropout: float = 0.0, pad_id: int = 0, embeddings: torch.Tensor | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        if embeddings is not None:  # [vocab_size, embedding_dim] (build_model checks the data's against the params)
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
                self.embedding.weight[pad_id].zero_()
        # the two directions of the BiLSTM (Enc): the backward one reads each sentence reversed within its length
        self.lstm_forward = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.lstm_backward = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.attention_w = Linear(2 * hidden, attention_dim)  # W, b
        self.attention_c = Linear(attention_dim, 1, bias=False)  # c
        self.decoder = Linear(2 * hidden, 1)  # Dec
        self.dropout = nn.Dropout(dropout)
        self.pad_id = pad_id

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor, r_emb: torch.Tensor | None = None,
               dropout: bool = True) -> Encoded:
        """tokens int64 [B, T], lengths int64 [B] (≥ 1), r_emb [B, T, d] added to the embeddings (0 on padding
        is enforced here) → embeddings, BiLSTM states, attention scores ã and the mask."""
        length = tokens.shape[1]
        mask = real_mask(lengths, length)
        embedded = self.embedding(tokens)
        x = embedded if r_emb is None else embedded + r_emb * mask[..., None]
        x = self.dropout(x) if dropout else x
        # Right padding comes after every real token in the forward direction, and after every real token of the
        # within-length reversal in the backward one, so it never reaches a real position's state (a packed
        # sequence does the same at about twice the cost on CPU).
        rev = reverse_within_length(lengths, length)
        h_forward = self.lstm_forward(x)[0]
        h_backward = self.lstm_backward(gather_time(x, rev))[0]
        h = torch.cat([h_forward, gather_time(h_backward, rev)], dim=2) * mask[..., None]
        scores = self.attention_c(torch.tanh(self.attention_w(h))).squeeze(-1)  # ã_t = cᵀ tanh(W h_t + b)
        return Encoded(embedded, h, scores.masked_fill(~mask, 0.0), mask)

    def attend(self, h: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
               r_score: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logit [B], attention [B, T]) from states and scores, with r_score [B, T] added to ã (Eq. 4 / 9)."""
        s = scores if r_score is None else scores + r_score
        a = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=1)  # Eq. 11; exp(−inf) = 0 on padding
        pooled = torch.bmm(a.unsqueeze(1), h).squeeze(1)  # h_a = Σ_t a_t h_t
        return self.decoder(pooled).squeeze(-1), a

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, *, r_emb: torch.Tensor | None = None,
                r_score: torch.Tensor | None = None, dropout: bool = True) -> Output:
        enc = self.encode(tokens, lengths, r_emb, dropout)
        logit, attention = self.attend(enc.h, enc.scores, enc.mask, r_score)
        return Output(logit, attention, enc.scores, enc.embedded, enc.mask)


def model_config(cfg: Config, data: TextData) -> dict:
    """What rebuilds the network (saved beside the weights)."""
    return {"vocab_size": data.vocab_size, "embedding_dim": cfg.embedding_dim, "hidden": cfg.hidden,
            "attention_dim": cfg.attention_dim, "dropout": cfg.dropout, "pad_id": int(data.special_ids.get("pad", 0))}


def build_model(cfg: Config, data: TextData, device) -> AttentionClassifier:
    if data.embeddings is not None and (d := data.embeddings.shape[1]) != cfg.embedding_dim:  # (rows: load_text)
        raise ParamError(f"params.yaml: attention_vat.embedding_dim = {cfg.embedding_dim}: data/processed/"
                         f"{data.name}/embeddings.npy has {d}-d pretrained rows (allowed: {d})")
    return AttentionClassifier(**model_config(cfg, data), embeddings=data.embeddings).to(device)


def save_model(model: AttentionClassifier | dict, cfg_dict: dict, model_dir, record: dict | None = None) -> None:
    """A variant's model folder: model.pt ({"config", "state_dict"}; `model` may be its state_dict) and train.json."""
    from replab import runtime as rt

    weights = model.state_dict() if isinstance(model, nn.Module) else model
    state = {"config": cfg_dict, "state_dict": {k: v.detach().clone() for k, v in weights.items()}}
    rt.save_trained(Path(model_dir), state, record or {})


def load_model(model_dir, device) -> tuple[AttentionClassifier, dict]:
    """(the trained network in eval mode on `device`, its config dict) from `save_model`'s directory."""
    from replab import runtime as rt

    state, _ = rt.load_trained(Path(model_dir), device)
    try:
        model = AttentionClassifier(**state["config"]).to(device)
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise DataError(f"{Path(model_dir) / 'model.pt'}: not an attention_vat model ({err})") from None
    return model.eval(), state["config"]


# ---------------------------------------------------------------------------------------------------------
# Losses

def nll(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 12: −(1/|D|) Σ log p(y | X_ã), Bernoulli with p = σ(logit); batch mean."""
    return F.binary_cross_entropy_with_logits(logit, y)


def kl_binary(ref_logit: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
    """Eq. 3, batch mean: KL(p(·|X_ã) ‖ p(·|X_ã+r)) for Bernoulli outputs, p = σ(ref_logit) held fixed."""
    p = torch.sigmoid(ref_logit)
    log_p, log_1p = F.logsigmoid(ref_logit), F.logsigmoid(-ref_logit)
    log_q, log_1q = F.logsigmoid(logit), F.logsigmoid(-logit)
    return (p * (log_p - log_q) + (1 - p) * (log_1p - log_1q)).mean()


# ---------------------------------------------------------------------------------------------------------
# Perturbations. Shapes: embeddings r [B, T, d]; attention scores r [B, T]. Every direction is zeroed on
# padding and L2-normalised per sentence over its real tokens (jointly over T and d, as Miyato's _scale_l2).

def normalize_per_sentence(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """v / ‖v‖₂ per sentence over the real tokens (and the embedding dim, if any); 0 on padding and where v = 0.
    A sentence's v whose squares underflow is first divided by its max |v| (rescale_underflowing_rows)."""
    v = v * (mask if v.dim() == 2 else mask[..., None])
    norm = v.flatten(1).norm(dim=1)
    if (rescued := rescale_underflowing_rows(v, TINY, norm)) is not v:  # the rare sentence too small to square
        v, norm = rescued, rescued.flatten(1).norm(dim=1)
    return v / norm.clamp_min(TINY).view(-1, *([1] * (v.dim() - 1)))


def random_direction(like: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A unit-norm Gaussian direction per sentence (VAT's starting point), 0 on padding."""
    d = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return normalize_per_sentence(d, mask)


def at_perturbation(grad: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """Word AT (Miyato 2016) / Attention AT: r_adv = ε·g/‖g‖₂ per sentence, g = ∂L/∂(embeddings or ã)."""
    return eps * normalize_per_sentence(grad, mask)


def nearest_neighbours(weight: torch.Tensor, k: int, exclude: tuple[int, ...] = (0, 1), chunk: int = 2048,
                       check_only: bool = False) -> torch.Tensor:
    """int64 [V, k]: the k nearest words of each vocabulary entry by cosine similarity (Sato et al. 2018), the word
    itself and the `exclude` ids (pad, unk) never chosen, in row chunks. `check_only`: k's range alone, [0, k]."""
    vocab, others = len(weight), len(weight) - 1 - len(exclude)  # (not clamped: 10⁶ neighbours ran for minutes)
    if not 1 <= k <= others:
        raise ParamError(f"params.yaml: attention_vat.neighbours = {k:,}: the vocabulary of {vocab:,} words has "
                         f"{others:,} others to choose from (allowed: 1 … {max(others, 1):,})")
    if check_only:  # the check_data stage: k's range alone, no similarity computed
        return torch.zeros(0, k, dtype=torch.long, device=weight.device)
    w, out = F.normalize(weight.detach(), dim=1), []
    for start in range(0, vocab, chunk):
        sim = w[start:start + chunk] @ w.T
        sim.diagonal(start).fill_(float("-inf"))  # each row's own word: entry (i, start + i)
        sim[:, list(exclude)] = float("-inf")
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


def word_directions(tokens: torch.Tensor, weight: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """[B, T, k, d]: unit directions from each word's embedding towards its k nearest words' embeddings,
    dir_{t,k} = (w_{nn_k(x_t)} − w_{x_t}) / ‖·‖₂ (Sato et al. 2018), treated as constants."""
    w = weight.detach()
    diff = w[neighbours[tokens]] - w[tokens].unsqueeze(2)
    return F.normalize(diff, dim=-1)


def attention_differences(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T, T]: Eq. 5–6, d̄_t = d_t / ‖d_t‖₂ with d_t = (ã_t − ã_k)_{k=1..T} over the real tokens k of the same
    sentence (0 for padding k and padding t; 0 where all of a sentence's scores are equal). Constants."""
    s = scores.detach()
    pair = mask[:, :, None] & mask[:, None, :]
    d = (s[:, :, None] - s[:, None, :]) * pair
    return d / d.norm(dim=2, keepdim=True).clamp_min(TINY)


def combine_directions(grad: torch.Tensor, directions: torch.Tensor, mask: torch.Tensor,
                       alpha_norm: str = "token") -> tuple[torch.Tensor, torch.Tensor]:
    """Interpretable perturbation from a gradient g w.r.t. the perturbation (Sato et al. 2018; seed Eq. 7–8).

    Words: g [B, T, d], directions [B, T, K, d]; attention: g [B, T], directions d̄ [B, T, T] (one scalar
    direction per pair, Eq. 5–6). r(α)_t = Σ_k α_{t,k} dir_{t,k} (Eq. 7), so ∂L/∂α_{t,k} = ⟨dir_{t,k}, g_t⟩; α is
    that gradient L2-normalised per token over k (`token`, Sato's code) or over the whole sentence (`sentence`).
    Returns (the unit-norm direction r(α) / ‖r(α)‖₂ per sentence, α [B, T, K])."""
    scalar = grad.dim() == 2
    g = rescale_underflowing_rows(grad.unsqueeze(-1) if scalar else grad, TINY)  # [B, T, d]; α's norms below
    dirs = directions.unsqueeze(-1) if scalar else directions  # [B, T, K, d]
    g_alpha = torch.einsum("btkd,btd->btk", dirs, g) * mask[..., None]
    if alpha_norm == "token":
        alpha = g_alpha / g_alpha.norm(dim=2, keepdim=True).clamp_min(TINY)
    else:
        alpha = g_alpha / g_alpha.flatten(1).norm(dim=1).clamp_min(TINY).view(-1, 1, 1)
    r = torch.einsum("btk,btkd->btd", alpha, dirs)
    return normalize_per_sentence(r.squeeze(-1) if scalar else r, mask), alpha


def uniform_alpha_direction(directions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """iVAT's starting point: α_{t,k} = 1/K for every direction (Sato's code), normalised per sentence."""
    if directions.dim() == 3:  # attention [B, T, T]: the mean over each sentence's real tokens k
        k = mask.sum(1).clamp_min(1).to(directions.dtype).view(-1, 1)
        return normalize_per_sentence(directions.sum(2) / k, mask)
    return normalize_per_sentence(directions.mean(2), mask)  # words [B, T, K, d]


def vat_perturbation(kl_at, start: torch.Tensor, mask: torch.Tensor, eps: float, xi: float, iterations: int,
                     directions: torch.Tensor | None = None, alpha_norm: str = "token") -> torch.Tensor:
    """Eq. 2 / 8 by power iteration (Miyato et al. 2017): from the unit direction `start` (random for VAT,
    uniform α for iVAT), K times g = ∂KL(p(·|X) ‖ p(·|X + ξ·d))/∂r, d = g / ‖g‖ (VAT) or the α-combination of
    the directions (iVAT, Eq. 7); returns r = ε·d. `kl_at(r)` computes the KL of the perturbed pass with the
    clean prediction held fixed; only ∂/∂r is taken here (no parameter gradient)."""
    d = start
    for _ in range(iterations):
        r = (xi * d).requires_grad_(True)
        (g,) = torch.autograd.grad(kl_at(r), r)
        d = normalize_per_sentence(g, mask) if directions is None else combine_directions(
            g, directions, mask, alpha_norm)[0]
    return eps * d.detach()
