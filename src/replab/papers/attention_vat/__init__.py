"""attention_vat (source 004): virtual adversarial training on attention (Attention VAT / iVAT) against word- and
attention-level AT/VAT.

The seed (Kitada & Iyatomi, Japanese; the English version is arXiv 2104.08763) applies VAT to the attention
scores of a BiLSTM classifier (Jain & Wallace's binary-classification model, Appendix A):

    model     w_t = embedding of x_t (d = 300); h_t = BiLSTM(w_t, h_{t−1}) (128 per direction, m = 256);
              ã_t = cᵀ tanh(W h_t + b) (W ∈ R^{d'×m}, d' = 128);  a = softmax(ã)              (Eq. 11)
              h_a = Σ_t a_t h_t;  ŷ = σ(Dec(h_a))
    loss      L(X_ã, y) = −(1/|D|) Σ log p(y | X_ã)                                          (Eq. 12)
    VAT       L_VAT = (1/|D′|) Σ_{X ∈ D′} KL(p(·|X_ã) ‖ p(·|X_{ã+r_VAT})),  D′ = labeled + unlabeled (Eq. 1, 3)
              r_VAT = argmax_{‖r‖₂ ≤ ε} KL(p(·|X_ã) ‖ p(·|X_{ã+r}));  ã_vadv = ã + r_VAT       (Eq. 2, 4)
    iVAT      d_t = (ã_t − ã_k)_{k=1..T};  d̄_t = d_t / ‖d_t‖₂;  r(α_t) = α_tᵀ d̄_t;  r(α) = (r(α_t))_t
              r_iVAT = argmax_{‖r‖₂ ≤ ε} KL(p(·|X_ã) ‖ p(·|X_{ã+r(α)}));  ã_ivadv = ã + r_iVAT (Eq. 5–9)
    training  L̃ = L(X_ã, y) + λ·L_VAT(X_ã, X_ã_vadv)                                         (Eq. 10)

Baselines from the same code (Appendix B), all with λ and a norm ε: Vanilla; Word AT (Miyato 2016: FGM on the
embeddings, r = ε·g/‖g‖, g = ∂L/∂w); Word iAT (Sato et al. 2018: r restricted to directions towards the k
nearest words' embeddings); Word VAT (Miyato 2017) and Word iVAT (Sato) — the VAT objective on the embeddings;
Attention AT / iAT (Kitada & Iyatomi 2021: the label loss's adversarial direction on ã). Supervised setting:
the nine methods; semi-supervised: Word VAT / iVAT and Attention VAT / iVAT with an unlabeled pool (Table 1b;
Appendix B lists "Word AT" there, a slip: AT has no unlabeled term, Table 1b says Word VAT).

How each equation is computed here (model.py, train.py):
- Perturbation shapes: embeddings r [B, T, d], attention scores r [B, T]. Every direction is zeroed on padding
  and L2-normalised per sentence over its real tokens (jointly over T and d, as Miyato's `_scale_l2`), so each
  sentence gets a perturbation of norm exactly ε (Eq. 2: ‖r‖₂ ≤ ε; the maximiser lies on the sphere).
- AT: g = ∂L/∂(w or ã) at r = 0, r_adv = ε·g/‖g‖, second term NLL(X + r_adv, y). The AT code's quirk (the
  clean loss's parameter gradient counted twice, peers.md §5) is not reproduced: the parameter gradient is
  that of Eq. 10.
- VAT (Eq. 2 by power iteration, Miyato 2017): d ~ N(0, I) per sentence, K times g = ∂KL/∂r at r = ξ·d/‖d‖,
  d = g; r_VAT = ε·d/‖d‖; the clean prediction p(·|X_ã) is held fixed (detached) in every KL (Eq. 3).
- iAT / iVAT (Sato et al. 2018; Eq. 5–8): r(α)_t = Σ_k α_{t,k} dir_{t,k}. Words: dir_{t,k} = unit vector from
  w_t to its k-th nearest word (cosine, recomputed every epoch, pad/unk/self excluded; Sato's code skips only the
  word itself, so <SOS>/<EOS> stay candidates here as there: they are vocabulary entries with trained
  embeddings, and pad's zero vector or unk's catch-all would give no word's direction). Attention: the scalar
  directions d̄_{t,k} of Eq. 5–6 over the real tokens k of the same sentence (Kitada's public iAT code builds
  differences across the batch, but its α starts at 0, so they never reach its perturbation, which is
  −ε·g/‖g‖ over the tokens: Attention AT's direction reversed, the loss-decreasing one; we follow the seed's
  within-sentence Eq. 5 and the ascent of Eq. 8). ∂L/∂α_{t,k} = ⟨dir_{t,k}, g_t⟩;
  α is that gradient L2-normalised per token over k (Sato's code; param `alpha_norm: token`), r = ε·r(α)/‖r(α)‖.
  That gradient is the paper's, of r linear in α; in Sato's code it also passes back through the normalisations of α
  and of r(α), which at iVAT's uniform start take out its component along α: Word iVAT's direction is the paper's.
  iAT takes g at r = 0 from the label loss; iVAT starts its power iteration at α = 1/k (Sato's code), i.e. at
  the mean direction, and takes g from the KL. Note for attention: with one scalar per token, per-token
  normalisation makes every token's share equal in size, r_t ∝ sign(g_t) (a sign-gradient step in the scores);
  normalising α over the whole sentence instead (`alpha_norm: sentence`) gives back Attention VAT's / AT's
  direction exactly, since ‖d̄_t‖ = 1 — Eq. 5–8 differ from Eq. 2 only through such a choice.
- Attention methods perturb ã only, so their extra passes reuse the clean BiLSTM states and recompute the
  softmax, pooling and output layer (the cheapest exact implementation); word methods re-encode.
- Semi-supervised batches: each step draws `batch_size` labeled sentences (one epoch = one pass over the
  labeled set) and `batch_unlabeled` sentences from the first N_ul of a seeded permutation of the pool (Miyato's
  separate unlabeled stream of the same batch size; the subsets are nested across N_ul for one seed). The NLL
  uses the labeled rows; L_VAT averages over all rows of the batch, an estimate of Eq. 1's mean over D′ in which
  the labeled sentences weigh batch_size / (batch_size + batch_unlabeled) (a half at our defaults), where a uniform
  draw from D′ would give them N_l / (N_l + N_ul) (SST at the paper's N_ul: 12 %); Miyato's code takes the KL on
  the unlabeled stream alone.
- Padding: sequences are right-padded; the forward LSTM reads them as they are and the backward LSTM reads each
  sentence reversed within its length, so padding never reaches a real token's state; the softmax is masked
  (attention exactly 0 on padding), and perturbations are zeroed there. Changing padding ids changes nothing.

Our choices where the seed is silent (all params; no public code of the VAT paper exists, peers.md §5):
- K = 1 power iteration and ξ = 0.1 (Miyato's text VAT), λ = 1 (Eq. 10; the AT code's `lam_adv`).
- ε: 5.0 on the embeddings (Miyato, "optimal on IMDB"), 15.0 for Word iAT/iVAT (Sato); on the attention
  scores the seed gives none (`eps_attention`, default 1.0: ã is O(1) per token, so ε = 1 moves a 20-token
  sentence's scores by about 0.2 each). SPEC: a swept param, the choice reported. `eps_attention_grid` (the
  paper profile: 1, 3, 10) trains every attention method of a stage at each ε and keeps the model with the best
  dev `selection` score, as the epoch is chosen; its record and metrics give every ε's dev score
  (`eps_selection`), the report each model's ε. Fig. 2 trains at `eps_attention` (a grid at each N_ul would
  multiply its cost by the grid's size). The word-level ε's stay fixed (their papers tuned them), so with a grid
  only the attention side is tuned on dev, which favours it in the attention-vs-word claims (the report says so).
  A DVC-level sweep (`replab sweep attention_vat eps_attention=…`) compares whole runs instead.
- Dropout: the AT code's classifier has none, so `dropout` defaults to 0. When set (on the embeddings), the
  perturbed passes run without it by default (`dropout_in_perturbed: false`) and the clean reference of the
  word-level KL is a dropout-free pass too, so the KL measures the perturbation, not two dropout masks (the
  noise Sato's code has, enricivi/adversarial_training_methods#4). Attention-level perturbed passes reuse the
  clean pass's states, so they share its mask by construction.
- Embeddings: random N(0, 1) rows (offline) or fastText rows from embeddings.npy when the data set was prepared
  with them (`data.<name>.embeddings: fasttext`, the authors' wiki.simple); no Miyato-style normalisation.
- Loss: plain NLL (Eq. 12); the AT code's class-balancing `pos_weight` is not used. Adam (amsgrad) lr 1e-3,
  batch 32, 8 epochs, weight decay 0 (the AT code: 1e-5 on encoder and output, param `weight_decay`).
- Model selection: the epoch with the best dev ROC-AUC (the AT code's `+auc`; param `selection: auc | f1`).
  The positive-class F1 the papers report rewards predicting everything positive on a balanced dev set (F1 =
  2p/(1+p)), so selecting on it keeps undertrained epochs. The selected epoch's dev F1 is Fig. 2's "validation
  score" (the seed does not name the metric); dev accuracy and AUC are recorded beside it.
- N_ul: the whole prepared pool by default (`data.sst.n_unlabeled` = 50,000, `data.imdb.n_unlabeled` = 150,000:
  the paper's values); `n_unlabeled` caps it. Fig. 2 trains each method of `fig2.methods` at N_ul = ratio × N_l
  for `fig2.ratios` (0 … 7) in one stage per dataset, family and seed (no weights kept; dev F1 per point in
  train.json).
- Table 2 (rationales) is the seed's unnamed "semi-supervised" model: the paper profile trains every method on
  eraser_movies as well, and the evaluation scores them all. Its pool: `data.eraser_movies.unlabeled` (the seed
  names none; the paper profile takes SST's, lm1b at N_ul = 50,000); without one the semi-supervised methods
  train at N_ul = 0 (the VAT term on the labeled sentences alone), and Table 2 gives N_ul.

Quick profile (conf/profile/quick.yaml; all ours): rt_snippets, d = 32, BiLSTM 32, attention 32, batch 64, lr 3e-3,
4 epochs, N_l = 2,000 of the training movies' 9,562 labeled snippets (`data.rt_snippets.n_labeled`), N_ul = 6,000
(3×, of a pool of 13,237 unlabeled snippets and plot sentences), 64 of them a step, Fig. 2 at 0, 1 and 3 × N_l,
ε_word scaled by √(32/300). A run draws `batch_unlabeled` pool sentences per labeled batch, so 4 epochs draw
8,192: an N_ul beyond the draws of the kept epoch adds no data, only another subset (train.json's `unlabeled_seen`
counts the distinct ones; the report prints it where it is below N_ul). At the paper profile's 32 + 32 sentences a
step, 7 × N_l takes 7 of the 8 epochs.
Why its results are weak, measured in-process (one thread, dev ROC-AUC; seed 0 unless said):
- Scale of the labeled data, not the code. `evaluate.linear_baseline` (TF-IDF logistic regression, C = 1, on the
  same split and train-fit vocabulary) reaches 0.740 / 0.764 / 0.779 / 0.793 / 0.830 at N_l = 1,500 / 2,000 /
  3,000 / 4,000 / 9,562; vanilla at the quick sizes 0.655 / 0.683 / 0.718 (3 seeds, 6 epochs) at the first three,
  0.744 at 4,000 and 0.804 at 9,562: it rises with N_l as the linear model does, 0.04–0.09 below it (embeddings
  trained from scratch; 13–15 % of dev tokens are <unk> with a vocabulary fit on the labeled snippets).
- Code checks: vanilla learns a synthetic keyword task (label = one word present) to 100 % dev accuracy by epoch 2;
  on rt_snippets its training NLL falls to 0.22 by epoch 6 and 0.001 by epoch 20 while dev AUC stays near 0.66
  (overfitting, not a broken step); at N_l = 1,500 neither 128-d embeddings with BiLSTM 64 (0.698), lr 1e-2
  (0.677) or 1e-3 (0.650, 20 epochs), nor embedding dropout 0.5 (0.669) reaches the linear model.
- Fewer epochs on more labels: 2,000 × 4 epochs (128 steps) gives 0.677 (3 seeds) against 1,500 × 6 (144 steps)
  0.655; 3,000 × 4 gives 0.706 but leaves a pool of only 4.1 × N_l for Fig. 2.
- Attention VAT's KL is small by construction: the decoder is linear, so logit = Σ_t a_t Dec(h_t) and any attention
  moves the logit only within the range of the per-token logits Dec(h_t). On dev (trained vanilla, 1,500) all
  tokens vote one sign in 52 % of the sentences, the largest KL any attention could reach averages 0.29, and a
  random ‖r‖ = 1 (30) on ã gives a KL of 2e-4 (0.04): the attention-level term regularises weakly at this size,
  whatever ε (the word-level VAT term is about 0.1).

Variants: `<dataset>-<method>-supervised-<seed>`, `<dataset>-<method>-semi-<seed>`,
`fig2-<dataset>-<family>-<seed>` (the names of metrics, curves and report rows). Stages (dvc.yaml matrix keys):
`<dataset>-<setting>-<family>-<seed>` trains every method of one family (vanilla, word, attention: what it
perturbs, which decides the params its stage lists) in the setting in one process (one start-up, not one per
method), one subfolder per variant in models/attention_vat/<stage key>/; `fig2-<dataset>-<family>-<seed>` (word
or attention: Fig. 2's points of the family's methods); evaluation: `evaluate-<dataset>` (every variant of a
dataset in one process).

Read in order: model.py (configuration, data, the network, Eq. 1–12 and the perturbations), train.py (one step
of each method, the epoch loop with model selection, Fig. 2), evaluate.py (F1, attention–gradient agreement,
rationale agreement), report.py (Tables 1a, 1b, 2, Fig. 2, the claims). The training stages depend on model.py
and train.py only.
"""

from replab.papers.attention_vat.evaluate import evaluate
from replab.papers.attention_vat.model import (
    AXES,
    EVALUATE_ALL,
    FIG2,
    KEY_PREFIXES,
    METHOD_LABELS,
    METHODS,
    PAPER,
    SEMI_METHODS,
    SETTINGS,
    AttentionClassifier,
    Config,
    Fig2Config,
    Output,
    axes_for,
    fig2_key,
    group_key,
    kl_binary,
    load_model,
    nll,
    save_model,
    sweep_variants,
    variant_dir,
    variant_key,
)
from replab.papers.attention_vat.report import summarize
from replab.papers.attention_vat.train import bench_setup, check_data, fit, train, training_loss

__all__ = [
    "AXES", "EVALUATE_ALL", "FIG2", "KEY_PREFIXES", "METHODS", "METHOD_LABELS", "PAPER", "SEMI_METHODS", "SETTINGS",
    "AttentionClassifier", "Config", "Fig2Config", "Output", "axes_for", "bench_setup", "check_data", "evaluate",
    "fig2_key", "fit", "group_key", "kl_binary", "load_model", "nll", "save_model", "summarize", "sweep_variants",
    "train", "training_loss", "variant_dir", "variant_key",
]
