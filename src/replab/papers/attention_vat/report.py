"""attention_vat report: Tables 1a, 1b, 2 and Fig. 2 beside the paper's numbers, its claims, attention maps of a
few test sentences per method; the tables group the metrics files (evaluate.py) by their axes. Table 2: the vanilla
and semi-supervised models. An undefined measure shows as "–" with a note, its claims "not measured"; a constant
classifier (†) is left out of every claim ("not checkable" if nothing learned is left); "better" needs a margin."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from replab import report
from replab.io import number_text, read_json
from replab.papers import parse_record
from replab.papers.attention_vat.evaluate import metrics_files
from replab.papers.attention_vat.model import (
    EVIDENCE_KIND,
    EVIDENCE_KINDS,
    METHOD_LABELS,
    METHODS,
    PAPER,
    PAPER_COLUMN,
    PAPER_N_UL,
    PAPER_TABLE_1A,
    PAPER_TABLE_1B,
    PAPER_TABLE_2,
    PAPER_TABLE_2_RATIONALE_MODEL,
    PAR_MARGIN,
    SEMI_METHODS,
    SETTINGS,
    fig2_methods,
)
from replab.params import MAX_COUNT, SEED_MAX, fail

WORD_LEVEL = ("word_at", "word_iat", "word_vat", "word_ivat")
OURS = ("attention_vat", "attention_ivat")  # the seed's proposals

TABLE_2_NAMES = {"human": "rationale agreement (ERASER token-soft metrics)", "lexicon": "lexicon-evidence agreement "
                 "(VADER-lexicon tokens as the evidence; ERASER's token-soft formulas, not ERASER's data)",
                 "evidence": "evidence agreement (the data set's evidence tokens; ERASER's token-soft formulas)"}
RATIONALE_MEASURES = (("auprc", "AUPRC"), ("average_precision", "Avg. Prec."), ("roc_auc_score", "ROC-AUC"))

PAPER_CLAIMS = {
    "attention_f1_supervised": "supervised test F1: Attention VAT/iVAT above vanilla and Word AT/iAT",
    "vat_as_at_supervised": "supervised: Attention VAT/iVAT on a par (同等) with Attention AT/iAT in test F1 and "
                            "Pearson r: not below the better by more than the noise over seeds or 0.25 F1 / 0.01 r "
                            "(Table 1a's losses on a par: ≤ 0.03 / 0.004; its clear gains: ≥ 0.53 / 0.014)",
    "attention_ge_word_semi": "attention-level VAT ≥ word-level VAT in the semi-supervised setting (test F1: "
                              "Attention VAT ≥ Word VAT and Attention iVAT ≥ Word iVAT)",
    "semi_vat_above_at": "semi-supervised VAT/iVAT above supervised AT/iAT of their level in test F1 and Pearson r "
                         "(Word VAT/iVAT over Word AT/iAT, Attention VAT/iVAT over Attention AT/iAT; a significant "
                         "gain, 有意な向上: AT cannot use the unlabeled data)",
    "attention_higher_corr": "Attention VAT/iVAT give a higher attention–gradient correlation (Pearson r) than "
                             "vanilla and the word-level methods (supervised and semi-supervised)",
    "attention_better_rationales": "Attention VAT/iVAT agree better with the rationales than vanilla and word-level "
                                   "VAT/iVAT (AUPRC, average precision and ROC-AUC)",
    "f1_rises_with_unlabeled": "dev F1 rises with unlabeled data (largest N_ul above N_ul = smallest, every "
                               "method Fig. 2 trains: attention_vat.fig2.methods)",
}


def stat(values) -> dict | None:
    """mean ± std (ddof 1) over the seeds with a defined value; None when none is; `missing` counts the rest."""
    return {**s, "missing": s.get("missing", 0)} if (s := report.mean_std(list(values)))["n"] else None


# What the report reads of evaluate.py's metrics files, checked (report.Records.check) before use. Null only where
# evaluate.py writes it (an undefined measure, no ε, no count); eps_* with an ε only; rationale with evidence only.
PCT, FRACTION, CORR, COUNT, OPTIONAL = ({"ge": 0.0, "le": 100.0}, {"ge": 0.0, "le": 1.0}, {"ge": -1.0, "le": 1.0},
                                        {"ge": 0, "le": MAX_COUNT}, {"default": None})
NAME, N_LABELED, SEED = ((str, {"nonempty": True}), (int | None, {"ge": 1, "le": MAX_COUNT}),
                         (int, {"ge": 0, "le": SEED_MAX}))


def _check_curves(self, where: str) -> None:  # FIG2's: curves of its methods, one dev F1 (count seen, %) per N_ul
    for method, curve in self.curves.items():
        if method not in SEMI_METHODS:
            fail(where, f"curves.{method}: not a method of Fig. 2 (allowed: {', '.join(SEMI_METHODS)})")
        c = parse_record(CURVE, curve, f"{where}.curves.{method}")
        for k in ("dev_f1", "unlabeled_seen", "dev_predicted_positive"):
            if (values := getattr(c, k)) is not None and len(values) != len(c.n_unlabeled):
                fail(where, f"curves.{method}.{k}: {len(values)} values for {len(c.n_unlabeled)} N_ul")


def _evidence_of_its_dataset(self, where: str) -> None:  # the kind names Table 2: its data set's (evaluate.py)
    if self.rationale and self.rationale.evidence != (kind := EVIDENCE_KIND.get(self.dataset, EVIDENCE_KINDS[-1])):
        fail(where, f"rationale.evidence = {self.rationale.evidence!r}, but {self.dataset}'s evidence is {kind!r}")


RATIONALE = report.schema("Rationale", {"evidence": (str, {"choices": EVIDENCE_KINDS}),  # (measures.token_soft_metrics)
    **dict.fromkeys(("auprc", "average_precision", "roc_auc_score"), (float | None, FRACTION)),
    **dict.fromkeys(("documents", "single_class_documents", "documents_without_evidence"), (int, COUNT))})
VARIANT = report.schema("Variant", {  # <dataset>/<key>.json of a trained model (evaluate_variant)
    "dataset": NAME, "method": (str, {"choices": METHODS}), "setting": (str, {"choices": SETTINGS}),
    "seed": SEED, "n_labeled": N_LABELED, "n_unlabeled": (int, COUNT), "unlabeled_seen": (int | None, COUNT),
    "eps": (float | None, {"gt": 0.0}), "corr_undefined": (int, COUNT), "dev_auc": (float | None, FRACTION),
    **dict.fromkeys(("f1", "dev_f1", "predicted_positive"), (float, PCT)),
    **dict.fromkeys(("corr_pearson", "corr_kendall"), (float | None, CORR)), "rationale": (RATIONALE | None, OPTIONAL),
    **dict.fromkeys(("eps_per_token", "eps_share"), (float | None, {**OPTIONAL, "ge": 0.0})),
    "eps_selection": (dict[str, dict[str, float]] | None, OPTIONAL)}, _evidence_of_its_dataset)
CURVE = report.schema("Curve", {"n_unlabeled": (list[int], {**COUNT, "nonempty": True}),
                                "dev_f1": (list[float], {**PCT, "distinct": False}),
                                "unlabeled_seen": (list[int] | None, {**COUNT, **OPTIONAL, "distinct": False}),
                                "dev_predicted_positive": (list[float] | None, {**PCT, **OPTIONAL, "distinct": False})})
FIG2 = report.schema("Fig2", {"dataset": NAME, "seed": SEED, "n_labeled": N_LABELED,  # fig2-<ds>-<fam>-<seed>
                              "curves": (dict[str, dict], {})}, _check_curves)  # (evaluate.collect_fig2)
LINEAR = report.schema("Linear", {"n_labeled": (int, {"ge": 1, "le": MAX_COUNT}), "dev_auc": (float | None, FRACTION),
                                  **dict.fromkeys(("f1", "dev_f1_all_positive", "test_f1_all_positive"), (float, PCT))})
SCHEMA = lambda record: FIG2 if "curves" in record else VARIANT  # a metrics file's, by its kind


def group(records: dict[str, dict]) -> dict:
    """{dataset: {"supervised": {method: [keys]}, "semi": {method: {n_ul: [keys]}}, "fig2": {method: {n_ul: [(dev F1,
    unlabeled_seen, % dev predicted positive) per seed]}}, "records"}}; plain dicts checked first."""
    records = records if isinstance(records, report.Records) else report.Records(PAPER, records).check(SCHEMA)
    by_n = lambda: defaultdict(lambda: defaultdict(list))
    out: dict = defaultdict(lambda: {"supervised": defaultdict(list), "semi": by_n(), "fig2": by_n(),
                                     "n_labeled": None, "evidence": None, "records": records})
    for key, rec in records.items():
        ds = out[rec["dataset"]]
        ds["n_labeled"] = ds["n_labeled"] or (rec["n_labeled"] if rec.get("setting") != "semi" else None)
        ds["evidence"] = ds["evidence"] or (rec["rationale"]["evidence"] if rec.get("rationale") else None)
        for method, curve in rec.get("curves", {}).items():
            for n_ul, *point in zip(curve["n_unlabeled"], curve["dev_f1"], *(curve.get(k) or [None] * len(
                    curve["n_unlabeled"]) for k in ("unlabeled_seen", "dev_predicted_positive")), strict=True):
                ds["fig2"][method][n_ul].append(point)
        if "curves" not in rec:
            (ds["semi"][rec["method"]][rec["n_unlabeled"]] if rec["setting"] == "semi"
             else ds["supervised"][rec["method"]]).append(key)
    return out


def dataset_summary(groups: dict) -> dict:
    """Per-method stats: table1a, table1b (largest N_ul), table2, fig2 ({method: {N_ul: dev F1, seen, % positive}})."""
    sup, semi, records, evidence = (groups[k] for k in ("supervised", "semi", "records", "evidence"))
    n_ul_used = {m: max(by_nul) for m, by_nul in semi.items()}
    measures = {m: m for m in ("f1", "dev_f1", "dev_auc", "corr_pearson", "corr_kendall", "predicted_positive")}
    measures |= {k: f"rationale.{k}" for k, _ in RATIONALE_MEASURES if evidence}  # (every record has it then)
    # read through report.Records: a null measure is in the report's note of missing values
    stats = lambda keys: {m: stat(records.value(k, read) for k in keys) for m, read in measures.items()}
    table1a = {m: stats(keys) for m, keys in sup.items()}
    table1b = {m: stats(semi[m][n]) for m, n in n_ul_used.items()}
    fig2 = {m: {str(n): (f1 := stat(p[0] for p in pts)) and {**f1, "seen": fewest(p[1] for p in pts),  # † of dev:
                                                             "predicted_positive": stat(p[2] for p in pts)}
                for n, pts in sorted(points.items())} for m, points in groups["fig2"].items()}
    sources = {"vanilla": table1a.get("vanilla"), **{m: table1b.get(m) for m in SEMI_METHODS}}
    table2 = {m: {k: t[k] for k in (*dict(RATIONALE_MEASURES), "predicted_positive")}  # (the claims' †)
              for m, t in sources.items() if t is not None and evidence}
    seen = {"table1b": {m: fewest(records[k]["unlabeled_seen"] for k in semi[m][n]) for m, n in n_ul_used.items()}}
    return {"table1a": table1a, "table1b": table1b, "n_unlabeled": n_ul_used, "table2": table2, "evidence": evidence,
            "fig2": fig2, "n_labeled": groups["n_labeled"], "unlabeled_seen": seen}


def fewest(values) -> int | None:  # the fewest unlabeled sentences drawn over seeds (None: no record counts them)
    return min(counted) if (counted := [v for v in values if v is not None]) else None


def seen_text(n_ul: int, seen: int | None) -> str:  # " (k seen)" where the kept models drew fewer than N_ul
    return f" ({seen:,} seen)" if seen is not None and seen < n_ul else ""


fig2_marks = lambda point, n_ul: seen_text(n_ul, (point or {}).get("seen")) + _constant_mark(point or {})  # (†)


def claims(summary: dict) -> tuple[dict[str, str], dict[str, bool | None], dict[str, bool]]:
    """The paper's claims judged on our numbers (means over seeds): (verdict words, claim_* booleans: None = not
    measured, a value missing or undefined, or not checkable, only a constant classifier's (†) left; within spread)."""
    checks: dict[str, list[tuple[bool | None, str, bool]]] = {c: [] for c in PAPER_CLAIMS}  # verdict, detail, close

    def stats(table: dict, methods, measure: str) -> dict[str, dict | None]:  # † a constant classifier, any measure
        return {METHOD_LABELS.get(m, m) + _constant_mark(table[m]): table[m][measure] for m in methods if m in table}

    def compare(claim: str, where: str, mine: dict, others: dict, *args) -> None:  # `report.beats`, † left out
        left = ", ".join(label for label in (*mine, *others) if "†" in label)
        learned = [{k: v for k, v in side.items() if "†" not in k} for side in (mine, others)]
        ok, detail = report.beats(where, *learned, *args) if all(learned) else (None, f"{where}: not checkable: {left}")
        checks[claim].append((ok, detail + (f" ({left} left out)" if left and all(learned) else ""),
                              ok is not None and report.beats_within_spread(*learned, *args)))

    for ds, s in summary.items():  # Table 1's and Fig. 2's claims on their data sets (PAPER_COLUMN), Table 2's anywhere
        t1a, t1b, fig2 = (s["table1a"], s["table1b"], s["fig2"]) if ds in PAPER_COLUMN else ({}, {}, {})
        # supervised test F1 above vanilla and word AT/iAT; F1 and r on a par with attention AT/iAT (Sec. 4, 5.1)
        if (mine := stats(t1a, OURS, "f1")) and (others := stats(t1a, ("vanilla", "word_at", "word_iat"), "f1")):
            compare("attention_f1_supervised", ds, mine, others, 2)
        for measure, label, digits in (("f1", "F1", 2), ("corr_pearson", "r", 3)):
            if (mine := stats(t1a, OURS, measure)) and (at := stats(t1a, ("attention_at", "attention_iat"), measure)):
                compare("vat_as_at_supervised", f"{ds} {label}", mine, at, digits, False, PAR_MARGIN[measure])
        # semi-supervised test F1: Attention VAT ≥ Word VAT, Attention iVAT ≥ Word iVAT
        for ours, word in (("attention_vat", "word_vat"), ("attention_ivat", "word_ivat")):
            if (mine := stats(t1b, [ours], "f1")) and (others := stats(t1b, [word], "f1")):
                compare("attention_ge_word_semi", ds, mine, others, 2, False)
        # semi-supervised VAT/iVAT (Table 1b) clearly above supervised AT/iAT (Table 1a) of the same level (Sec. 5.1)
        for vat, at in ((WORD_LEVEL[2:], WORD_LEVEL[:2]), (OURS, ("attention_at", "attention_iat"))):
            for measure, label, digits in (("f1", "F1", 2), ("corr_pearson", "r", 3)):
                if (mine := stats(t1b, vat, measure)) and (others := stats(t1a, at, measure)):
                    compare("semi_vat_above_at", f"{ds} {label} (semi vs supervised)", mine, others, digits)
        for setting, table in (("supervised", t1a), ("semi", t1b)):  # r above vanilla and word level, each setting
            others = {**stats(t1a, ["vanilla"], "corr_pearson"), **stats(table, WORD_LEVEL, "corr_pearson")}
            if (mine := stats(table, OURS, "corr_pearson")) and others:
                compare("attention_higher_corr", f"{ds} {setting}", mine, others, 3)
        for key, label in RATIONALE_MEASURES if (t2 := s["table2"]) else ():  # above vanilla, word VAT/iVAT, each
            if (mine := stats(t2, OURS, key)) and (others := stats(t2, ("vanilla", "word_vat", "word_ivat"), key)):
                compare("attention_better_rationales", f"{ds} {label}", mine, others, 3)
        for m, points in fig2.items():  # dev F1 at the largest N_ul above the smallest (Fig. 2), every method
            if len(n := sorted(map(int, points))) >= 2:
                at = lambda k, p=points, m=m: {f"{METHOD_LABELS[m]} at N_ul={k:,}{fig2_marks(p[str(k)], k)}": p[str(k)]}
                compare("f1_rises_with_unlabeled", ds, at(n[-1]), at(n[0]), 2)
    flags = {c: report.all_hold(ok for ok, *_ in results) for c, results in checks.items()}
    unjudged = lambda r: "not checkable" if any(": not checkable" in d for _, d, _ in r) else "not measured"  # † or –
    return ({c: f"{report.verdict_words(flags[c], unjudged(r))} ({report.claim_detail(r) or 'no runs for it'})"
             for c, r in checks.items()}, flags, {c: report.verdict_within_spread(r) for c, r in checks.items()})


