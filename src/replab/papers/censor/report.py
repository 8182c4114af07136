"""censor report: Fig. 2 (trade-off with per-method lower envelopes), Fig. 3 (learning curves), the claims."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from replab import report
from replab.papers import parse_record
from replab.papers.censor.model import (
    BASELINE,
    ENVELOPE_DROPS,
    ENVELOPE_TOLERANCE,
    METHOD_LABELS,
    METHODS,
    PAPER,
    PAPER_CLAIMS,
    SEED_WINDOWS,
    SIMILARITY_CHANCE_MARGIN,
    SIMILARITY_METHODS,
    AdversarialConfig,
    Config,
    variant_key,
)
from replab.params import SEED_MAX, fail

# D_sim learned: its step-1 loss below this (nats), a constant guess on half same-user pairs being ln 2
LEARNED_BELOW = math.log(2) - SIMILARITY_CHANCE_MARGIN
# A D_sim loss this near LEARNED_BELOW (nats) can fall on its other side on another machine: the same code, data and
# seed gave LSM 0.6840 on an Intel Xeon held to AVX2 and 0.6816 unheld (0.0024 apart); twice that
NEAR_LEARNED = 0.005

# What the report reads of evaluate.py's metrics files, checked before any value is used (Records.check): every
# measure is always defined there, so a null, NaN, string or out-of-range value is a damaged file named by its key.
PCT = {"ge": 0.0, "le": 100.0}
PCTS = (list[float], {**PCT, "nonempty": True, "distinct": False})  # one per repetition (history: and the pretrained)


def _same_lengths(self, where: str) -> None:  # one value per repetition in every curve
    (first, n), *others = ((name, len(values)) for name, values in vars(self).items())
    for name, count in others:
        if count != n:
            fail(where, f"{name}: {count} values for {n} in {first}")


HISTORY = report.schema("History", dict.fromkeys(("f1_seen", "f1_unseen", "user_accuracy"), PCTS), _same_lengths)
STEP1 = report.schema("Step1", {"adversary_loss": (list[float], {"ge": 0.0, "nonempty": True, "distinct": False}),
                                "adversary_accuracy": PCTS}, _same_lengths)  # step 1: the adversary D or D_sim, nats, %


def _check_variant(self, where: str) -> None:
    parse_record(HISTORY, self.history, f"{where}.history")
    if self.step1 is not None:
        parse_record(STEP1, self.step1, f"{where}.step1")


VARIANT = report.schema("Variant", {  # <key>.json (evaluate.py)
    "method": (str, {"choices": (BASELINE, *METHODS)}), "seed": (int, {"ge": 0, "le": SEED_MAX}),  # (λ: by key)
    **dict.fromkeys(("f1_seen", "f1_unseen", "user_accuracy", "chance_user_accuracy"), (float, PCT)),
    "history": (dict[str, Any], {}), "step1": (dict[str, Any] | None, {"default": None})}, _check_variant)


def _points(records: list[dict], x: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (λ, repetition ≥ 1) point of a method's variants: (label F1, user accuracy)."""
    f1 = [v for r in records for v in r["history"][x][1:]]
    user = [v for r in records for v in r["history"]["user_accuracy"][1:]]
    return np.array(f1), np.array(user)


