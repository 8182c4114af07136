"""split_vae (source 001): a VAE with two bottlenecks, A (digit, supervised) and B (the rest: writer, style).

The seed (a Qiita article by @29Takuya, Japanese, undated; it links its notebook as github.com/29Takuya/wvae,
read here as takuya29/wvae, reference/peers.md §2) splits the latent code of a VAE on EMNIST digits into A, which
feeds a digit classifier, and B, which has no supervision and should keep what the reconstruction needs besides
the digit — the writer's style (§2 提案モデル). The article gives neither a year nor training settings: the
architecture's sizes, C1, C2, the optimiser, batch 256 and the 50 epochs are the notebook's (HEAD 59367ed,
2018-04-29), not the article's.

    encoder   h = tanh(W·x + b), x ∈ [0, 1]^784, h ∈ R^500;  μ_A, logσ²_A, μ_B, logσ²_B = four linear heads of h
    sample    z_A = μ_A + σ_A·ε,  z_B = μ_B + σ_B·ε                     (k = 1 sample per image in training)
    decoder   logits = W_o·(tanh(W_A·z_A) + tanh(W_B·z_B)) + b_o       (the two 500-unit paths are SUMMED)
    classifier  p(digit | z_A) = softmax(W_c·z_A)                      (on the sampled z_A)
    loss = rec + C1·(KL_A + KL_B) + C2·CE
      rec   = Σ_pixels Bernoulli NLL(x | sigmoid(logits))              per-image sum, batch mean
      KL_·  = Σ_dims ½(μ² + σ² − log σ² − 1)                           per-image sum, batch mean
      CE    = batch-mean softmax cross-entropy of the digit
      C1 = 1; C2 = 10000 / 256 = 39.0625 (the notebook writes C2·CE/batchsize with C2 = 10000 and Chainer's CE
      already a batch mean); Adam lr 1e-3 (Chainer defaults otherwise), batch 256, 50 epochs (all the notebook's).

Experiment I (実験Ⅰ): 1-D A and 1-D B on all the data; the test latents drawn as a scatter (x = A, y = B)
coloured by digit, and images decoded over a grid of the same (A, B) plane. Claims: A is discriminative for
the digit; B holds something like the slant of the character.
Experiment II (実験Ⅱ): 10-D A and 10-D B on a 100-writer subset (60–100 images per writer; the article: 8,670
train / 1,030 test images); t-SNE of A and of B; writer clustering with K = number of writers:

    # | model | features            | Purity | ARI    | AMI        (the article's table, ARTICLE_TABLE)
    1 | K-Means | raw pixels (784)  | 0.1893 | 0.0204 | 0.0580
    2 | GMM     | raw pixels (784)  | 0.1660 | 0.0153 | 0.0506
    3 | K-Means | latent B (10)     | 0.1971 | 0.0275 | 0.0736     ← "best on every measure"
    4 | GMM     | latent B (10)     | 0.1883 | 0.0220 | 0.0621

Measures: Purity = (1/N)·Σ_clusters max_writer |cluster ∩ writer| (from sklearn's contingency matrix); ARI;
AMI with average_method="max" (the article's scikit-learn 0.19.1 normaliser) and the current default
"arithmetic". The article does not say which split it clustered: the test split is our primary result, the
training split is reported too.

Beyond the article (our additions): a latent-A control row in the clustering table (K-Means on A: A should
carry less writer information than B); linear probes (standardised features → multinomial logistic
regression, fit on the training latents, scored on the test latents) of the writer and of the digit from A
and from B; the R² of a linear regression of each image's slant (second-moment shear, `slant`) from A and
from B (the article's "B looks like slant"); test losses with k = 10 samples, as the notebook evaluates them.

Our choices where the sources are silent (all params unless stated):
- the Exp II writer subset: writers with `min_train`…`max_train` training images, `n_writers` of them drawn
  with `subset_seed` (the same subset for every seed), all their test images; `n_writers: 0` = all writers
  (the embedded `writers` set). Experiment I uses all the data.
- features for clustering, t-SNE and probes are the posterior means μ_A, μ_B (not samples); raw pixels are
  the [0, 1] floats; K-Means with `kmeans_n_init` = 10 restarts (scikit-learn 0.19's default);
- GMM covariance: "full" (scikit-learn's default, then and now) on latent B, but "diag" on the 784 raw
  pixels (a full 784×784 covariance per component on ~100 images per component is degenerate and slow);
  EM capped at `gmm_max_iter` (a capped run is recorded as not converged);
- t-SNE (scikit-learn, PCA init, seeded) on at most `tsne.points` test images;
- the decoded grid of Exp I spans the [q, 1 − q] quantiles of the test μ_A and μ_B (`grid.quantile`);
- the digit accuracy is the model's classifier on μ_A; initialisation is Chainer's (LeCun normal weights, zero
  biases); the four encoder heads are one Linear(500 → 4·d) layer (the same initial distribution and
  function as four separate heads); the last partial batch of an epoch is kept at the same weights (the
  notebook's C2/batchsize weighs it differently); the notebook's unused covariance term C3 is not ported.

The article's ambiguities, and how they are resolved here:
- which split Exp II clusters is not stated: test primary, train reported too (above);
- "筆者:100人 一人あたり 60~100枚程度" (100 writers, about 60–100 images each) gives no selection rule: writers
  with `min_train`…`max_train` training images, drawn with `subset_seed`;
- the table's AMI is scikit-learn 0.19's (normaliser "max"); today's default ("arithmetic") is reported beside it;
- "row 3 is best" is read over rows 1–4 and all three measures, as the article words it, although in its own
  table row 4 does not beat row 1 on purity (SPEC);
- "Latent Variable B … 文字の傾き" (B looks like slant) is a visual reading: measured here as the R² of a
  second-moment shear from A and from B;
- the article's data is EMNIST digits with writer ids; the quick profile uses the `writers` stand-in
  (mnist5k digits in per-writer styles), whose numbers are not comparable with the article's.

Read in order: model.py (configuration, data and writer subset, the model, loss terms), train.py (the training
loop), evaluate.py (losses, probes, slant, clustering, grid, t-SNE), report.py (tables, figures, claims). The DVC
stages depend on exactly the files they run, so editing the evaluation or the report does not retrain.
"""