def _constant_mark(t: dict) -> str:
    """" (all positive†)" (negative, one class a seed): every seed's % predicted positive 0 or 100, σ² = μ(100 − μ)."""
    constant = (s := t.get("predicted_positive")) and s["n"] and not s["missing"] and abs(
        s["std"] ** 2 * (s["n"] - 1) / s["n"] - s["mean"] * (100 - s["mean"])) < 1e-6
    return f" ({({100: 'all positive', 0: 'all negative'}).get(s['mean'], 'one class a seed')}†)" if constant else ""


SEEN_NOTE = ("seen: the distinct unlabeled sentences the model drew by its kept epoch (`batch_unlabeled` a step; the "
             "fewest over seeds), where fewer than N_ul: the rest of the N_ul never reached it.")
FIG2_CONSTANT_NOTE = "† every dev sentence on one side of 0.5 (every seed): a constant classifier; claims leave it out."
CONSTANT_NOTE = ("† every test sentence falls on one side of 0.5 (every seed): a constant classifier's F1, no "
                 "learned result (its ranking: dev ROC-AUC, diagnosis below); claims leave out its F1, r, agreement.")


def tables_markdown(ds: str, s: dict) -> list[str]:
    ref_1a, ref_1b = PAPER_TABLE_1A.get(column := PAPER_COLUMN.get(ds), {}), PAPER_TABLE_1B.get(column, {})
    paper_label = f"paper ({column.upper()})" if column else "paper"
    md = [f"#### {ds}", ""]

    def row(m: str, t: dict, ref: tuple, *n_ul: str) -> list[str]:
        return [METHOD_LABELS.get(m, m), *n_ul, report.fmt(t["f1"], 2) + _constant_mark(t), report.num(ref[0], 2),
                report.fmt(t["corr_pearson"], 3), report.num(ref[1], 3), report.fmt(t["corr_kendall"], 3)]

    head = ["F1 ours", f"F1 {paper_label}", "Corr. (Pearson) ours", f"Corr. {paper_label}", "Kendall τ ours"]
    rows = [row(m, s["table1a"][m], ref_1a.get(m, (None, None))) for m in METHODS if m in s["table1a"]]
    if rows:
        md += ["Table 1a (supervised): test F1 (%) and attention–gradient agreement", "",
               report.md_table(["model", *head], rows), ""]
        md += [CONSTANT_NOTE, ""] if any("†" in r[1] for r in rows) else []
    rows = [row(m, s["table1b"][m], ref_1b.get(m, (None, None)),
                f"{(n := s['n_unlabeled'][m]):,}" + seen_text(n, s["unlabeled_seen"]["table1b"][m]))
            for m in SEMI_METHODS if m in s["table1b"]]
    if rows:
        paper_nul = f"{PAPER_N_UL[column]:,}" if column in PAPER_N_UL else "–"
        md += [f"Table 1b (semi-supervised, each method at its largest N_ul; the paper's N_ul: {paper_nul})", "",
               report.md_table(["model", "N_ul", *head], rows), ""]
        md += [CONSTANT_NOTE, ""] if any("†" in r[2] for r in rows) else []
        md += [SEEN_NOTE, ""] if any("seen" in r[1] for r in rows) else []
    if s["table2"]:
        aucs = [a for t in s["table2"].values() if (a := (t.get("roc_auc_score") or {}).get("mean")) is not None]
        chance = (f" Ours rank the evidence tokens at chance (ROC-AUC {min(aucs):.3f}–{max(aucs):.3f} ≈ 0.5)."
                  if aucs and max(abs(a - 0.5) for a in aucs) < 0.05 else "")
        rows = [[METHOD_LABELS.get(m, m) + (" (semi)" if m != "vanilla" else "") + _constant_mark(t),
                 *(f"{report.fmt(t[k], 3)} / {report.num(r, 3)}"
                   for (k, _), r in zip(RATIONALE_MEASURES, PAPER_TABLE_2.get(m, (None,) * 3), strict=True))]
                for m, t in s["table2"].items()]
        n_uls = sorted({s["n_unlabeled"][m] for m in s["table2"] if m in s["n_unlabeled"]})
        semi = f"; the semi-supervised models at N_ul = {' / '.join(f'{n:,}' for n in n_uls)}" if n_uls else ""
        semi += " (the sentences they drew: Table 1b)" if any(seen_text(n, s["unlabeled_seen"]["table1b"][m])
                                                              for m, n in s["n_unlabeled"].items()) else ""
        semi += " (no unlabeled pool prepared: the VAT term on the labeled sentences alone)" if n_uls == [0] else ""
        md += [f"Table 2: {TABLE_2_NAMES[s['evidence']]}, ours / paper (ERASER movies){semi}", "",
               report.md_table(["model", *(label for _, label in RATIONALE_MEASURES)], rows), "",
               f"Paper: a model optimised for rationales reaches {PAPER_TABLE_2_RATIONALE_MODEL} AUPRC. AUPRC averages "
               "every document, as ERASER's score_soft_tokens does (sklearn's precision_recall_curve + auc: one "
               "without evidence scores 0.5 and one that is all evidence 1.0, whatever the attention); average "
               "precision and ROC-AUC skip such single-class documents, as ERASER's code does."
               + chance, ""]
    return md


