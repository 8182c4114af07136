"""split_vae report: Experiment I's table and figure, Experiment II's clustering table beside the article's, the
probes, the t-SNE figure and the claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replab import report
from replab.io import finite, read_npz
from replab.papers.split_vae.model import (
    ARTICLE_LATENT_DIM,
    ARTICLE_ROWS,
    ARTICLE_TABLE,
    DIGIT_ACCURACY_CLAIM,
    EXPERIMENTS,
    FEATURE_LABELS,
    MEASURES,
    NOTEBOOK_EXP1,
    PAPER,
    ROWS,
    SPLITS,
    TERMS,
    Config,
    variant_key,
)
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX

# What the report prints of each metrics file evaluate.py writes besides its measures (those are read through
# Records.value): checked before any value is used, so that a damaged count is named with its key instead of
# printed ("None writers").
COUNT = (int, {"ge": 1, "le": MAX_COUNT})
VARIANT = report.schema("Variant", {"experiment": (str, {"choices": EXPERIMENTS}),
                                    "seed": (int, {"ge": 0, "le": SEED_MAX}),
                                    "epochs": COUNT, "latent_dim": (int, {"ge": 1, "le": MAX_SIZE}),
                                    **dict.fromkeys(("n_writers", "n_train", "n_test"), COUNT)})

OURS_TARGET = "a target of ours, not the article's"  # a claim's tag where the article makes none


def _holds(ok: bool | None) -> str:
    return report.verdict_words(ok, "not testable (experiment not run)", bold=True)


def _exp1_figure(variant_dir: Path, out_path: Path, seed: int) -> str:
    """The article's Experiment I figure: test latents (x = A, y = B) by digit, above the decoded grid drawn on
    the same coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat, grid = read_npz(variant_dir / "latents.npz"), read_npz(variant_dir / "grid.npz")
    a, b, digit = lat["a"][:, 0], lat["b"][:, 0], lat["digit"]
    pick = np.random.default_rng(seed).permutation(len(a))[:5000]
    a_t, b_t, images = grid["a_ticks"], grid["b_ticks"], grid["images"]
    da = (a_t[-1] - a_t[0]) / max(len(a_t) - 1, 1)
    db = (b_t[-1] - b_t[0]) / max(len(b_t) - 1, 1)
    extent = (a_t[0] - da / 2, a_t[-1] + da / 2, b_t[0] - db / 2, b_t[-1] + db / 2)
    fig, axes = plt.subplots(2, 1, figsize=(6.0, 11.0))
    sc = axes[0].scatter(a[pick], b[pick], c=digit[pick], cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.7)
    fig.colorbar(sc, ax=axes[0], ticks=range(10), label="digit")
    axes[0].set(xlim=extent[:2], ylim=extent[2:], xlabel="latent A", ylabel="latent B",
                title="test latents (μ) coloured by digit")
    n_rows, n_cols = images.shape[:2]
    mosaic = images.transpose(0, 2, 1, 3).reshape(n_rows * 28, n_cols * 28)
    axes[1].imshow(mosaic, cmap="gray", extent=extent, aspect="auto", vmin=0, vmax=1)
    axes[1].set(xlabel="latent A", ylabel="latent B", title="decoded over the same (A, B) grid")
    return report.save_figure(fig, out_path)