def summarize(cfg: Config, params: dict):
    cnn_keys = [variant_key(BASELINE, None, s) for s in cfg.seeds]
    # keys as DVC spells them: from the raw params values (`1` and `1.0` name different matrix items)
    raw_lambdas = params[PAPER]["lambdas"]
    keys = {m: {lam: [variant_key(m, raw, s) for s in cfg.seeds] for lam, raw in zip(cfg.lambdas, raw_lambdas,
                                                                                    strict=True)}
            for m in cfg.methods}
    expected = {k: {"method": BASELINE, "seed": s} for k, s in zip(cnn_keys, cfg.seeds, strict=True)} | {
        k: {"method": m, "lambda": lam, "seed": s} for m in cfg.methods for lam, ks in keys[m].items()
        for k, s in zip(ks, cfg.seeds, strict=True)}  # each file the run of its key (not a copy of another run's)
    records = report.gather(PAPER, {k: {**v, "dataset": cfg.dataset} for k, v in expected.items()}, schema=VARIANT)
    for key in expected:  # the pretrained CNN's measures, then one per repetition (evaluate.py)
        want = 1 + (key not in cnn_keys) * cfg.adversarial.repetitions
        if (n := len(records[key]["history"]["f1_seen"])) != want:
            raise report.mismatch(records[key].path, "history", f"{n} values", f"{want} values",
                                  f"params.yaml's {PAPER}.adversarial.repetitions")
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
    data_note = "embedded stand-in: numbers not comparable with the source's" if cfg.dataset == "har" else "USC-HAD"
    ac = cfg.adversarial
    md = [f"Encoder censoring on **{cfg.dataset}** ({data_note}); {len(cfg.seeds)} seed(s), {ac.repetitions} "
          f"repetitions of {ac.adversary_samples:,} (step 1) + {ac.encoder_samples:,} (step 2) samples. "
          "Encoder E (z = E(x)) and activity classifier M are trained to keep the activity y and remove the user s "
          "against an adversary: AFL (a user classifier D on z, MLP or DNN), SCT (step 1: D_sim learns whether two "
          "windows' z are one user's; step 2: E is trained to confuse it) or LSM (step 2: E is trained so that D_sim "
          "calls two windows of one activity from different users one user, and pairs differing in both not); the "
          "CNN: E and M pretrained, no adversary. F_y^v = activity macro-F1 (%) on held-out windows "
          f"of the users trained on, F_y^t on users never seen; user accuracy of a fresh "
          f"{'-'.join(map(str, cfg.probe.hidden))} MLP on frozen z (chance {summary['chance_user_accuracy']:.1f} %). "
          "The source gives no numbers.", "",
          *([windows_check(records[cnn_keys[0]]["counts"]), ""] if cfg.dataset == "usc_had" else []),
          "After the last repetition, " + (f"mean ± std over {len(cfg.seeds)} seeds:" if len(cfg.seeds) > 1 else
                                           "one seed (no ±):"), "",
          report.md_table(["method", "λ", "F_y^v", "F_y^t", "user accuracy"], rows), ""]

    # Fig. 2 envelopes: thresholds relative to the CNN's F1 (x = F_y^v and x = F_y^t)
    env_rows = []
    for x, label in (("f1_seen", "F_y^v"), ("f1_unseen", "F_y^t")):
        thresholds = cnn[x]["mean"] - np.array(ENVELOPE_DROPS)
        summary["envelope"][x] = {"thresholds": {f"cnn-{d:g}": float(t) for d, t in zip(ENVELOPE_DROPS, thresholds,
                                                                                         strict=True)}}
        for m in cfg.methods:
            f1, user = _points([records[k] for ks in keys[m].values() for k in ks], x)
            env = report.lower_envelope(f1, user, thresholds)
            summary["envelope"][x][m] = {f"cnn-{d:g}": (None if np.isnan(e) else float(e))
                                         for d, e in zip(ENVELOPE_DROPS, env, strict=True)}
            env_rows.append([label, METHOD_LABELS[m], *("–" if np.isnan(e) else f"{e:.1f}" for e in env)])
    md += ["Lower envelopes (Fig. 2): the lowest user accuracy (%) over every (λ, repetition) point whose label F1 is "
           "at least the CNN's minus the given points:", "",
           report.md_table(["x", "method", *(f"≥ CNN − {d:g}" for d in ENVELOPE_DROPS)], env_rows), ""]

    claims, detail, close = _claims(cfg, cnn, summary)
    near = {}  # claims whose D_sim verdict a machine's rounding can turn (NEAR_LEARNED): one seed suffices
    summary["similarity_adversary"], why = similarity_adversary(
        {m: [records[k] for ks in keys[m].values() for k in ks] for m in cfg.methods}, cfg)
    for c in claims:  # a claim on a method whose D_sim never learned tests the failed adversary, not the method
        adversaries = {m: v for m, v in summary["similarity_adversary"].items() if m in c.split("_")}
        near[c] = any(v["near_threshold"] for v in adversaries.values())
        if failed := [m for m, v in adversaries.items() if not v["learned"]]:
            was = "" if claims[c] is None else f"would read {claim_words(claims[c])}, but "
            detail[c] += f"; {was}D_sim of {' and '.join(METHOD_LABELS[m] for m in failed)} did not learn (below)"
            claims[c] = None  # checkable again only if every failed D_sim's verdict can turn
            close[c] = all(adversaries[m]["learned_within_spread"] for m in failed)
        else:
            close[c] = close[c] or any(v["learned_within_spread"] for v in adversaries.values())
    summary["claims"] = claims
    summary["claims_within_spread"] = close
    summary["claims_near_margin"] = near
    md += [f"Claims (envelopes compared at the thresholds above; ≈ = within {ENVELOPE_TOLERANCE:g} user-accuracy "
           "points on average; better = lower by more than that on average where both reach, or reaching thresholds "
           "the other does not, censoring there (below the CNN's user accuracy by more than that), and not higher by "
           "more than that where both reach; and none reached by the other only; at least as good = never higher by "
           "more than that; lowest = at least as good as every other method; AFL = the lower of AFL-MLP and AFL-DNN "
           "at each threshold):", ""]
    md += [f"- {text}: **{claim_words(claims[c])}**{report.spread_mark(close[c], near[c])} ({detail[c]})"
           for c, text in _claim_texts().items() if c in claims] + [""]
    if summary["similarity_adversary"]:
        md += [adversary_margins(summary["similarity_adversary"]), ""]
    if why:
        md += [why, ""]

    # What happened, in numbers: each method's largest user-accuracy reduction (last repetition, any λ) among the
    # λ whose F_y^v drops at most 5 points below the CNN's
    summary["user_reduction_within_5"] = {}
    for m in cfg.methods:
        ok = [cnn["user_accuracy"]["mean"] - v["user_accuracy"]["mean"] for v in summary["final"][m].values()
              if v["f1_seen"]["mean"] >= cnn["f1_seen"]["mean"] - 5]
        summary["user_reduction_within_5"][m] = max(ok) if ok else None
    reductions = ", ".join(f"{METHOD_LABELS[m]} {_reduction_words(r)}"
                           for m, r in summary["user_reduction_within_5"].items())
    md += [f"What happened: the largest user-accuracy reduction (points, vs the CNN's "
           f"{cnn['user_accuracy']['mean']:.1f} %) at a λ whose F_y^v is at most 5 points below the CNN's, per "
           f"method: {reductions} (– = every λ costs more than 5 F1 points). Step 2 keeps training M on the label "
           "loss, so F1 can rise above the pretrained CNN's.", ""]
    fig2 = _tradeoff_figure(cfg, records, keys, cnn, summary_dir / "fig2_tradeoff.png")
    fig3 = _curves_figure(cfg, records, keys, cnn, summary_dir / "fig3_curves.png")
    md += [f"![Fig. 2 trade-off]({fig2})", "", f"![Fig. 3 learning curves]({fig3})", ""]
    summary["run"] = report.run_summary(records.values())
    return report.Section(PAPER, "censor — AFL vs SCT vs LSM: remove the user, keep the activity (source 002)",
                          "\n".join(md), summary, _claim_texts())