def fig2_table(ds: str, s: dict, ratios: list[float] | tuple = ()) -> list[str]:
    """Fig. 2's points of one data set: dev F1 per method and N_ul, with the sentences seen where fewer, and which
    of `ratios` (fig2.ratios) asked for more than the unlabeled pool (train.fig2_points trained those at all of it)."""
    n_uls = sorted({int(n) for points in s["fig2"].values() for n in points})
    if not n_uls:
        return []
    capped = ", ".join(f"{r:g}" for r in ratios if s.get("n_labeled") and round(r * s["n_labeled"]) > n_uls[-1])
    head = [f"{n:,}" + (f" ({n / s['n_labeled']:.1f}×)" if s.get("n_labeled") else "") for n in n_uls]
    rows = [[METHOD_LABELS.get(m, m), *(report.fmt(p := points.get(str(n)), 2) + fig2_marks(p, n) for n in n_uls)]
            for m, points in s["fig2"].items()]
    return [f"{ds}: dev F1 (%) at N_ul =", "", report.md_table(["model", *head], rows), "",
            *(x for note, mark in ((SEEN_NOTE, "seen"), (FIG2_CONSTANT_NOTE, "†"))
              if any(mark in cell for r in rows for cell in r) for x in (note, "")),
            *([f"fig2.ratios {capped} × N_l ask for more than the {n_uls[-1]:,} unlabeled sentences of {ds}'s pool: "
               f"trained at all {n_uls[-1]:,} ({n_uls[-1] / s['n_labeled']:.1f}×).", ""] if capped else [])]


