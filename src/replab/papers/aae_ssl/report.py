"""aae_ssl report: Table 1 (test error vs Nl, ours beside the paper), Fig. 3 (latent correlations), Fig. 4 (style
grid), and the claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replab import report
from replab.io import read_npz
from replab.papers.aae_ssl.model import (
    MAKHZANI_NL100,
    MODEL_LABELS,
    MODELS,
    N_CLASSES,
    PAPER_TABLE1,
    Config,
    variant_key,
)
from replab.params import MAX_COUNT, SEED_MAX

# What the report takes from each metrics file evaluate.py writes besides its measures (those are read through
# Records.value), checked before it is compared with the file's key and params.yaml: a damaged value named as such.
VARIANT = report.schema("Variant", {"model": (str, {"choices": MODELS}), "n_labeled": (int, {"ge": 1, "le": MAX_COUNT}),
                                    "seed": (int, {"ge": 0, "le": SEED_MAX}), "dataset": (str, {"nonempty": True})})

CLAIM_TEXTS = {  # summary["claims"] in words, as Table 1's and Fig. 3's paragraphs state them
    "aae_yz_beats_baselines": "AAE(y,z) has a lower test error than the baselines trained (AE, AAE(z)) at every Nl "
                              "(Table 1)",
    "lead_larger_at_smaller_nl": "AAE(y,z)'s lead over the better baseline is larger at the smallest Nl than at the "
                                 "largest (Table 1)",
    "fig3_aae_yz_more_near_zero_than_ae": "AAE(y,z)'s latent correlation matrix has more components near 0 than the "
                                          "AE's (Fig. 3)",
    "fig3_yz_block_nearer_zero_than_ae": "AAE(y,z)'s y–z block of that matrix is nearer 0 than the AE's, whose darker "
                                         "right and bottom edges show y and z not independent (Fig. 3)",
}


def _close_call_list(close_calls: list[str], failures: list[str]) -> list[str]:
    """The comparisons within the seeds' spread, those already quoted as failures named by reference (not twice)."""
    repeated = [c for c in close_calls if c in failures]
    if not repeated:
        return close_calls
    if len(repeated) == len(failures):
        named = "the failing comparison above" if len(failures) == 1 else "every failing comparison above"
    else:
        named = "of the failing comparisons above, " + "; ".join(repeated)
    return [named, *(c for c in close_calls if c not in failures)]