def windows_check(counts: dict) -> str:
    """Our USC-HAD windows (every split, `counts` of a metrics record) against the source's 172,169, the count that
    decides the reading of "スライド幅 30，重なり率 0.5" as window 30, stride 15."""
    total = sum(int(n) for n in counts.values())
    gap = total - SEED_WINDOWS
    words = ("the same" if gap == 0 else
             f"{abs(gap):,} {'more' if gap > 0 else 'fewer'}, {100 * gap / SEED_WINDOWS:+.2f} %")
    return (f"Windows over every split: {total:,}; the source counts {SEED_WINDOWS:,} ({words}), the check of our "
            "reading of its windowing.")


def adversary_margins(stats: dict) -> str:
    """How far each similarity method's D_sim loss is from the "learned" threshold, so that a verdict decided by
    less than float rounding across machines (a thousandth of a nat) reads as the coin flip it is."""
    words = [f"{METHOD_LABELS[m]} {v['adversary_loss']:.4f} ("
             + (f"learned, {LEARNED_BELOW - v['adversary_loss']:.4f} below" if v["learned"] else
                f"did not learn, {v['adversary_loss'] - LEARNED_BELOW:.4f} above")
             + (f"; within the seeds' spread, ± {v['adversary_loss_std']:.4f}" if v.get("learned_within_spread")
                else "")
             + (f"; within {NEAR_LEARNED:g} of it" if v.get("near_threshold") else "")
             + ")" for m, v in stats.items()]
    near = (f" A loss within {NEAR_LEARNED:g} nats of the threshold can fall on its other side on another machine "
            "(the same code, data and seed moved LSM's by 0.0024 between two CPUs): the verdicts resting on it are "
            f"marked {report.NEAR_MARGIN}." if any(v.get("near_threshold") for v in stats.values()) else "")
    return (f"D_sim's mean step-1 loss in its best repetition, averaged over the method's runs (learned = below "
            f"ln 2 − {SIMILARITY_CHANCE_MARGIN:g} = {LEARNED_BELOW:.4f} nats): {', '.join(words)}.{near}")