def diagnosis_markdown(ds: str, s: dict, linear: dict) -> list[str]:
    """Our networks beside a linear model on the same labeled sentences (evaluate.linear_baseline): whether weak
    results come from the code or the labeled data (package docstring). Test F1: of the learned ones (no †) only."""
    rows = [t for tab in (s["table1a"], s["table1b"]) for t in tab.values() if t.get("dev_auc") and t.get("f1")]
    if not rows or linear["dev_auc"] is None:  # (a null one is in the note of missing values)
        return []
    auc, f1 = [t["dev_auc"]["mean"] for t in rows], [t["f1"]["mean"] for t in rows if not _constant_mark(t)]
    gap = linear["dev_auc"] - max(auc)
    all_positive = ", ".join(f"{k.removesuffix('_f1_all_positive')} F1 {v:.2f}" for k, v in linear.items()
                             if k.endswith("_f1_all_positive"))
    return [f"Diagnosis ({ds}, ours): on the same {linear['n_labeled']:,} labeled sentences and vocabulary a TF-IDF "
            f"logistic regression (untuned) reaches dev ROC-AUC {linear['dev_auc']:.3f} and test F1 {linear['f1']:.2f} "
            f"(for scale, the constant classifier that calls every sentence positive: {all_positive}); our "
            f"networks reach dev AUC {min(auc):.3f}–{max(auc):.3f} and test F1 " + (f"{min(f1):.2f}–{max(f1):.2f} "
            "(constant classifiers † aside). " if f1 else "– (each a constant classifier †). ") + (
                f"Every network stays at least {gap:.3f} AUC below the linear model: the amount of labeled data, "
                "not the code, limits this run (the network learns a synthetic keyword task to 100 % and fits "
                "its training set; its dev AUC and the linear model's rise with the labeled count: package docstring)."
                if gap > 0.01 else "The networks reach the linear model: the labeled data do not cap them here."), ""]


