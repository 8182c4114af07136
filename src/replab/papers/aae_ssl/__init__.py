"""aae_ssl (source 000): semi-supervised adversarial autoencoder with a content (y) / style (z) split latent.

The encoder q(y, z | x) splits its code into a 10-way softmax y (content, the class) and a linear z (style).
ONE discriminator D(y, z) sees both parts and pushes q(y, z) towards p(y)·p(z) — y one-hot of a uniformly
drawn class, z ~ N(0, I) — which makes y and z independent so that y keeps only the class (Sec. 3.2).

    L = λ_NLL·L_NLL + λ_rec·L_rec + λ_reg·L_reg                               (Eq. 3)
    L_NLL = −log q(y = label | x)                   labeled batches only       (Eq. 4)
    L_rec = ‖x − x̃‖²                                                          (Eq. 5)
    L_reg = GAN value of D on (prior sample) vs (encoder output)               (Eq. 6)
    (λ_NLL, λ_rec, λ_reg) = (1, 7, 1) on labeled and (0, 7, 1) on unlabeled batches.

Baselines from the same code: AE (λ_reg = 0, no discriminator), AAE(z) (discriminator on z alone).

Our choices where the seed is silent (all params; public evidence in reference/peers.md, musyoku's
Chainer AAE that the seed's lab is closest to): Adam lr 1e-4, betas (0.1, 0.999); grad-norm clip 5, per optimizer
as there, but Eq. 3 is one loss of encoder and decoder with one Adam, so their gradients are clipped together (the
encoder's norm, about 8–16 in a paper-size run's first 300 steps, scales the decoder's, under 0.5: musyoku's
optimizer per module never clips a decoder; `grad_clip_per: module` clips each alone); PyTorch's layer
initialisation (uniform ±1/√fan_in; musyoku's N(0, 0.01));
100 labeled + 100 unlabeled images per iteration; one D step per encoder/decoder step; the encoder is
trained with the non-saturating form −log D(enc); the decoder receives softmax(y); model selection by
validation error; L_rec is the per-pixel mean (Chainer's mean_squared_error), `rec_reduction: sum` available;
training length 50,000 iterations (`iterations`: 100 passes over the 50k unlabeled images), a compute budget, not
evidence: musyoku's codes ran 1M–5M iterations at the same lr 1e-4 and β1 0.1, so at paper scale Table 1 may be
read before its models converge (validation error selects the iteration; a longer run is `-S aae_ssl.iterations`).

Fig. 3's measure: the seed reads its two heatmaps as "AAE(y,z) has more components near 0 than AE" — a count.
The report gives the fraction of off-diagonal entries with |corr| < `corr_threshold` (ours, 0.1) as the claim's
measure, mean over seeds, with the mean |corr| off the diagonal and in the y–z block beside it.

The seed's ambiguities, and how they are resolved here:
- the prior of y is "一様分布" (a uniform distribution): read as a one-hot vector of a uniformly drawn class, as
  public AAE code does (a continuous uniform would not match the softmax y the discriminator also sees);
- Eq. 4 is written as Σ_i Σ_j I(y_i = j)·log P(y_i|x_i) with no sign or normaliser: read as the cross-entropy,
  batch mean; Eq. 5's ‖x − x̃‖² has no reduction: the per-pixel mean (Chainer's mean_squared_error), `sum`
  available;
- Eq. 6 is the GAN value and the text says the encoder learns "to make D output 1": the non-saturating form;
- the validation split is "for deciding hyperparameters": we also select the model (iteration) by it;
- the dropout rate, the optimiser and the batch sizes are not given (the defaults above, from peers.md);
- Table 1's ± is over an unstated number of runs: the paper profile runs 5 seeds;
- Fig. 3 does not say which Nl or split it shows: the test split at the smallest Nl of the sweep;
- Fig. 4 does not say which Nl its 2-D-z model used: `style.n_labeled` (1,000, ours); its grid is the seed's
  (z1, z2 from −30 to 30, step 6).

Read in order: model.py (configuration, labeled subset, networks, Eq. 3–6), train.py (the alternating D and
encoder/decoder steps, model selection), evaluate.py (Table 1 test error, Fig. 3 correlations, Fig. 4 grid),
report.py (tables, figures, claims). The DVC stages depend on exactly the files they run, so editing the
evaluation or the report does not retrain.
"""

from replab.papers.aae_ssl.evaluate import (
    all_variants,
    evaluate,
    latent_correlation,
    offdiag_mean_abs,
    style_grid,
    yz_block_mean_abs,
)
from replab.papers.aae_ssl.model import (
    AXES,
    MODEL_LABELS,
    MODELS,
    N_CLASSES,
    PAPER,
    PAPER_TABLE1,
    SPECIAL_KEYS,
    Config,
    Decoder,
    Discriminator,
    Encoder,
    StyleConfig,
    batch_objective,
    build,
    discriminator_loss,
    error_rate,
    generator_loss,
    iteration_objective,
    labeled_subset,
    load_model,
    prior_sample,
    reconstruction_loss,
    variant_key,
)
from replab.papers.aae_ssl.report import summarize
from replab.papers.aae_ssl.train import bench_setup, check_data, clip_groups, fit, fit_seeds, train

__all__ = [
    "AXES", "MODELS", "MODEL_LABELS", "N_CLASSES", "PAPER", "PAPER_TABLE1", "SPECIAL_KEYS", "Config", "Decoder",
    "Discriminator", "Encoder", "StyleConfig", "all_variants", "batch_objective", "bench_setup", "build", "check_data",
    "clip_groups", "discriminator_loss", "error_rate", "evaluate", "fit", "fit_seeds", "generator_loss",
    "iteration_objective", "labeled_subset", "latent_correlation", "load_model", "offdiag_mean_abs", "prior_sample",
    "reconstruction_loss", "style_grid", "summarize", "train", "variant_key", "yz_block_mean_abs",
]