def similarity_adversary(records: dict[str, list[dict]], cfg: Config) -> tuple[dict, str | None]:
    """D_sim's step-1 loss (Eq. 2, nats) and pair accuracy (%) in the repetition where the loss was lowest, mean
    over each similarity method's variants (`records`: method → metrics records with `step1`, as evaluate.py
    writes them). Returns ({method: {"adversary_loss", "adversary_accuracy", "learned", "adversary_loss_std",
    "learned_within_spread", "near_threshold"}}, one sentence when D_sim did not learn for some method, else
    None). Not learned =
    loss within SIMILARITY_CHANCE_MARGIN of ln 2 (a constant guess on pairs that are half same-user) in every
    repetition: then SCT's / LSM's step 2 had next to nothing to confuse, so their claims here test an adversary
    that failed rather than the method. The lowest repetition, not the last: a censor that works drives D_sim back
    to ln 2 in the later repetitions (step 2 trains E to defeat it), which the last repetition's loss would read
    as an adversary that never learned; the first repetition sees the pretrained encoder's z, where the user is
    readable. Within spread: the standard deviation over seeds of that loss (each seed's mean over its λ runs)
    covers its distance to the threshold. Near threshold: that distance is below NEAR_LEARNED (one seed suffices)."""
    stats: dict[str, dict] = {}
    for m, recs in records.items():
        if m not in SIMILARITY_METHODS or not recs or any("step1" not in r for r in recs):
            continue
        lowest = [int(np.argmin(r["step1"]["adversary_loss"])) for r in recs]
        losses = [r["step1"]["adversary_loss"][i] for r, i in zip(recs, lowest, strict=True)]
        loss = float(np.mean(losses))
        accuracy = float(np.mean([r["step1"]["adversary_accuracy"][i] for r, i in zip(recs, lowest, strict=True)]))
        # the seeds' spread of that loss (each seed's mean over its λ runs: λ changes it on purpose, not by noise);
        # a NaN run leaves nothing to judge
        by_seed = defaultdict(list)
        for r, v in zip(recs, losses, strict=True):
            by_seed[r.get("seed")].append(v)
        spread = report.mean_std([np.mean(v) for v in by_seed.values()])
        stats[m] = {"adversary_loss": loss, "adversary_accuracy": accuracy, "learned": bool(loss < LEARNED_BELOW),
                    "adversary_loss_std": spread["std"] if np.isfinite(loss) else None,
                    # the seeds' spread covers the distance to the threshold: the verdict can turn either way
                    "learned_within_spread": bool(np.isfinite(loss)) and report.within_spread(spread, LEARNED_BELOW),
                    "near_threshold": bool(abs(loss - LEARNED_BELOW) < NEAR_LEARNED)}  # (False for NaN)
    failed = [m for m, v in stats.items() if not v["learned"]]
    if not failed:
        return stats, None
    def batches(ac: AdversarialConfig) -> int:
        return ac.repetitions * math.ceil(ac.adversary_samples / ac.batch_size)

    ac = cfg.adversarial
    numbers = "; ".join(f"{METHOD_LABELS[m]} {stats[m]['adversary_loss']:.3f} nats, pair accuracy "
                        f"{stats[m]['adversary_accuracy']:.1f} %" for m in failed)
    names = " and ".join(METHOD_LABELS[m] for m in failed)
    verb, them = ("censors", "it") if len(failed) == 1 else ("censor", "them")
    paper = AdversarialConfig()
    lr_words = "the paper's" if ac.lr == paper.lr else f"{ac.lr / paper.lr:g}× the paper's {paper.lr:.1e}"
    return stats, (f"Why {names} barely {verb} here: D_sim did not learn. Its step-1 loss stayed, in every "
                   f"repetition, within {SIMILARITY_CHANCE_MARGIN:g} of ln 2 = {math.log(2):.3f} (a constant guess: "
                   f"half the pairs are same-user, so chance pair accuracy is 50 %) — {numbers} — after "
                   f"{batches(ac):,} step-1 batches of {ac.batch_size} pairs ({ac.repetitions} repetitions × "
                   f"{batches(ac) // ac.repetitions:,}) at RMSprop lr {ac.lr:.1e} ({lr_words}), "
                   f"so {names}'s step 2 had next to "
                   f"nothing to confuse and the verdicts above on {them} test an adversary that failed, not the "
                   "method: the scale, not the code (on the har stand-in's CNN features D_sim alone needs ≈ 1,000 "
                   "such batches to pass 60 % pair accuracy; the paper's settings give it "
                   f"{batches(paper):,} at lr {paper.lr:.1e}; censor module docstring).")