from replab.papers.split_vae.evaluate import (
    all_variants,
    cluster,
    clustering_scores,
    clustering_table,
    decoded_grid,
    evaluate,
    majority_share,
    probe_accuracy,
    purity,
    slant,
    slant_r2,
    tsne_embed,
)
from replab.papers.split_vae.model import (
    ARTICLE_ROWS,
    ARTICLE_TABLE,
    AXES,
    EXPERIMENTS,
    MEASURES,
    PAPER,
    ROWS,
    SPECIAL_KEYS,
    TERMS,
    ClusteringConfig,
    Config,
    Exp2Config,
    ExperimentConfig,
    GridConfig,
    SplitVAE,
    TsneConfig,
    WriterData,
    bernoulli_nll,
    eval_terms,
    experiment_data,
    gaussian_kl,
    latents,
    load_model,
    load_writers,
    loss_terms,
    restrict,
    sample,
    variant_key,
    writer_subset,
)
from replab.papers.split_vae.report import summarize
from replab.papers.split_vae.train import bench_setup, check_data, fit, train

__all__ = [
    "ARTICLE_ROWS", "ARTICLE_TABLE", "AXES", "EXPERIMENTS", "MEASURES", "PAPER", "ROWS", "SPECIAL_KEYS", "TERMS",
    "ClusteringConfig", "Config", "Exp2Config", "ExperimentConfig", "GridConfig", "SplitVAE", "TsneConfig",
    "WriterData", "all_variants", "bench_setup", "bernoulli_nll", "check_data", "cluster", "clustering_scores",
    "clustering_table", "decoded_grid", "eval_terms", "evaluate", "experiment_data", "fit", "gaussian_kl", "latents",
    "load_model", "load_writers", "loss_terms", "majority_share", "probe_accuracy", "purity", "restrict", "sample",
    "slant", "slant_r2", "summarize", "train", "tsne_embed", "variant_key", "writer_subset",
]