def settings_markdown(cfg, records: dict[str, dict]) -> list[str]:
    """The perturbation settings the models were trained with (SPEC: the attention ε is ours, report it), each ε per
    data set as ε/√T per token (RMS) and its share of the model's embedding rows or score spread (evaluate.py)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)  # (ε, perturbs the scores) → the records trained with it
    for r in (r for m in METHODS for r in records.values() if r.get("method") == m and r.get("eps")):
        groups[r["eps"], r["method"].startswith("attention_")].append(r)
    parts = []
    for (e, scores), recs in sorted(groups.items()):  # sizes per data set: the mean over its models and seeds
        per_ds = {ds: [r for r in recs if r["dataset"] == ds] for ds in sorted({r["dataset"] for r in recs})}
        of = "the score spread" if scores else "a row"
        sizes = "; ".join(f"{ds} {np.mean([r['eps_per_token'] for r in rs]):.2f} per token in RMS, "
                          f"{np.nanmean([r['eps_share'] for r in rs]):.0%} of {of}"
                          for ds, rs in per_ds.items() if all(r.get("eps_share") is not None for r in rs))
        labels = ", ".join(dict.fromkeys(METHOD_LABELS[r["method"]] for r in recs))
        parts.append(f"{number_text(e)} for {labels}" + (f" ({sizes})" if sizes else ""))
    alpha = ("per token (`alpha_norm: token`): on the attention scores a sign-gradient step, |r_t| = ε/√T"
             if cfg.alpha_norm == "token" else "over the sentence (`alpha_norm: sentence`): AT's/VAT's direction")
    grid = sorted({float(e) for r in records.values() for e in (r.get("eps_selection") or {}).get("dev", {})})
    chosen = (f"; the attention ε of each model: its best dev {cfg.selection} of {', '.join(map(number_text, grid))} "
              "(the word-level ε's are fixed, Miyato's and Sato's scaled: only the attention side is tuned on dev, "
              "which favours it in the attention-vs-word claims)") if grid else ""
    return [f"Perturbations (ε: the norm of r per sentence, over its real tokens): ε = {'; '.join(parts)}{chosen}; "
            f"ξ = {cfg.xi:g}, K = {cfg.power_iterations}, λ = {cfg.lam:g}; iAT/iVAT normalise α {alpha}.", ""] \
        if groups else []


def summarize(cfg, params: dict):
    records = report.gather(PAPER, keys := metrics_files(cfg), schema=SCHEMA)
    for key, family in ((k, a["family"]) for k, a in keys.items() if "family" in a):  # Fig. 2: its family's methods
        if sorted(found := records[key]["curves"]) != sorted(methods := fig2_methods(cfg, family)):
            raise report.mismatch(records[key].path, "curves", ", ".join(found) or "none", ", ".join(methods),
                                  f"params.yaml's attention_vat.fig2.methods ({family} family)")
    summary_dir = Path("plots") / PAPER / "summary"
    per_ds = {ds: dataset_summary(g) for ds, g in sorted(group(records).items())}
    words, flags, close = claims(per_ds)
    md = [f"Attention VAT / iVAT against word- and attention-level AT/VAT on {', '.join(f'**{d}**' for d in per_ds)}; "
          + (f"{n} seeds (mean ± std), " if (n := len({r["seed"] for r in records.values()})) > 1 else "1 seed, ")
          + f"{sum('method' in r for r in records.values())} trained models (and Fig. 2's runs). Corr. = Pearson r "
          "between the attention weights and Jain & Wallace's (J&W) gradient importance |∂ŷ/∂e·e| per sentence, "
          "averaged (Pearson as in the source summary 004); Kendall τ is J&W's.", ""]
    md += settings_markdown(cfg, records)
    if "rt_snippets" in per_ds:
        md += ["rt_snippets (Rotten Tomatoes snippets, SST's kind of sentence) is the offline stand-in: its rows stand "
               "beside the paper's SST columns, but the numbers are not comparable (other data, smaller model, fewer "
               "epochs); the verdicts judge the paper's qualitative claims.", ""]
    if undefined := sum(r.get("corr_undefined", 0) for r in records.values()):  # (none in Fig. 2's records)
        md += [f"Note: {undefined} test sentence(s) over all models have no defined correlation (fewer than two "
               "words, or constant attention or importance); they are left out of the averages. A value shown as "
               "\"–\" is undefined for every seed; \"(k of n)\" marks a mean over the k seeds where it is defined.", ""]
    for ds, s in per_ds.items():
        md += tables_markdown(ds, s)
        if (Path("metrics") / PAPER / ds / "linear_baseline.json").exists():  # ours: evaluate.linear_baseline
            linear = report.gather(PAPER, [key := f"{ds}/linear_baseline"]).check(LINEAR)
            md += diagnosis_markdown(ds, s, {**linear[key], "dev_auc": linear.value(key, "dev_auc")})
    if fig2 := fig2_figure(per_ds, summary_dir / "fig2_unlabeled.png"):
        md += ["Fig. 2: dev F1 (our selection score) vs the unlabeled count N_ul, for attention_vat.fig2.methods. "
               "The paper plots, without numbers, its dev score (metric unnamed) rising up to about 7× the labeled "
               "count.", "", *(x for d, s in per_ds.items() for x in fig2_table(d, s, cfg.fig2.ratios)),
               f"![Fig. 2]({fig2})", ""]
    if maps := attention_figure(records, summary_dir / "attention_examples.png"):
        md += ["Attention weights over a few test sentences, one row per method (first seed; semi-supervised methods "
               "at their largest N_ul; * = evidence token):", "", f"![attention maps]({maps})", ""]
    outside = [ds for ds in per_ds if ds not in PAPER_COLUMN]  # e.g. eraser_movies: the paper's Table 2 only
    md += ["Claims (on our numbers, means over seeds" + (f"; {', '.join(outside)} only in the rationale claim, as in "
           "the paper: its Table 1 and Fig. 2 are SST's and IMDB's" if outside else "") + "):", ""]
    md += [f"- {PAPER_CLAIMS[c]}: **{words[c]}**{report.spread_mark(close[c])}" for c in PAPER_CLAIMS] + [""]
    summary = {"datasets": per_ds, "claims": {c: flags[c] for c in PAPER_CLAIMS}, "claim_verdicts": words,
               "claims_within_spread": close, "run": report.run_summary(records.values())}
    return report.Section(PAPER, "attention_vat — virtual adversarial training on attention (source 004)",
                          "\n".join(md), summary, PAPER_CLAIMS)


def fig2_figure(per_ds: dict, out_path: Path) -> str | None:
    """dev F1 (mean ± std over seeds) against N_ul, a panel per data set, † points ringed; None if no method has 2."""
    colors = dict(word_vat="tab:blue", word_ivat="tab:cyan", attention_vat="tab:red", attention_ivat="tab:orange")
    panels = {ds: s["fig2"] for ds, s in per_ds.items() if any(len(p) >= 2 for p in s["fig2"].values())}
    if not panels:
        return None
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (ds, methods) in zip(axes[0], panels.items(), strict=True):
        for m, points in methods.items():
            if pts := sorted((int(n), s["mean"], s["std"]) for n, s in points.items() if s is not None):
                x, y, e = np.array(pts).T
                ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=3, color=colors[m], label=METHOD_LABELS[m])
            if constant := [(int(n), s["mean"]) for n, s in points.items() if s and _constant_mark(s)]:
                ax.plot(*zip(*constant, strict=True), "o", ms=9, mfc="none", mec="k", label=f"{METHOD_LABELS[m]} †")
        if (n_labeled := per_ds[ds].get("n_labeled")) and 7 * n_labeled <= ax.get_xlim()[1]:  # (else half empty)
            ax.axvline(7 * n_labeled, color="gray", ls=":", lw=0.8)  # the paper's largest N_ul
            ax.text(7 * n_labeled, ax.get_ylim()[0], r"$7 N_l$ ", fontsize=8, color="gray", va="bottom", ha="right")
        ax.set_title(ds, fontsize=9), ax.set_xlabel(r"$N_{ul}$ (unlabeled sentences)"), ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("dev F1 (%)"), axes[0, -1].legend(fontsize=7)
    fig.suptitle("Fig. 2: dev F1 vs amount of unlabeled data", fontsize=10)
    return report.save_figure(fig, out_path)


def _example_rows(records: dict[str, dict]) -> tuple[list[str], list[list[dict]]] | tuple[None, None]:
    """(method labels, each one's examples.json rows): first data set and seed, semi methods at their largest N_ul."""
    records = {k: r for k, r in records.items() if "method" in r}  # not the Fig. 2 curves
    if not records:
        return None, None
    first = min(records.values(), key=lambda r: (r["dataset"], r["seed"]))
    chosen: dict[str, str] = {}  # label → key
    for key, rec in sorted(records.items(), key=lambda kv: kv[1]["n_unlabeled"]):  # largest last
        if (rec["dataset"], rec["seed"]) == (first["dataset"], first["seed"]):
            chosen[METHOD_LABELS[rec["method"]] + (" (semi)" if rec["setting"] == "semi" else "")] = key
    order = [METHOD_LABELS[m] for m in METHODS] + [METHOD_LABELS[m] + " (semi)" for m in SEMI_METHODS]
    labels = sorted(chosen, key=order.index)
    paths = [Path("plots") / PAPER / "variants" / chosen[label] / "examples.json" for label in labels]
    rows = [report.Record(read_json(path, expect=dict, stage="eval_attention_vat"), path)["examples"] for path in paths]
    return (labels, rows) if any(rows) else (None, None)


def attention_figure(records: dict[str, dict], out_path: Path) -> str | None:
    """One heat map per example sentence: methods × words, colour = attention weight."""
    labels, rows = _example_rows(records)
    if labels is None:
        return None
    import matplotlib.pyplot as plt
    n_examples = len(reference := max(rows, key=len))  # the first with the most examples
    fig, axes = plt.subplots(n_examples, 1, figsize=(9, (0.32 * len(labels) + 1.2) * n_examples), squeeze=False)
    for j, (ax, example) in enumerate(zip(axes[:, 0], reference, strict=True)):
        words = example["words"]
        grid = np.full((len(labels), len(words)), np.nan)
        for i, r in enumerate(rows):
            if j < len(r) and len(r[j]["attention"]) == len(words):
                grid[i] = r[j]["attention"]
        image = ax.imshow(grid, aspect="auto", cmap="Reds", vmin=0, vmax=np.nanmax(grid, initial=0.0) or 1)  # (1: none)
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="attention")  # (each sentence its own scale)
        evidence = example.get("evidence") or [0] * len(words)
        ax.set_xticks(range(len(words)), [w + ("*" if e else "") for w, e in zip(words, evidence, strict=True)],
                      rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"test sentence {example['index']} (label {'positive' if example['label'] else 'negative'})",
                     fontsize=8)
    fig.tight_layout()
    return report.save_figure(fig, out_path)