def _reduction_words(points: float | None) -> str:
    """A user-accuracy reduction in points for the report: '–' (no λ qualifies), the reduction, or the rise."""
    if points is None:
        return "–"
    return f"{points:.1f}" if points >= 0 else f"none (user accuracy {-points:.1f} points higher)"


def _claim_texts() -> dict[str, str]:
    return {**PAPER_CLAIMS,
            "sct_minus_20_within_5": "SCT lowers user accuracy by ≥ 20 points vs the CNN at some λ while F_y^v drops "
                                     "≤ 5 points (after the last repetition; a target of ours, not the paper's)"}


def _envelope(env_axis: dict, method: str) -> np.ndarray:
    """One method's envelope over the thresholds; +inf where it has no point (no λ reaches that label F1, so
    it offers no privacy there at all)."""
    return np.array([np.inf if v is None else v for v in env_axis[method].values()], float)


def envelope_claims(methods: list[str], env: dict, tol: float = ENVELOPE_TOLERANCE, baseline: float | None = None
                    ) -> tuple[dict[str, bool | None], dict[str, str]]:
    """The seed's Fig. 2 claims on the lower envelopes (`summary["envelope"]`: axis → method → threshold → user
    accuracy, None where no point reaches the threshold). Returns ({claim: holds, or None when no threshold is
    reached}, {claim: the numbers behind it}). "AFL" is the better (lower) of the AFL variants at each threshold.
    With d = this method's envelope − the other's at the thresholds either reaches (−inf where only this one
    does): ≈ means every d finite and |mean d| ≤ tol; better: `better`; at least as good means every d ≤ tol
    (ENVELOPE_TOLERANCE, user-accuracy points); lowest means at least as good as every other method (no envelope
    below SCT's by more than tol: one seed's points are not told apart more finely)."""
    claims: dict[str, bool | None] = {}
    detail: dict[str, str] = {}
    axes = {"f1_seen": "F_y^v", "f1_unseen": "F_y^t"}
    curves = {x: {m: _envelope(env[x], m) for m in methods} for x in axes}
    afl_methods = [m for m in ("afl_mlp", "afl_dnn") if m in methods]
    for x in axes:
        if afl_methods:
            curves[x]["afl"] = np.minimum.reduce([curves[x][m] for m in afl_methods])
    name = {**METHOD_LABELS, "afl": "AFL"}

    def at_least_as_good(x: str, m: str, other: str) -> tuple[bool | None, str]:
        d, words = report.envelope_difference(curves[x][m], curves[x][other], name[m], name[other])
        return (None if not len(d) else bool((d <= tol).all())), f"{name[m]} − {name[other]} on {axes[x]}: {words}"

    if "sct" in methods and len(methods) > 1:
        verdicts, words = [], []
        for x in axes:
            for other in methods:
                if other != "sct":
                    d, w = report.envelope_difference(curves[x]["sct"], curves[x][other], name["sct"], name[other])
                    verdicts.append(None if not len(d) else bool((d <= tol).all()))
                    if len(d) and not (d <= tol).all():
                        words.append(f"above {name[other]} by more than {tol:g} on {axes[x]} ({w})")
        claims["sct_envelope_lowest"] = None if None in verdicts else all(verdicts)
        detail["sct_envelope_lowest"] = "; ".join(words) or f"lowest (within {tol:g}) at every threshold reached"
    if afl_methods and {"sct", "lsm"} & set(methods):
        pairs = [at_least_as_good(x, m, "afl") for m in ("sct", "lsm") if m in methods for x in axes]
        claims["sct_lsm_at_least_afl"] = None if any(v is None for v, _ in pairs) else all(v for v, _ in pairs)
        detail["sct_lsm_at_least_afl"] = "; ".join(w for _, w in pairs)
    for key, (m, other, x, kind) in {"lsm_like_afl_on_fyt": ("lsm", "afl", "f1_unseen", "≈"),
                                     "lsm_beats_afl_on_fyv": ("lsm", "afl", "f1_seen", "<"),
                                     "lsm_like_sct_on_fyv": ("lsm", "sct", "f1_seen", "≈")}.items():
        if m not in methods or other not in curves[x]:
            continue
        d, words = report.envelope_difference(curves[x][m], curves[x][other], name[m], name[other])
        detail[key] = f"{name[m]} − {name[other]} on {axes[x]}: {words}"
        if not len(d):
            claims[key] = None
        elif kind == "≈":
            claims[key] = bool(np.isfinite(d).all() and abs(d.mean()) <= tol)
        else:
            alone = curves[x][m][np.isfinite(curves[x][m]) & ~np.isfinite(curves[x][other])]  # (d's −inf, in order)
            censors = None if baseline is None else alone < baseline - tol  # m removes some of the user there
            claims[key] = report.envelope_better(d, tol, censors)
            if censors is not None and not censors.all():
                users = alone[~censors]
                span = " – ".join(dict.fromkeys(f"{v:.1f}" for v in (users.min(), users.max())))  # (one value once)
                at = f"all {len(users)}" if len(users) == len(alone) else len(users)
                detail[key] += (f"; at {at} of those {name[m]} does not censor (user accuracy {span} % vs the CNN's "
                                f"{baseline:.1f} %): no win")
    return claims, detail


