"""censor report: Fig. 2 (trade-off with per-method lower envelopes), Fig. 3 (learning curves), the claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replab.papers.censor.model import BASELINE, ENVELOPE_DROPS, METHOD_LABELS, PAPER, PAPER_CLAIMS, Config, variant_key


def lower_envelope(f1: np.ndarray, user: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold t: the lowest user accuracy among points with label F1 ≥ t (NaN if none)."""
    f1, user = np.asarray(f1, float), np.asarray(user, float)
    ok = f1[None, :] >= np.asarray(thresholds, float)[:, None]
    return np.where(ok.any(1), np.where(ok, user[None, :], np.inf).min(1), np.nan)


def _points(records: list[dict], x: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (λ, repetition ≥ 1) point of a method's variants: (label F1, user accuracy)."""
    f1 = [v for r in records for v in r["history"][x][1:]]
    user = [v for r in records for v in r["history"]["user_accuracy"][1:]]
    return np.array(f1), np.array(user)


def summarize(cfg: Config, params: dict):
    from replab import report

    cnn_keys = [variant_key(BASELINE, None, s) for s in cfg.seeds]
    # keys as DVC spells them: from the raw params values (`1` and `1.0` name different matrix items)
    raw_lambdas = params[PAPER]["lambdas"]
    keys = {m: {lam: [variant_key(m, raw, s) for s in cfg.seeds] for lam, raw in zip(cfg.lambdas, raw_lambdas,
                                                                                    strict=True)}
            for m in cfg.methods}
    records = report.gather(PAPER, cnn_keys + [k for m in keys.values() for ks in m.values() for k in ks])
    summary_dir = Path("plots") / PAPER / "summary"
    measures = ("f1_seen", "f1_unseen", "user_accuracy")
    cnn = {m: report.mean_std([records[k][m] for k in cnn_keys]) for m in measures}
    summary: dict = {"dataset": cfg.dataset, "chance_user_accuracy": records[cnn_keys[0]]["chance_user_accuracy"],
                     "cnn": cnn, "final": {}, "envelope": {}}
    rows = [[METHOD_LABELS[BASELINE], "–", *(report.fmt(cnn[m], 1) for m in measures)]]
    for m in cfg.methods:
        summary["final"][m] = {}
        for lam in cfg.lambdas:
            stats = {k: report.mean_std([records[key][k] for key in keys[m][lam]]) for k in measures}
            summary["final"][m][str(lam)] = stats
            rows.append([METHOD_LABELS[m], lam, *(report.fmt(stats[k], 1) for k in measures)])
    data_note = "embedded stand-in: numbers not comparable with the seed" if cfg.dataset == "har" else "USC-HAD"
    ac = cfg.adversarial
    md = [f"Encoder censoring on **{cfg.dataset}** ({data_note}); {len(cfg.seeds)} seed(s), {ac.repetitions} "
          f"repetitions of {ac.adversary_samples:,} (step 1) + {ac.encoder_samples:,} (step 2) samples. "
          "F1 = macro-F1 in %, user accuracy of a "
          f"fresh {'-'.join(map(str, cfg.probe.hidden))} "
          f"MLP on frozen z (chance {summary['chance_user_accuracy']:.1f} %). The seed gives no numbers.", "",
          "After the last repetition, mean ± std over seeds:", "",
          report.md_table(["method", "λ", "F_y^v", "F_y^t", "user accuracy"], rows), ""]

    # Fig. 2 envelopes: thresholds relative to the CNN's F1 (x = F_y^v and x = F_y^t)
    env_rows = []
    for x, label in (("f1_seen", "F_y^v"), ("f1_unseen", "F_y^t")):
        thresholds = cnn[x]["mean"] - np.array(ENVELOPE_DROPS)
        summary["envelope"][x] = {"thresholds": {f"cnn-{d:g}": float(t) for d, t in zip(ENVELOPE_DROPS, thresholds,
                                                                                         strict=True)}}
        for m in cfg.methods:
            f1, user = _points([records[k] for ks in keys[m].values() for k in ks], x)
            env = lower_envelope(f1, user, thresholds)
            summary["envelope"][x][m] = {f"cnn-{d:g}": (None if np.isnan(e) else float(e))
                                         for d, e in zip(ENVELOPE_DROPS, env, strict=True)}
            env_rows.append([label, METHOD_LABELS[m], *("–" if np.isnan(e) else f"{e:.1f}" for e in env)])
    md += ["Lower envelopes (Fig. 2): the lowest user accuracy (%) over every (λ, repetition) point whose label F1 is "
           "at least the CNN's minus the given points:", "",
           report.md_table(["x", "method", *(f"≥ CNN − {d:g}" for d in ENVELOPE_DROPS)], env_rows), ""]

    claims = _claims(cfg, cnn, summary)
    summary["claims"] = claims
    md += ["Claims:", ""] + [f"- {text}: **{claims[c]}**" for c, text in _claim_texts().items() if c in claims] + [""]

    # What happened, in numbers: each method's largest user-accuracy reduction (last repetition, any λ) among the
    # λ whose F_y^v stays within 5 points of the CNN's
    summary["user_reduction_within_5"] = {}
    for m in cfg.methods:
        ok = [cnn["user_accuracy"]["mean"] - v["user_accuracy"]["mean"] for v in summary["final"][m].values()
              if v["f1_seen"]["mean"] >= cnn["f1_seen"]["mean"] - 5]
        summary["user_reduction_within_5"][m] = max(ok) if ok else None
    reductions = ", ".join(f"{METHOD_LABELS[m]} {'–' if r is None else f'{r:.1f}'}"
                           for m, r in summary["user_reduction_within_5"].items())
    md += [f"What happened: the largest user-accuracy reduction (points, vs the CNN's "
           f"{cnn['user_accuracy']['mean']:.1f} %) with F_y^v within 5 points of the CNN's, per method: {reductions} "
           "(– = every λ costs more than 5 F1 points). Step 2 keeps training M on the label loss, so F1 can rise "
           "above the pretrained CNN's.", ""]
    fig2 = _tradeoff_figure(cfg, records, keys, cnn, summary_dir / "fig2_tradeoff.png")
    fig3 = _curves_figure(cfg, records, keys, cnn, summary_dir / "fig3_curves.png")
    md += [f"![Fig. 2 trade-off]({fig2})", "", f"![Fig. 3 learning curves]({fig3})", ""]
    summary["run"] = report.run_summary(records.values())
    return report.Section(PAPER, "censor — AFL vs SCT vs LSM: remove the user, keep the activity (seed 002)",
                          "\n".join(md), summary)


def _claim_texts() -> dict[str, str]:
    return {**PAPER_CLAIMS,
            "sct_minus_20_within_5": "SCT lowers user accuracy by ≥ 20 points vs the CNN at some λ while F_y^v drops "
                                     "≤ 5 points (after the last repetition; the issue's acceptance check)"}


def _claims(cfg: Config, cnn: dict, summary: dict) -> dict[str, str]:
    def verdict(ok: bool) -> str:
        return "holds" if ok else "does not hold"

    claims: dict[str, str] = {}
    env = summary["envelope"]
    if "sct" in cfg.methods and len(cfg.methods) > 1:
        lowest = []
        for key in env["f1_seen"]["sct"]:
            values = {m: env["f1_seen"][m][key] for m in cfg.methods if env["f1_seen"][m][key] is not None}
            if "sct" in values:
                lowest.append(values["sct"] <= min(values.values()))
        claims["sct_envelope_lowest"] = (f"{verdict(all(lowest))} (SCT lowest at {sum(lowest)} of {len(lowest)} "
                                         "thresholds)"
                                         if lowest else "no SCT point within the thresholds")
    final = summary["final"]
    if "sct" in final:
        best_fyt = max(v["f1_unseen"]["mean"] for v in final["sct"].values())
        claims["sct_keeps_fyt"] = (f"{verdict(best_fyt >= cnn['f1_unseen']['mean'] - 1.0)} (best SCT F_y^t "
                                   f"{best_fyt:.1f} vs CNN {cnn['f1_unseen']['mean']:.1f}, tolerance 1 point)")
        hits = [lam for lam, v in final["sct"].items()
                if v["user_accuracy"]["mean"] <= cnn["user_accuracy"]["mean"] - 20
                and v["f1_seen"]["mean"] >= cnn["f1_seen"]["mean"] - 5]
        claims["sct_minus_20_within_5"] = f"{verdict(bool(hits))}" + (f" (λ = {', '.join(hits)})" if hits else "")
    if {"sct", "lsm"} <= set(final):
        gap = _mean_gap(final["lsm"], final["sct"], "f1_seen")
        claims["lsm_like_sct_on_fyv"] = f"{verdict(gap <= 2.0)} (mean |LSM − SCT| F_y^v over λ: {gap:.1f} points)"
    afl = [m for m in ("afl_mlp", "afl_dnn") if m in final]
    if "lsm" in final and afl:
        gap = min(_mean_gap(final["lsm"], final[m], "f1_unseen") for m in afl)
        claims["lsm_like_afl_on_fyt"] = f"{verdict(gap <= 2.0)} (mean |LSM − AFL| F_y^t over λ: {gap:.1f} points)"
    return claims


def _mean_gap(a: dict, b: dict, measure: str) -> float:
    return float(np.mean([abs(a[lam][measure]["mean"] - b[lam][measure]["mean"]) for lam in a]))


COLORS = {"cnn": "black", "afl_mlp": "tab:blue", "afl_dnn": "tab:green", "sct": "tab:red", "lsm": "tab:purple"}


def _tradeoff_figure(cfg, records, keys, cnn, out_path: Path) -> str:
    import matplotlib.pyplot as plt

    from replab import report

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (x, label) in zip(axes, (("f1_seen", "F_y^v (seen users, macro-F1 %)"),
                                     ("f1_unseen", "F_y^t (unseen users, macro-F1 %)")), strict=True):
        for m in cfg.methods:
            f1, user = _points([records[k] for ks in keys[m].values() for k in ks], x)
            ax.scatter(f1, user, s=10, alpha=0.45, color=COLORS[m], label=METHOD_LABELS[m])
            grid = np.sort(np.unique(f1))
            env = lower_envelope(f1, user, grid)
            ax.step(grid, env, where="post", color=COLORS[m], lw=1.5)
        ax.errorbar(cnn[x]["mean"], cnn["user_accuracy"]["mean"], xerr=cnn[x]["std"], yerr=cnn["user_accuracy"]["std"],
                    fmt="*", ms=12, color="black", label=METHOD_LABELS[BASELINE])
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("user accuracy (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Fig. 2: every (λ, repetition) point; lines = lower envelopes (lower is better)", fontsize=10)
    return report.save_figure(fig, out_path)


def _curves_figure(cfg, records, keys, cnn, out_path: Path) -> str:
    import matplotlib.pyplot as plt

    from replab import report

    n = len(cfg.methods)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 5.2), sharex=True, sharey="row", squeeze=False)
    cmap = plt.get_cmap("viridis")
    for col, m in enumerate(cfg.methods):
        for li, lam in enumerate(cfg.lambdas):
            hist = [records[k]["history"] for k in keys[m][lam]]
            color = cmap(li / max(1, len(cfg.lambdas) - 1))
            for row, measure in enumerate(("f1_seen", "user_accuracy")):
                values = np.mean([h[measure] for h in hist], axis=0)
                axes[row, col].plot(np.arange(len(values)), values, color=color, lw=1.2, label=f"λ={lam}")
        axes[0, col].set_title(METHOD_LABELS[m], fontsize=9)
        axes[1, col].set_xlabel("repetition")
        for row, measure in enumerate(("f1_seen", "user_accuracy")):
            axes[row, col].axhline(cnn[measure]["mean"], color="gray", ls="--", lw=0.8)
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].set_ylabel("F_y^v (%)")
    axes[1, 0].set_ylabel("user accuracy (%)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Fig. 3: learning curves per method (dashed: CNN)", fontsize=10)
    return report.save_figure(fig, out_path)