def summarize(cfg: Config, params: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = report.gather("aae_ssl", {  # each file the run of its key (not a copy of another run's)
        variant_key(m, nl, s): {"model": m, "n_labeled": nl, "seed": s, "dataset": cfg.dataset}
        for m in cfg.models for nl in cfg.n_labeled for s in cfg.seeds}, schema=VARIANT)
    real = cfg.dataset == "mnist"
    summary_dir = Path("plots/aae_ssl/summary")

    def stat(model, nl, metric="test_error"):  # a missing (NaN) value is left out, shown and noted
        return records.stats([variant_key(model, nl, s) for s in cfg.seeds], metric)

    ours = {nl: {m: stat(m, nl) for m in cfg.models} for nl in cfg.n_labeled}

    # Table 1
    rows, verdicts = [], {}
    for nl in cfg.n_labeled:
        row = [nl]
        for m in cfg.models:
            paper = PAPER_TABLE1.get(nl, {}).get(m)
            verdict = f" ({report.band_verdict(ours[nl][m], paper)})" if real and paper else ""
            row += [report.fmt(paper), report.fmt(ours[nl][m]) + verdict]
        if {"ae", "aae_yz"} <= set(cfg.models):
            # AAE(y,z) < b; None (not testable) when either test error is missing
            beats = {b: report.greater(ours[nl][b], ours[nl]["aae_yz"]) for b in ("ae", "aae_z") if b in cfg.models}
            verdicts[str(nl)] = beats
            row.append(", ".join(f"{_SIGN[ok]} {MODEL_LABELS[b]}" for b, ok in beats.items()))
        rows.append(row)
    headers = ["Nl"] + [f"{MODEL_LABELS[m]} {who}" for m in cfg.models for who in ("paper", "ours")]
    headers.append("AAE(y,z) vs baselines")
    claim_holds = report.all_hold(ok for v in verdicts.values() for ok in v.values())
    def against(nl: int, baselines: list[str]) -> list[str]:  # one phrase per Nl, its baselines joined
        return [f"at Nl = {nl} AAE(y,z) {report.fmt(ours[nl]['aae_yz'])} vs " + " and ".join(
            f"{MODEL_LABELS[b]} {report.fmt(ours[nl][b])}" for b in baselines)] if baselines else []
    close_calls = [c for nl in cfg.n_labeled for c in against(nl, [
        b for b in verdicts.get(str(nl), {}) if report.within_spread(ours[nl]["aae_yz"], ours[nl][b])])]
    failures = [c for nl in cfg.n_labeled for c in against(nl, [
        b for b, ok in verdicts.get(str(nl), {}).items() if ok is False])]
    smallest = min(cfg.n_labeled)
    yz_beats_ae_smallest = verdicts.get(str(smallest), {}).get("ae")
    margins = baseline_margins(ours, cfg.models)
    trend_holds = margin_shrinks(margins)
    trend_close = trend_within_spread(ours, margins)
    beats_close = table1_within_spread(ours, verdicts)
    close_list = "; ".join(_close_call_list(close_calls, failures))

    # Test error vs Nl, ours beside the paper
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, m in enumerate(cfg.models):
        color = f"C{i}"
        ax.errorbar(cfg.n_labeled, report.plot_values(ours[nl][m]["mean"] for nl in cfg.n_labeled),
                    yerr=report.plot_values(ours[nl][m]["std"] for nl in cfg.n_labeled), marker="o", color=color,
                    capsize=3,
                    label=f"{MODEL_LABELS[m]} (ours, {cfg.dataset})")
        paper_nl = sorted(PAPER_TABLE1)
        ax.plot(paper_nl, [PAPER_TABLE1[nl][m][0] for nl in paper_nl], ls="--", color=color, alpha=0.6,
                label=f"{MODEL_LABELS[m]} (paper, MNIST)")
    ax.set(xscale="log", xlabel="labeled images Nl", ylabel="test error (%)", title="Table 1: test error vs Nl")
    ax.legend(fontsize=7)
    error_png = report.save_figure(fig, summary_dir / "table1_test_error.png")

    # Fig. 3: latent correlation heatmaps, AE vs AAE(y,z), smallest Nl, first seed
    corr_models = [m for m in ("ae", "aae_yz") if m in cfg.models]
    fig, axes = plt.subplots(1, len(corr_models), figsize=(4.8 * len(corr_models), 4.2), squeeze=False)
    for ax, m in zip(axes[0], corr_models):
        corr = read_npz(Path("plots/aae_ssl/variants") / variant_key(m, smallest, cfg.seeds[0]) / "latent_corr.npz")
        image = ax.imshow(corr["corr"], cmap="RdBu_r", vmin=-1, vmax=1)
        n_z = corr["corr"].shape[0] - N_CLASSES
        ax.axhline(n_z - 0.5, color="k", lw=0.6), ax.axvline(n_z - 0.5, color="k", lw=0.6)
        ax.set_title(f"{MODEL_LABELS[m]} (Nl={smallest}, seed {cfg.seeds[0]}): z1..z{n_z}, y0..y9", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    corr_png = report.save_figure(fig, summary_dir / "fig3_latent_correlation.png")
    # the seed's measure is a count ("more components near 0"): the fraction of off-diagonal entries with
    # |corr| < corr_threshold, from every seed's matrix; the mean |corr| and the y–z block stand beside it
    near_zero = {m: report.mean_std([offdiag_fraction_below(
        read_npz(Path("plots/aae_ssl/variants") / variant_key(m, smallest, s) / "latent_corr.npz")["corr"],
        cfg.corr_threshold) for s in cfg.seeds]) for m in cfg.models}
    yz_corr = {m: stat(m, smallest, "latent_corr_yz_mean_abs") for m in cfg.models}
    offdiag_corr = {m: stat(m, smallest, "latent_corr_offdiag_mean_abs") for m in cfg.models}
    fig3_claim = fig3_more_near_zero(near_zero)
    # the paper's second reading of Fig. 3: the AE's y–z correlations are the stronger (mean |corr| of that block)
    yz_claim = report.greater(yz_corr["ae"], yz_corr["aae_yz"]) if {"ae", "aae_yz"} <= set(yz_corr) else None
    yz_close = yz_claim is not None and report.within_spread(yz_corr["aae_yz"], yz_corr["ae"])

    # Fig. 4: style grids of the 2-D z model
    grids = read_npz(Path("plots/aae_ssl/variants/style/style_grid.npz"))
    fig, axes = plt.subplots(1, len(cfg.style.digits), figsize=(4.5 * len(cfg.style.digits), 4.6), squeeze=False)
    for ax, d in zip(axes[0], cfg.style.digits):
        g = grids[f"digit_{d}"]
        n = g.shape[0]
        ax.imshow(g.transpose(0, 2, 1, 3).reshape(n * 28, n * 28), cmap="gray")
        ax.set(title=f"y = one-hot({d}); z1, z2 ∈ [−{cfg.style.grid_range:g}, {cfg.style.grid_range:g}]",
               xticks=[], yticks=[])
    style_png = report.save_figure(fig, summary_dir / "fig4_style_grid.png")
    by_y, by_z = style_effects([grids[f"digit_{d}"] for d in cfg.style.digits])

    if real:
        data_note = "Real MNIST: each cell reads paper | ours (mean ± std over seeds) and the band verdict."
    else:
        from replab.data.registry import SOURCES

        kind = "Embedded" if SOURCES[cfg.dataset].kind == "embedded" else "Real"  # e.g. fashion_mnist: real, not MNIST
        data_note = (f"{kind} **{cfg.dataset}** (not comparable with the paper's MNIST numbers): the verdict is the "
                     "paper's claim that AAE(y,z) has a lower test error than both baselines at every Nl.")
    claim_text = claim_words(claim_holds)
    md = "\n".join([
        f"Source 000. Data: {cfg.dataset}; {len(cfg.seeds)} seed(s); {cfg.iterations} iterations; hidden "
        f"{cfg.hidden}, z {cfg.z_dim}; Eq. 3's λ_nll, λ_rec, λ_reg = {cfg.lambda_nll:g}, {cfg.lambda_rec:g}, "
        f"{cfg.lambda_reg:g}.",
        "",
        "### Table 1: test error (%)",
        "",
        data_note,
        "",
        report.md_table(headers, rows),
        "",
        f"Claim \"AAE(y,z) beats AE and AAE(z) at every Nl\": {claim_text}{report.spread_mark(beats_close)}"
        + (f", AAE(y,z) is not below: {'; '.join(failures)}" if failures else "") + "."
        + (f" Within the seeds' spread, so that more seeds would be needed to settle it and a float-rounding change "
           f"of training can reverse it (the means differ by less than the larger standard deviation): "
           f"{close_list}." if beats_close else f" Close, but the failures above settle it: {close_list}."
           if close_calls else "")
        + f" At the smallest Nl ({smallest}) AAE(y,z) {_BELOW[yz_beats_ae_smallest]} AE "
        f"({report.fmt(ours[smallest].get('aae_yz'))} vs {report.fmt(ours[smallest].get('ae'))}). "
        f"Makhzani et al.'s AAE reaches {MAKHZANI_NL100} % at Nl = 100 on MNIST (anchor beyond the paper).",
        "",
        f"Claim \"… by more at smaller Nl\" (AAE(y,z)'s lead over the better baseline, in points, larger at "
        f"the smallest Nl than at the largest): {claim_words(trend_holds)}"
        + (f" ({', '.join(f'Nl = {nl}: {report.num(m)}' for nl, m in margins.items())}; paper "
           f"{', '.join(f'{nl}: {m:.2f}' for nl, m in baseline_margins(PAPER_MEANS, cfg.models).items())})"
           if margins else "")
        + (" — within the seeds' spread: the two leads differ by less than the largest standard deviation of the "
           "test errors they are made of" if trend_close else "") + "."
        + lead_caveat(margins),
        "",
        f"![test error vs Nl]({error_png})",
        "",
        "### Fig. 3: correlation of the latent variables (test set)",
        "",
        "The paper's claim (it shows the two matrices, no numbers): the AAE(y,z) matrix has more components near 0 "
        "than the AE's (a count). Ours at "
        f"Nl = {smallest}, test split (neither is stated in the source), mean ± std over seeds: the fraction of "
        f"off-diagonal entries with \\|corr\\| < {cfg.corr_threshold:g} (the claim's measure), and beside it "
        f"the mean \\|corr\\| off the diagonal and in the y–z block (the heat maps below: seed {cfg.seeds[0]}):",
        "",
        report.md_table(["model", f"fraction \\|corr\\| < {cfg.corr_threshold:g}", "mean \\|corr\\| off-diagonal",
                         "mean \\|corr\\| y–z block"],
                        [[MODEL_LABELS[m], report.fmt(near_zero[m], 3), report.fmt(offdiag_corr[m], 3),
                          report.fmt(yz_corr[m], 3)] for m in cfg.models]),
        "",
        f"AAE(y,z) has more components near 0 than AE: {claim_words(fig3_claim)}."
        + fig3_caveats(near_zero, {"off the diagonal": offdiag_corr}),
        "",
        "The paper also reads the AE's darker right and bottom edges (its y–z block) as y and z not independent "
        f"there, unlike in AAE(y,z). AAE(y,z)'s y–z block nearer 0 than the AE's: {claim_words(yz_claim)}"
        f"{report.spread_mark(yz_close)} (mean \\|corr\\| AAE(y,z) {report.fmt(yz_corr.get('aae_yz'), 3)}, AE "
        f"{report.fmt(yz_corr.get('ae'), 3)}).",
        "",
        f"![latent correlation]({corr_png})",
        "",
        f"### Fig. 4: style grid (AAE(y,z) with {cfg.style.z_dim}-D z, Nl = {cfg.style.n_labeled})",
        "",
        "Paper: with the digit (y) fixed, the typeface changes as z moves, and the same z gives a similar change "
        "for both digits (e.g. both slanted at the lower-right z). "
        f"Test error of this model: {report.num(style_model_test_error(cfg))} %. "
        + style_words(by_y, by_z, cfg.style.digits),
        "",
        f"![style grid]({style_png})",
    ])
    summary = {
        "test_error": {str(nl): ours[nl] for nl in cfg.n_labeled},
        "aae_yz_lead_over_baselines": {str(nl): m for nl, m in margins.items()},
        "aae_yz_beats_ae_at_smallest_nl": yz_beats_ae_smallest,
        "latent_corr_offdiag_fraction_near_zero": near_zero,
        "corr_threshold": cfg.corr_threshold,
        "fig4_pixel_change": {"by_y": by_y, "by_z": by_z},
        "latent_corr_yz_mean_abs": yz_corr,
        "latent_corr_offdiag_mean_abs": offdiag_corr,
        "claims": {"aae_yz_beats_baselines": claim_holds, "lead_larger_at_smaller_nl": trend_holds,
                   "fig3_aae_yz_more_near_zero_than_ae": fig3_claim,
                   "fig3_yz_block_nearer_zero_than_ae": yz_claim},  # True / False / None (not testable)
        "claims_within_spread": {"aae_yz_beats_baselines": beats_close,
                                 "lead_larger_at_smaller_nl": trend_close,
                                 "fig3_aae_yz_more_near_zero_than_ae": report.within_spread(near_zero.get("aae_yz"),
                                                                                            near_zero.get("ae")),
                                 "fig3_yz_block_nearer_zero_than_ae": yz_close},
        "dataset": cfg.dataset,
        "run": report.run_summary(records.values()),
    }
    return report.Section("aae_ssl", "aae_ssl — semi-supervised AAE with content/style split (source 000)", md, summary,
                          CLAIM_TEXTS)


def lead_caveat(margins: dict[int, float | None]) -> str:
    """What the "larger lead at smaller Nl" verdict does not say (a sentence, or ""): the Nl where AAE(y,z) trails
    the better baseline (a lead larger than a deficit is no trend of leads), and how few of Table 1's Nl were trained
    (the paper's trend runs over four)."""
    trails = [nl for nl, m in margins.items() if m is not None and m < 0]
    notes = [f"at Nl = {', '.join(map(str, trails))} AAE(y,z) trails the better baseline, so the comparison is of a "
             "lead with a deficit"] if trails else []
    if 0 < len(margins) < len(PAPER_MEANS):
        notes.append(f"{len(margins)} of the paper's {len(PAPER_MEANS)} Nl trained")
    return f" Note: {'; '.join(notes)}." if notes else ""


def baseline_margins(means: dict, models: list[str]) -> dict[int, float | None]:
    """{Nl: the better baseline's test error − AAE(y,z)'s} in points (positive = AAE(y,z) leads), from
    {Nl: {model: mean_std dict or a mean}}; {} without AAE(y,z) or a baseline, None where a mean is missing."""
    baselines = [b for b in ("ae", "aae_z") if b in models]
    if "aae_yz" not in models or not baselines:
        return {}
    out = {}
    for nl in sorted(means):
        mean = {m: report.finite(v["mean"] if isinstance(v, dict) else v) for m, v in means[nl].items()}
        errors = [mean.get(b) for b in baselines]
        out[nl] = (None if None in errors or mean.get("aae_yz") is None
                   else float(min(errors) - mean["aae_yz"]))
    return out


def margin_shrinks(margins: dict[int, float | None]) -> bool | None:
    """Table 1's "by more at smaller Nl": the lead at the smallest Nl above that at the largest; None (not
    testable) with fewer than two Nl or a missing value at either end."""
    if len(margins) < 2:
        return None
    first, last = margins[min(margins)], margins[max(margins)]
    return None if first is None or last is None else first > last


def table1_within_spread(ours: dict, verdicts: dict[str, dict[str, bool | None]]) -> bool:
    """Whether the Table 1 claim's verdict could turn within the seeds' spread (`report.verdict_within_spread` over
    AAE(y,z)'s test error against each baseline's). `verdicts`: {str(Nl): {baseline: AAE(y,z) below}}."""
    return report.verdict_within_spread((ok, report.within_spread(ours[int(nl)]["aae_yz"], ours[int(nl)][b]))
                                        for nl, v in verdicts.items() for b, ok in v.items())


def style_effects(grids: list[np.ndarray]) -> tuple[float | None, float | None]:
    """How much y and z move Fig. 4's images (`grids`: one [n, n, 28, 28] grid of decoded images in 0 … 1 per digit
    y, over the same z points): (the mean |difference| per pixel between two digits' images at the same z, over
    every pair of digits; the mean |difference| per pixel between an image and its grid's mean image, over every
    digit). (None, …) with one digit."""
    stack = np.stack([np.asarray(g, dtype=np.float64) for g in grids])
    flat = stack.reshape(len(grids), -1, stack.shape[-2] * stack.shape[-1])
    by_z = float(np.abs(flat - flat.mean(axis=1, keepdims=True)).mean())
    pairs = [np.abs(flat[i] - flat[j]).mean() for i in range(len(grids)) for j in range(i + 1, len(grids))]
    return (float(np.mean(pairs)) if pairs else None), by_z


def style_words(by_y: float | None, by_z: float | None, digits) -> str:
    """Fig. 4's measured sentence: how much y and z change the images (`style_effects`), and, where y moves them by
    less than a quarter of what z does, that the figure does not show the paper's split (y sets the digit)."""
    if by_y is None or by_z is None:
        return ""
    split = (": y barely changes the digit at this scale, so this figure does not show the paper's split of digit "
             "(y) and style (z)") if by_y < 0.25 * by_z else ""
    return (f"Measured: changing y ({' vs '.join(map(str, digits))}) at the same z changes an image by {by_y:.3f} per "
            f"pixel on average, against {by_z:.3f} between an image and the mean of its y's grid over z (pixels in "
            f"0 … 1){split}.")


def trend_within_spread(ours: dict, margins: dict[int, float | None]) -> bool:
    """Whether `margin_shrinks`' verdict rests on a difference the seeds' spread covers: the leads at the smallest
    and the largest Nl (`margins`) differ by less than the largest standard deviation of the test errors they are
    made of (`ours`: {Nl: {model: stats}}): AAE(y,z)'s and the better baseline's at each end; False when one of
    them has one seed or a missing value."""
    if margin_shrinks(margins) is None:
        return False
    stats = []
    for nl in (min(margins), max(margins)):
        better = min((b for b in ("ae", "aae_z") if b in ours[nl]), key=lambda b: ours[nl][b]["mean"])
        stats += [ours[nl]["aae_yz"], ours[nl][better]]
    stds = [report.finite(v["std"]) if v.get("n", 0) >= 2 else None for v in stats]
    return None not in stds and abs(margins[min(margins)] - margins[max(margins)]) < max(stds)


# Table 1's means, {Nl: {model: test error %}}
PAPER_MEANS = {nl: {m: v[0] for m, v in row.items()} for nl, row in PAPER_TABLE1.items()}

_SIGN = {True: "<", False: "≥", None: "? (missing)"}  # AAE(y,z) vs a baseline in Table 1's last column
_BELOW = {True: "is below", False: "is not below", None: "cannot be compared (missing values) with"}


def offdiag_fraction_below(corr: np.ndarray, threshold: float) -> float:
    """Fraction of the off-diagonal entries of a correlation matrix (n, n) with |corr| < threshold (Fig. 3's
    "components near 0")."""
    return float((np.abs(corr[~np.eye(len(corr), dtype=bool)]) < threshold).mean())


def fig3_more_near_zero(near_zero: dict[str, dict]) -> bool | None:
    """The seed's Fig. 3 claim: AAE(y,z)'s matrix has more components near 0 than AE's (mean over seeds of the
    fraction below the threshold); None when either model is missing."""
    if not {"ae", "aae_yz"} <= set(near_zero):
        return None
    return report.greater(near_zero["aae_yz"], near_zero["ae"])


def fig3_caveats(near_zero: dict[str, dict], mean_abs: dict[str, dict[str, dict | None]]) -> str:
    """What qualifies the Fig. 3 verdict (`fig3_more_near_zero`), as sentences ("" if nothing): a difference of the
    count within the seeds' spread, and each mean |corr| beside it (`mean_abs`: {where: {model: stats}}) that points
    the other way (AAE(y,z)'s correlations weaker where the count says not, or the reverse)."""
    verdict = fig3_more_near_zero(near_zero)
    if verdict is None:
        return ""
    notes = []
    if report.within_spread(near_zero["aae_yz"], near_zero["ae"]):
        notes.append("The count differs within the seeds' spread (by less than the larger standard deviation): more "
                     "seeds would be needed to settle it")
    for where, stats in mean_abs.items():
        weaker = report.greater(stats["ae"], stats["aae_yz"])  # AAE(y,z)'s correlations the weaker: the claim's way
        if weaker is not None and weaker != verdict:
            notes.append(f"The mean \\|corr\\| {where} points the other way (AAE(y,z) "
                         f"{report.fmt(stats['aae_yz'], 3)}, AE {report.fmt(stats['ae'], 3)})")
    return "".join(f" {note}." for note in notes)


def claim_words(holds: bool | None) -> str:
    return report.verdict_words(holds, "not testable (models or values missing)", bold=True)


def style_model_test_error(cfg: Config) -> float | None:
    """The style model's test error (%); None when missing (NaN in its run), then named in the report's note."""
    style = {"model": "aae_yz", "n_labeled": cfg.style.n_labeled, "seed": cfg.style.seed, "dataset": cfg.dataset}
    return report.gather("aae_ssl", {"style": style}, schema=VARIANT).value("style", "test_error")