def _claims(cfg: Config, cnn: dict, summary: dict) -> tuple[dict[str, bool | None], dict[str, str], dict[str, bool]]:
    """The claims' verdicts, their details, and whether each verdict's deciding difference lies within the seeds'
    spread (`report.within_spread`; the envelopes pool every seed's points and have no spread: False there)."""
    claims, detail = envelope_claims(list(cfg.methods), summary["envelope"], baseline=cnn["user_accuracy"]["mean"])
    close = dict.fromkeys(claims, False)
    final = summary["final"]
    if "sct" in final:
        best = max(final["sct"].values(), key=lambda v: v["f1_unseen"]["mean"])["f1_unseen"]
        best_fyt = best["mean"]
        claims["sct_keeps_fyt"] = best_fyt >= cnn["f1_unseen"]["mean"] - 1.0
        close["sct_keeps_fyt"] = report.within_spread(best, {**cnn["f1_unseen"], "mean": cnn["f1_unseen"]["mean"] - 1})
        detail["sct_keeps_fyt"] = (f"best SCT F_y^t {best_fyt:.1f} vs CNN {cnn['f1_unseen']['mean']:.1f}, "
                                   "tolerance 1 point")
        hits = [lam for lam, v in final["sct"].items()
                if v["user_accuracy"]["mean"] <= cnn["user_accuracy"]["mean"] - 20
                and v["f1_seen"]["mean"] >= cnn["f1_seen"]["mean"] - 5]
        claims["sct_minus_20_within_5"] = bool(hits)
        close["sct_minus_20_within_5"] = False  # two thresholds per λ: not judged for closeness
        detail["sct_minus_20_within_5"] = f"λ = {', '.join(hits)}" if hits else "no λ"
    return claims, detail, close


def claim_words(holds: bool | None) -> str:
    from replab import report

    return report.verdict_words(holds, "not checkable")


COLORS = {"cnn": "black", "afl_mlp": "tab:blue", "afl_dnn": "tab:green", "sct": "tab:red", "lsm": "tab:purple"}


def draw_envelope(ax, f1: np.ndarray, user: np.ndarray, color: str):
    """A method's lower envelope on `ax`: at each label F1 x the lowest user accuracy of the points with F1 ≥ x, a
    step through the points' own F1 values. Between two of them the next one's value holds (steps-pre): the points
    at or above such an x are those at or above the next F1. Returns the Line2D."""
    from replab import report

    grid = np.sort(np.unique(f1))
    (line,) = ax.step(grid, report.lower_envelope(f1, user, grid), where="pre", color=color, lw=1.5)
    return line


def _tradeoff_figure(cfg, records, keys, cnn, out_path: Path) -> str:
    import matplotlib.pyplot as plt

    from replab import report

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (x, label) in zip(axes, (("f1_seen", r"$F_y^v$ (seen users, macro-F1 %)"),
                                     ("f1_unseen", r"$F_y^t$ (unseen users, macro-F1 %)")), strict=True):
        for m in cfg.methods:
            f1, user = _points([records[k] for ks in keys[m].values() for k in ks], x)
            ax.scatter(f1, user, s=10, alpha=0.45, color=COLORS[m], label=METHOD_LABELS[m])
            draw_envelope(ax, f1, user, color=COLORS[m])
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
    axes[0, 0].set_ylabel(r"$F_y^v$ (%)")
    axes[1, 0].set_ylabel("user accuracy (%)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Fig. 3: learning curves per method (dashed: CNN)", fontsize=10)
    return report.save_figure(fig, out_path)
