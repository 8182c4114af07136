"""autoencoder (source 003): the basic autoencoder of the Keras blog, its uses, and the article's figure.

The seed (a Qiita note, 2020-12-07) runs the Keras page's simple autoencoder — read as F. Chollet's "Building
Autoencoders in Keras" blog; the note names only "the Keras page" — on MNIST (784 → 32 → 784, 50 epochs, its
screenshot: 10 test digits on top, their reconstructions below). It names the autoencoder's uses: dimensionality
reduction (feature extraction), anomaly detection by the input–output difference, denoising, and in passing data
generation with a variational autoencoder and classification / clustering of the data. We port the blog's models
to PyTorch (reference/peers.md §4 holds the blog's settings and its reported losses) and measure the first three
uses; generation and classification / clustering on the code are not reproduced here:

    simple      784 → Dense 32 ReLU → Dense 784 sigmoid                     50 epochs, batch 256, ≈ 0.09
    deep        784-128-64-32-64-128-784, ReLU, sigmoid output                100 epochs, batch 256, ≈ 0.08
    conv        Conv16-Pool-Conv8-Pool-Conv8-Pool ⇒ (4, 4, 8) = 128-d code;
                Conv8-Up-Conv8-Up-Conv16 'valid' (16 → 14)-Up-Conv1 sigmoid   50 epochs, batch 128, ≈ 0.094
    denoising   noisy = clip(x + 0.5·N(0, 1), 0, 1); Conv32-Pool-Conv32-Pool ⇒ (7, 7, 32);
                Conv32-Up-Conv32-Up-Conv1 sigmoid; trained noisy → clean    100 epochs, batch 128, no number

    loss = per-pixel mean binary cross-entropy (Keras `binary_crossentropy`), Adam lr 1e-3, β (0.9, 0.999),
    ε 1e-7 (tf.keras), glorot_uniform weights and zero biases (Keras defaults), shuffled batches, the last
    one partial, fixed epochs and the final weights (no model selection).

The blog validates on the test set (`validation_data=(x_test, x_test)`); our curves log the training loss
and that test loss every epoch (no model selection uses it); the loss on our own validation split is in the
metrics (`val_loss`). So the models train on the training split without it (MNIST: 50,000 images, where the
blog trains on all 60,000; not measured how much the 10,000 fewer move its ≈ 0.09 loss). As in the blog, the
noisy training images are drawn once before training (seeded by the run seed); the noisy test/validation
images come from `denoising.noise_seed`, the same for every seed.

Anomaly detection (the article's first use, `anomaly` stage): for every held-out class k, train on all
training images but class k, score the test images by their per-image reconstruction error and report the
ROC-AUC of class k (positive) against the rest; per class and the mean. Denoising: PSNR (data range 1) of
noisy vs clean and of denoised vs clean, mean over the test images.

Models return logits; the sigmoid is applied by `reconstruct` and folded into the loss
(BCE-with-logits, which is what tf.keras computes for a sigmoid output layer).

The article's ambiguities, and how they are resolved here:
- "Keras のページ" (the Keras page) is not named: read as the "Building Autoencoders in Keras" blog, whose
  simple model, MNIST data and 50 epochs match the article's run;
- which 10 test digits its screenshot shows is not stated (the blog's code plots the first 10 test images):
  ours is a choice, the first test image of each class, 0 to 9 (`example_indices`), so that every digit
  appears once in the reconstruction figures;
- anomaly detection and denoising are named, not run, in the article: the protocols (held-out class,
  ROC-AUC; the blog's noise factor 0.5, PSNR) are ours.

Our choices where the sources are silent (all params): the anomaly models are the simple autoencoder with
the blog's 50 epochs, scored by per-image MSE (`anomaly.score: bce` available), one seed; three seeds per
model for mean ± std (the blog shows one run). Remaining differences to Keras: torch's Adam adds ε to
sqrt(v̂) where tf.keras adds it to sqrt(v) (negligible at ε = 1e-7); the fused Adam kernel is used on CPU
and CUDA (the same update, one kernel for all parameters).

Read in order: model.py (configuration, networks, loss, noise, reconstruction measures), train.py (Keras-style
fit, the anomaly stage's per-class models), evaluate.py (test loss / MSE / PSNR, ROC-AUC), report.py (tables,
figures, claims). The DVC stages depend on exactly the files they run, so editing the evaluation or the report
does not retrain.
"""

from replab.papers.autoencoder.evaluate import all_variants, evaluate, evaluate_anomaly, example_indices, roc_auc
from replab.papers.autoencoder.model import (
    ANOMALY,
    AXES,
    BLOG_LOSS,
    MODEL_LABELS,
    MODELS,
    N_CLASSES,
    PAPER,
    SCORES,
    SPECIAL_KEYS,
    AnomalyConfig,
    AutoEncoder,
    Config,
    ConvAutoEncoder,
    DenoisingSchedule,
    Schedule,
    add_noise,
    bce_loss,
    build,
    code_size,
    conv3,
    fixed_noisy,
    keras_init_,
    load_model,
    mean_loss,
    per_image_error,
    place,
    pool,
    psnr,
    reconstruct,
    up,
    variant_key,
)
from replab.papers.autoencoder.report import summarize
from replab.papers.autoencoder.train import (
    bench_setup,
    check_data,
    fit,
    held_out_classes,
    model_inputs,
    train,
    train_anomaly,
)

__all__ = [
    "ANOMALY", "AXES", "BLOG_LOSS", "MODELS", "MODEL_LABELS", "N_CLASSES", "PAPER", "SCORES", "SPECIAL_KEYS",
    "AnomalyConfig", "AutoEncoder", "Config", "ConvAutoEncoder", "DenoisingSchedule", "Schedule", "add_noise",
    "all_variants", "bce_loss", "bench_setup", "build", "check_data", "code_size", "conv3", "evaluate",
    "evaluate_anomaly", "example_indices", "fit", "fixed_noisy", "held_out_classes", "keras_init_", "load_model",
    "mean_loss", "model_inputs", "per_image_error", "place", "pool", "psnr", "reconstruct", "roc_auc", "summarize",
    "train", "train_anomaly", "up", "variant_key",
]