def _tsne_figure(variant_dir: Path, out_path: Path) -> tuple[str, dict[str, str]]:
    """The 2 × 2 t-SNE figure (A, B × coloured by digit, writer) and {latent: why its panels were skipped}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = read_npz(variant_dir / "tsne.npz")
    writer_codes = np.unique(t["writer"], return_inverse=True)[1]
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.5))
    skipped = {}
    for i, latent in enumerate(("a", "b")):
        if latent not in t:  # degenerate latents: evaluate.py skipped the embedding and said why
            skipped[latent.upper()] = str(t.get(f"{latent}_skipped", "no embedding"))
            for ax in axes[i]:
                ax.text(0.5, 0.5, f"t-SNE of latent {latent.upper()} skipped:\n{skipped[latent.upper()]}",
                        ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
                ax.set(xticks=[], yticks=[])
            continue
        xy = t[latent]
        digits = axes[i, 0].scatter(xy[:, 0], xy[:, 1], c=t["digit"], cmap="tab10", vmin=-0.5, vmax=9.5, s=5)
        fig.colorbar(digits, ax=axes[i, 0], ticks=range(10), label="digit", fraction=0.046, pad=0.02)
        axes[i, 1].scatter(xy[:, 0], xy[:, 1], c=writer_codes, cmap="nipy_spectral", s=5)  # (100 writers: no key)
        for j, by in enumerate(("digit", "writer")):
            axes[i, j].set(title=f"t-SNE of latent {latent.upper()}, coloured by {by}", xticks=[], yticks=[])
    return report.save_figure(fig, out_path), skipped


def summarize(cfg: Config, params: dict):
    keys = {e: [variant_key(e, s) for s in cfg.seeds] for e in cfg.experiments}
    records = report.gather(PAPER, {  # each file the run of its key and params (not a copy of another run's)
        variant_key(e, s): {"experiment": e, "seed": s, "epochs": getattr(cfg, e).epochs,
                            "latent_dim": getattr(cfg, e).latent_dim, "dataset": cfg.dataset}
        for e in cfg.experiments for s in cfg.seeds}, schema=VARIANT)
    summary_dir = Path("plots") / PAPER / "summary"
    variants_dir = Path("plots") / PAPER / "variants"
    real = cfg.dataset == "emnist_writers"

    def stat(experiment: str, metric: str):
        """mean ± std over seeds; None when any seed's value is missing (each noted in the report)."""
        stats = records.stats(keys[experiment], metric)
        return None if stats.get("missing") else stats


    summary: dict = {"dataset": cfg.dataset}
    claims: dict[str, bool | None] = {}
    close: dict[str, bool] = {}  # claims whose deciding difference the seeds' spread covers
    details: dict[str, str] = {}  # what a claim that does not hold failed on
    first = cfg.seeds[0]
    md = [f"Source 001 (Qiita, takuya29/wvae). Data: **{cfg.dataset}**; {len(cfg.seeds)} seed(s); hidden "
          f"{cfg.hidden}, C1 = {cfg.c1:g}, C2 = {cfg.c2:g}, batch {cfg.batch_size}, Adam {cfg.lr:g}.", ""]
    if not real:
        md += [f"Embedded **{cfg.dataset}** (not comparable with the article's EMNIST numbers): the verdicts judge "
               "the article's qualitative claims.", ""]

    if "exp1" in cfg.experiments:
        e1 = {m: stat("exp1", m) for m in ("digit_accuracy", "probe_digit_from_a", "probe_digit_from_b",
                                           "slant_r2_from_a", "slant_r2_from_b", "digit_chance",
                                           *(f"{s}_{t}" for s in SPLITS for t in TERMS))}
        summary["exp1"] = e1
        for claim, (a, b) in {"exp1_a_separates_digits": ("digit_accuracy", "probe_digit_from_b"),
                              "exp1_b_holds_more_slant_than_a": ("slant_r2_from_b", "slant_r2_from_a")}.items():
            claims[claim], close[claim] = report.greater_with_spread(e1[a], e1[b])
        figure = _exp1_figure(variants_dir / variant_key("exp1", first), summary_dir / "exp1_latents.png", first)
        rows = [["digit accuracy (%)", f"classifier on A: {report.fmt(e1['digit_accuracy'])}",
                 f"linear probe on B: {report.fmt(e1['probe_digit_from_b'])}",
                 f"chance (train majority): {report.fmt(e1['digit_chance'])}"],
                ["slant R² (test)", f"from A: {report.fmt(e1['slant_r2_from_a'], 3)}",
                 f"from B: {report.fmt(e1['slant_r2_from_b'], 3)}", ""]]
        loss_rows = []
        for split in SPLITS:
            for t in ("loss", "rec", "clf"):
                ours = e1[f"{split}_{t}"]
                ref = NOTEBOOK_EXP1[split][t]
                delta = f"{100 * (ours['mean'] - ref) / ref:+.1f} %" if ours else "–"
                loss_rows.append([split, t, report.fmt(ours, 2), ref, *([delta] if real else [])])
        md += [f"### Experiment I: {_dims(cfg, 'exp1')} A and B ({cfg.exp1.epochs} epochs)", "",
               "The article shows this experiment as a figure (the latents, decoded images), no numbers: its claims "
               "are judged below on these measures of ours.", "", report.md_table(["measure", "A", "B", ""], rows), "",
               "Losses per image (test: k = " f"{cfg.eval_samples} samples) beside the notebook's model1 at epoch "
               "50 (takuya29/wvae, EMNIST, not the article)" + ("" if real else f"; no Δ: {cfg.dataset} is not "
                                                                 "EMNIST, the numbers are not comparable") + ":", "",
               report.md_table(["split", "term", "ours", "notebook", *(["Δ"] if real else [])], loss_rows), "",
               f"![Experiment I]({figure})", ""]

    if "exp2" in cfg.experiments:
        head = records[keys["exp2"][0]]
        e2: dict = {"digit_accuracy": stat("exp2", "digit_accuracy"), "n_writers": head["n_writers"],
                    "n_train": head["n_train"], "n_test": head["n_test"]}
        e2["probes"] = {f"{target}_from_{lat}": stat("exp2", f"probe_{target}_from_{lat}")
                        for target in ("writer", "digit") for lat in ("a", "b")}
        e2["probes"].update({"writer_chance": stat("exp2", "writer_chance"),
                             "digit_chance": stat("exp2", "digit_chance")})
        e2["slant_r2"] = {lat: stat("exp2", f"slant_r2_from_{lat}") for lat in ("a", "b")}
        e2["clustering"] = {split: {row: {m: stat("exp2", f"{split}_{row}_{m}") for m in MEASURES} for row in ROWS}
                            for split in cfg.clustering.splits}
        summary["exp2"] = e2
        acc = e2["digit_accuracy"]
        claims["exp2_digit_accuracy_from_a_ge_90"] = None if acc is None else acc["mean"] >= DIGIT_ACCURACY_CLAIM
        close["exp2_digit_accuracy_from_a_ge_90"] = report.within_spread(acc, DIGIT_ACCURACY_CLAIM)
        claims["exp2_writer_probe_b_gt_a"], close["exp2_writer_probe_b_gt_a"] = report.greater_with_spread(
            e2["probes"]["writer_from_b"], e2["probes"]["writer_from_a"])
        primary = "test" if "test" in cfg.clustering.splits else cfg.clustering.splits[0]
        cl = e2["clustering"][primary]
        claims["exp2_kmeans_b_beats_pixels_ami"], close["exp2_kmeans_b_beats_pixels_ami"] = report.greater_with_spread(
            cl["kmeans_b"]["ami_max"], cl["kmeans_pixels"]["ami_max"])
        pairs = [(m, r) for m in ("purity", "ari", "ami_max") for r in ARTICLE_ROWS if r != "kmeans_b"]
        checks = [report.greater_with_spread(cl["kmeans_b"][m], cl[r][m]) for m, r in pairs]
        wins = [won for won, _ in checks]
        claims["exp2_kmeans_b_best_on_all_measures"] = None if None in wins else all(wins)
        close["exp2_kmeans_b_best_on_all_measures"] = report.verdict_within_spread(checks)
        details["exp2_kmeans_b_best_on_all_measures"] = "; ".join(  # where row 3 is not the best
            f"{m}: {ROWS[r][0]} on {FEATURE_LABELS[ROWS[r][1]]} {cl[r][m]['mean']:.4f} "
            f"≥ {cl['kmeans_b'][m]['mean']:.4f}"
            for (m, r), won in zip(pairs, wins, strict=True) if won is False)
        verdicts = {}
        if real:
            verdicts = {row: {m: "–" if cl[row][m] is None else
                              report.band_verdict(cl[row][m], (ref, 0.0), lower_is_better=False)
                              for m, ref in ARTICLE_TABLE[row].items()} for row in ARTICLE_ROWS}
            summary["verdicts_vs_article"] = verdicts
        md += [f"### Experiment II: {_dims(cfg, 'exp2')} A and B, {e2['n_writers']} writers "
               f"({e2['n_train']} train / "
               f"{e2['n_test']} test images; article: 100 writers, 8,670 / 1,030), {cfg.exp2.epochs} epochs", "",
               f"Digit accuracy of the classifier on A (test): {report.fmt(e2['digit_accuracy'])} %.", ""]
        for split in cfg.clustering.splits:
            table_rows = []
            for i, row in enumerate(ROWS, 1):
                method, feat = ROWS[row]
                dim = "784" if feat == "pixels" else str(cfg.exp2.latent_dim)
                label = f"{FEATURE_LABELS[feat]}" + ("" if feat == "pixels" else f" ({dim})")
                ours = e2["clustering"][split][row]
                cells = []
                for m in ("purity", "ari", "ami_max"):
                    cell = report.fmt(ours[m], 4)
                    if split == primary and row in verdicts:
                        cell += f" ({verdicts[row][m]})"
                    cells.append(cell)
                article = ARTICLE_TABLE.get(row)
                article_cells = [f"{article[m]:.4f}" for m in ("purity", "ari", "ami_max")] if article else ["–"] * 3
                number = str(i) if row in ARTICLE_ROWS else "control"
                table_rows.append([number, method, label, *cells, report.fmt(ours["ami_arithmetic"], 4),
                                   *(article_cells if split == primary else [])])
            # the article's one table (its split unstated) stands beside the primary split's only
            headers = ["#", "model", "features", "Purity", "ARI", "AMI (max)", "AMI (arithmetic)",
                       *(["article Purity", "article ARI", "article AMI"] if split == primary else [])]
            md += [f"Writer clustering, K = {e2['n_writers']}, **{split}** split"
                   + (" (primary; the article does not say which split it clustered: its columns stand here)"
                      if split == primary else f" (the article's columns stand in the {primary} split's table)")
                   + ":", "", report.md_table(headers, table_rows), ""]
        if real:
            md += ["Band verdicts: ours (mean ± std over seeds) against the article's single run, tolerance "
                   "2 × our std.", ""]
        p = e2["probes"]
        md += ["Linear probes (logistic regression on standardised μ, fit on train, test accuracy %):", "",
               report.md_table(["target", "from A", "from B", "chance (train majority)"],
                               [["writer", report.fmt(p["writer_from_a"]), report.fmt(p["writer_from_b"]),
                                 report.fmt(p["writer_chance"])],
                                ["digit", report.fmt(p["digit_from_a"]), report.fmt(p["digit_from_b"]),
                                 report.fmt(p["digit_chance"])]]), "",
               # Exp I's slant claim, measured here too: with 10-D latents A may carry the style as well
               f"Slant (R² of a linear fit from μ, test): from A {report.fmt(e2['slant_r2']['a'], 3)}, from B "
               f"{report.fmt(e2['slant_r2']['b'], 3)}" + ("; A holds about as much of it as B"
                                                           if _slant_in_a_about_as_in_b(e2["slant_r2"]) else "") + ".",
               ""]
        figure, skipped = _tsne_figure(variants_dir / variant_key("exp2", first), summary_dir / "exp2_tsne.png")
        md += [f"![t-SNE of A and B]({figure})", ""]
        md += [f"t-SNE of latent {latent} (`{variant_key('exp2', first)}`) skipped: {why}." for latent, why
               in skipped.items()] + ([""] if skipped else [])

    claim_text = {
        "exp1_a_separates_digits": f"Exp I: A is discriminative for the digit (classifier accuracy on "
                                   f"{cfg.exp1.latent_dim}-D A > a linear probe on {cfg.exp1.latent_dim}-D B)",
        "exp1_b_holds_more_slant_than_a": "Exp I: B holds the slant (R² of the slant from B > from A)",
        # the article claims only row 3's lead (below) and hedges on writers (B's t-SNE does not split by writer):
        # these three are targets of ours, named so as censor's is
        "exp2_digit_accuracy_from_a_ge_90": f"Exp II: digit accuracy from A ≥ {DIGIT_ACCURACY_CLAIM:g} % "
                                            f"({OURS_TARGET})",
        "exp2_writer_probe_b_gt_a": f"Exp II: writer probe accuracy from B > from A ({OURS_TARGET})",
        "exp2_kmeans_b_beats_pixels_ami": f"Exp II: K-Means on B beats K-Means on raw pixels on AMI (max) "
                                          f"({OURS_TARGET})",
        "exp2_kmeans_b_best_on_all_measures": "Exp II (the article's claim): K-Means on B (row 3) is the best of "
                                              "rows 1–4 on Purity, ARI and AMI",
    }
    md += ["Claims:", ""] + [f"- {claim_text[c]}: {_holds(ok)}" + report.spread_mark(close[c])
                             + (f" ({details[c]})" if details.get(c) else "") for c, ok in claims.items()] + [""]
    summary["claims"] = claims
    summary["claims_within_spread"] = close  # (set beside every claim)
    summary["run"] = report.run_summary(records.values())
    return report.Section(PAPER, "split_vae — VAE with two bottlenecks, digit vs writer (source 001)",
                          "\n".join(md), summary, claim_text)


def _slant_in_a_about_as_in_b(r2: dict[str, dict | None], margin: float = 0.05) -> bool:
    """Whether the mean slant R² from A reaches within `margin` (a twentieth of the slant's variance) of B's, or
    above it; False when either is missing."""
    a, b = (finite((r2[lat] or {}).get("mean")) for lat in ("a", "b"))
    return a is not None and b is not None and a >= b - margin


def _dims(cfg: Config, experiment: str) -> str:
    """"10-D": the size of A and of B each in `experiment`, with the article's where a variant changed it."""
    ours, article = getattr(cfg, experiment).latent_dim, ARTICLE_LATENT_DIM[experiment]
    return f"{ours}-D" + (f" (the article: {article}-D)" if ours != article else "")
