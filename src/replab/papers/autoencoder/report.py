"""autoencoder report: the loss table beside the blog's numbers, denoising PSNR, anomaly ROC-AUC, the
reconstruction figures and the qualitative claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replab import report
from replab.papers.autoencoder.model import (
    ANOMALY,
    ANOMALY_MODELS,
    BLOG_LOSS,
    BLOG_LOSS_TOLERANCE,
    MODEL_LABELS,
    MODELS,
    N_CLASSES,
    PAPER,
    SCORES,
    Config,
    variant_key,
)
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, fail

# What the report prints of each metrics file evaluate.py writes besides its measures (those are read through
# Records.value): checked before any value is used, so that a damaged file is named with its key instead of a
# "None" in a table or a class silently missing from the anomaly table.
RUN = {"seed": (int, {"ge": 0, "le": SEED_MAX}), "epochs": (int, {"ge": 1, "le": MAX_COUNT}),
       "batch_size": (int, {"ge": 1, "le": MAX_SIZE})}
VARIANT = report.schema("Variant", {"model": (str, {"choices": MODELS}), **RUN,
                                    "code_size": (int, {"ge": 1, "le": MAX_SIZE})})


def _roc_auc_per_held_out_class(self, where: str) -> None:  # one ROC-AUC (or null) per held-out class, no other
    if set(self.roc_auc) != {str(k) for k in self.held_out}:
        fail(where, f"roc_auc: classes {', '.join(self.roc_auc) or 'none'} for held_out "
                    f"{', '.join(map(str, self.held_out))} (one per held-out class)")


ANOMALY_RECORD = report.schema("Anomaly", {"model": (str, {"choices": ANOMALY_MODELS}), **RUN,
                                           "score": (str, {"choices": SCORES}),
                                           "held_out": (list[int], {"ge": 0, "lt": N_CLASSES, "nonempty": True}),
                                           "roc_auc": (dict[str, float | None], {})}, _roc_auc_per_held_out_class)


def _holds(ok: bool | None) -> str:
    return report.verdict_words(ok, "not testable (missing values)")


def _reconstruction_figure(npz_path: Path, model: str, out_path: Path) -> str:
    """The article's screenshot: 10 test digits on the top row, the model's output below."""
    import matplotlib.pyplot as plt

    from replab.io import read_npz

    arrays = read_npz(npz_path)
    n = len(arrays["labels"])
    top, bottom = ("noisy input", "denoised") if model == "denoising" else ("input", "reconstruction")
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.5), squeeze=False)
    for j in range(n):
        for i, (key, label) in enumerate((("input", top), ("output", bottom))):
            ax = axes[i, j]
            ax.imshow(arrays[key][j], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"{MODEL_LABELS[model]}: test digits (top) and outputs (bottom)", fontsize=9)
    return report.save_figure(fig, out_path)


def _anomaly_figure(aucs: dict[str, float | None], mean: float | None, out_path: Path) -> str:
    """Bars of the per-class ROC-AUC (a missing class has no bar) and the mean line (absent if missing)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(aucs), [float("nan") if v is None else v for v in aucs.values()], color="tab:blue")
    ax.axhline(0.5, color="gray", ls="--", lw=1, label="chance")
    if mean is not None:
        ax.axhline(mean, color="tab:red", lw=1, label=f"mean {mean:.3f}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("held-out class (anomaly)")
    ax.set_ylabel("ROC-AUC")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return report.save_figure(fig, out_path)


def summarize(cfg: Config, params: dict):
    keys = {m: [variant_key(m, s) for s in cfg.seeds] for m in cfg.models}
    a = cfg.anomaly  # each file must be the run of its key and params (not a copy of another run's)
    expected = {variant_key(m, s): {"model": m, "seed": s, "epochs": cfg.schedule(m).epochs,
                                    "batch_size": cfg.schedule(m).batch_size} for m in cfg.models for s in cfg.seeds}
    expected[ANOMALY] = {"model": a.model, "seed": a.seed, "epochs": a.epochs, "batch_size": a.batch_size,
                         "held_out": a.held_out, "score": a.score}
    records = report.gather(PAPER, {k: {**v, "dataset": cfg.dataset} for k, v in expected.items()},
                            schema=lambda record: ANOMALY_RECORD if record.path.stem == ANOMALY else VARIANT)
    summary_dir = Path("plots") / PAPER / "summary"
    real = cfg.dataset == "mnist"
    summary: dict = {"dataset": cfg.dataset, "test_loss": {}, "test_mse": {}, "test_psnr": {}}
    rows = []
    for m in cfg.models:
        recs = [records[k] for k in keys[m]]
        loss = records.stats(keys[m], "test_loss")
        blog = BLOG_LOSS.get(m)
        if blog is None:
            verdict = "– (no number in the blog)"
        elif real:
            verdict = report.band_verdict(loss, (blog, BLOG_LOSS_TOLERANCE))
        else:
            verdict = f"not comparable ({cfg.dataset})"
        summary["test_loss"][m] = {**loss, "verdict": verdict}  # the blog's number stays in the report text
        summary["test_mse"][m] = records.stats(keys[m], "test_mse")
        summary["test_psnr"][m] = records.stats(keys[m], "test_psnr")
        sched = cfg.schedule(m)
        rows.append([MODEL_LABELS[m], recs[0]["code_size"], sched.epochs, sched.batch_size,
                     report.fmt(loss, 4), "–" if blog is None else f"≈ {blog}",
                     report.fmt(summary["test_mse"][m], 4), report.fmt(summary["test_psnr"][m], 2), verdict])
    md = [f"Keras blog models on **{cfg.dataset}**, {len(cfg.seeds)} seed(s) each; test loss = per-pixel mean "
          "BCE on the test set (the blog's validation loss); test MSE its per-pixel mean squared error; PSNR the mean "
          "over test images of each image's 10·log10(1 / MSE) (so not 10·log10(1 / test MSE)).", "",
          report.md_table(["model", "code", "epochs", "batch", "test loss (ours)", "blog", "test MSE",
                           "PSNR dB", "verdict"], rows), ""]

    claims, close = {}, {}  # close: the claims whose deciding difference the seeds' spread covers
    if "simple" in cfg.models and "deep" in cfg.models:
        deep_gt_simple, close["deep_le_simple_loss"] = report.greater_with_spread(summary["test_loss"]["deep"],
                                                                                  summary["test_loss"]["simple"])
        claims["deep_le_simple_loss"] = None if deep_gt_simple is None else not deep_gt_simple
    if "denoising" in cfg.models:
        denoised = [records.derived(k, "psnr_denoised", records.value(k, "test_psnr"), "its test_psnr")
                    for k in keys["denoising"]]  # (the table's PSNR and the claim's: one number)
        summary["psnr"] = {"noisy": records.stats(keys["denoising"], "psnr_noisy"),
                           "denoised": report.mean_std(denoised)}
        claims["denoised_psnr_gt_noisy"], close["denoised_psnr_gt_noisy"] = report.greater_with_spread(
            summary["psnr"]["denoised"], summary["psnr"]["noisy"])
        md += [f"Denoising (noise factor {cfg.denoising.noise_factor}): PSNR noisy vs clean "
               f"{report.fmt(summary['psnr']['noisy'])} dB → denoised vs clean "
               f"{report.fmt(summary['psnr']['denoised'])} dB.", ""]

    anomaly = records[ANOMALY]
    # a class whose ROC-AUC is undefined (one-class split: null) is shown as – and left out of the mean
    aucs = {k: records.value(ANOMALY, f"roc_auc.{k}") for k in anomaly["roc_auc"]}
    defined = [v for v in aucs.values() if v is not None]  # the mean is over the defined classes (evaluate.py)
    mean_auc = records.derived(ANOMALY, "roc_auc_mean", float(np.mean(defined)) if defined else None,
                               "the mean of its classes' roc_auc")
    summary["anomaly_roc_auc"] = {**aucs, "mean": mean_auc}
    claims["anomaly_auc_gt_chance"] = report.greater(mean_auc, 0.5)
    close["anomaly_auc_gt_chance"] = False  # one model's ROC-AUC: no spread
    figure = _anomaly_figure(aucs, mean_auc, summary_dir / "anomaly_roc_auc.png")
    md += [f"Anomaly detection ({anomaly['model']} autoencoder, {anomaly['epochs']} epochs, seed "
           f"{anomaly['seed']}, score = per-image {anomaly['score'].upper()}): ROC-AUC of the held-out class "
           "(positive) vs the other test images.", "",
           report.md_table(["held-out class", *aucs, "mean"],
                           [["ROC-AUC", *(report.num(v, 3) for v in aucs.values()),
                             report.MISSING if mean_auc is None else f"**{mean_auc:.3f}**"]]),
           "", f"![anomaly ROC-AUC]({figure})", ""]

    claim_text = {"deep_le_simple_loss": "deep autoencoder reaches a lower test loss than the simple one "
                                         "(blog ≈ 0.08 vs ≈ 0.09)",
                  "denoised_psnr_gt_noisy": "the denoising autoencoder raises PSNR over the noisy input",
                  "anomaly_auc_gt_chance": "reconstruction error flags the unseen class (mean ROC-AUC > 0.5)"}
    md += ["Qualitative claims:", ""] + [f"- {claim_text[c]}: **{_holds(ok)}**"
                                         + report.spread_mark(close[c])
                                         for c, ok in claims.items()] + [""]
    summary["claims"] = claims
    summary["claims_within_spread"] = close

    md += [f"Reconstructions (seed {cfg.seeds[0]}; the article's screenshot layout, with the first test image of "
           "each class 0–9, our choice: the blog's code shows its first ten test images):", ""]
    for m in cfg.models:
        key = variant_key(m, cfg.seeds[0])
        rel = _reconstruction_figure(Path("plots") / PAPER / "variants" / key / "reconstructions.npz", m,
                                     summary_dir / f"reconstructions_{m}.png")
        md += [f"![{m}]({rel})", ""]
    summary["run"] = report.run_summary(records.values())
    return report.Section(PAPER, "autoencoder — the basic autoencoder (source 003, which runs the Keras blog's "
                                 "models)", "\n".join(md),
                          summary, claim_text)
