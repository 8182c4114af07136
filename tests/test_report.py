"""replab.report: missing (null / NaN / inf) metrics never crash the report; they show as – with a note."""

from __future__ import annotations

import json
import math
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from replab import report
from replab.io import DataError, write_json
from replab.params import ParamError


def test_mean_std_by_hand():
    s = report.mean_std([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3) and s["n"] == 3 and "missing" not in s
    assert s["std"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert report.mean_std([5]) == {"mean": 5.0, "std": 0.0, "n": 1}


def test_mean_std_skips_and_counts_missing_values():
    """A diverged run's `"test_loss": null` used to end the report with a TypeError in the sum."""
    s = report.mean_std([1.0, None, float("nan"), 3.0, float("inf"), np.float64("nan")])
    assert s == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2, "missing": 4}
    assert report.mean_std([None, float("nan")]) == {"mean": None, "std": None, "n": 0, "missing": 2}


def test_fmt_shows_missing_as_a_dash_and_partial_counts():
    assert report.fmt(report.mean_std([None])) == "–"
    assert report.fmt(None) == "–"
    assert report.fmt(report.mean_std([1.0, None, 3.0])) == "2.00 ± 1.41 (2 of 3)"
    assert report.fmt(report.mean_std([1.0, 3.0]), 1) == "2.0 ± 1.4"
    assert report.fmt((float("nan"), 0.1)) == "–"
    assert report.fmt(report.mean_std([0.136])) == "0.14"  # one seed: no "± 0.00"
    assert report.fmt(report.mean_std([8.0, None])) == "8.00 (1 of 2)"


def test_num_prints_one_value_or_a_dash():
    assert report.num(0.8523, 3) == "0.852" and report.num(7, 2) == "7.00"
    assert [report.num(v) for v in (None, float("nan"), float("inf"), "x", True)] == ["–"] * 5


def test_greater_calls_float_equal_means_a_tie():
    """aae_ssl's Table 1 at Nl = 1000 once read "AAE(y,z) < AAE(z)" and the claim held on means 12.049999833 vs
    12.050000206: the same error counts, averaged in float32."""
    assert report.greater({"mean": 12.050000206}, {"mean": 12.049999833}) is False
    assert report.greater(12.049999833, 12.050000206) is False
    assert report.greater(12.06, 12.05) is True and report.greater(1e-9, 0.0) is True


def test_verdicts_and_claims_with_missing_values():
    missing, some = report.mean_std([None]), report.mean_std([0.2, 0.4])
    assert report.band_verdict(missing, (0.1, 0.01)) == "– (missing)"
    assert report.band_verdict(some, (0.3, 0.0)) == "within band"
    assert report.greater(some, 0.25) is True and report.greater(0.1, some) is False
    assert report.greater(missing, some) is None and report.greater(some, None) is None
    assert report.greater(float("nan"), 0.5) is None
    assert report.all_hold([True, True]) is True
    assert report.all_hold([True, None]) is None and report.all_hold([None, False]) is False
    assert report.all_hold([]) is None
    assert report.plot_values([1, None, float("inf"), 2.5])[::3] == [1.0, 2.5]
    assert all(math.isnan(v) for v in report.plot_values([None, float("inf")]))


def test_records_note_each_missing_variant_and_metric(in_tmp):
    write_json(in_tmp / "metrics/toy/a-0.json", {"test_loss": float("nan"), "roc_auc": {"3": np.float64("nan"),
                                                                                      "5": 0.75}})
    write_json(in_tmp / "metrics/toy/a-1.json", {"test_loss": 0.5, "roc_auc": {"3": 0.5, "5": 0.25}})
    records = report.gather("toy", ["a-0", "a-1"])
    assert records.stats(["a-0", "a-1"], "test_loss") == {"mean": 0.5, "std": 0.0, "n": 1, "missing": 1}
    assert records.value("a-0", "roc_auc.5") == 0.75 and records.value("a-0", "roc_auc.3") is None
    with pytest.raises(DataError, match=r"^metrics/toy/a-1.json: no_such_metric: missing \(run `dvc repro"):
        records.value("a-1", "no_such_metric")
    note = report.missing_note("toy")
    assert note.startswith("Missing values (2; NaN or infinite in the run")
    assert "`a-0`: test_loss; `a-0`: roc_auc.3." in note
    assert report.missing_note("other") == ""


def test_the_report_stage_survives_a_diverged_run_and_names_it(in_tmp, monkeypatch):
    """End to end through report.main: a NaN loss and an undefined ROC-AUC become – and one note."""

    @dataclass(frozen=True)
    class Config:
        seeds: list[int]

    def summarize(cfg, params):
        records = report.gather("toy", [f"m-{s}" for s in cfg.seeds] + ["anomaly"])
        loss = records.stats([f"m-{s}" for s in cfg.seeds], "test_loss")
        auc = records.value("anomaly", "roc_auc_mean")
        md = report.md_table(["model", "test loss", "ROC-AUC"], [["m", report.fmt(loss, 4),
                                                                    report.fmt((auc, 0.0)) if auc else "–"]])
        return report.Section("toy", "toy paper", md, {"test_loss": loss, "roc_auc": auc,
                                                        "claim": report.greater(auc, 0.5)})

    module = types.ModuleType("replab.papers.toy")
    module.Config, module.summarize = Config, summarize
    monkeypatch.setitem(sys.modules, "replab.papers.toy", module)
    monkeypatch.setattr(report, "PAPERS", ("toy",))
    monkeypatch.setattr(report, "paper_module", lambda name: module)
    monkeypatch.setattr(report, "REPORT_PATH", in_tmp / "plots/report.md")
    (in_tmp / "params.yaml").write_text("toy:\n  seeds: [0, 1]\nmeta:\n  profile: quick\n")
    write_json(in_tmp / "metrics/toy/m-0.json", {"test_loss": float("nan")})  # diverged
    write_json(in_tmp / "metrics/toy/m-1.json", {"test_loss": float("nan")})
    write_json(in_tmp / "metrics/toy/anomaly.json", {"roc_auc_mean": float("nan")})  # one-class split
    report.main()
    text = (in_tmp / "plots/report.md").read_text()
    assert "| m | – | – |" in text
    assert ("Missing values (3; NaN or infinite in the run, written as null, shown as – and left out of means): "
            "`m-0`: test_loss; `m-1`: test_loss; `anomaly`: roc_auc_mean.") in text
    import json

    summary = json.loads((in_tmp / "metrics/toy.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    assert summary == {"test_loss": {"mean": None, "std": None, "n": 0, "missing": 2}, "roc_auc": None,
                       "claim": None}



def test_claims_at_a_glance_gives_every_claim_in_words_with_its_verdict():
    """The report's first table: each section's claims in order, in its words (the key where it gave none), each
    verdict, the counts, and the devices trained on; a claim text's '|' cannot split its row."""
    sections = [
        report.Section("a", "A", "", {"claims": {"x": True, "y": None},
                                      "run": {"devices": "cpu (AMD EPYC, AVX2)", "seeds": 3},
                                      "claims_within_spread": {"x": True, "y": False}}, {"x": "x beats y | z"}),
        report.Section("b", "B", "", {"claims": {"z": False},
                                      "run": {"devices": "cpu (AMD EPYC, AVX2); cuda (H200)", "seeds": 1},
                                      "claims_near_margin": {"z": True}}),
        report.Section("c", "C", "", {}),  # no claims: no rows
    ]
    assert report.claims_at_a_glance(sections) == [
        "## Claims at a glance", "",
        "1 holds, 1 does not, 1 not checkable; 1 marked (within the seeds' spread): a difference the verdict rests on "
        "(or, for a rule with a margin, its distance from the margin) is smaller than the seeds' standard deviation, "
        "so that more seeds, another CPU or a GPU can turn it (with one seed nothing is marked so: b trained one, so "
        "its close verdicts go without this mark); 1 marked (near its margin): a rule's fixed margin (censor's D_sim "
        "threshold) is met, or missed, by less than a bound set from how far the same code's run moved between two "
        "CPUs (the section gives both), so that another machine can turn it, one seed or many. Each paper's section "
        "gives the numbers. Trained on cpu (AMD EPYC, AVX2); "
        "cuda (H200): a verdict by a narrow margin can read otherwise on another CPU or GPU (README, Quick start).", "",
        "| paper | claim | verdict |\n|---|---|---|\n"
        "| [a](#a) | x beats y \\| z | **holds** (within the seeds' spread) |\n"
        "| [a](#a) | `y` | not checkable |\n| [b](#b) | `z` | **does not hold** (near its margin) |", ""]
    assert report.claims_at_a_glance([sections[2]]) == []

@pytest.mark.parametrize("x, reason", [
    (np.ones((50, 8)), "all 50 points are identical"),  # constant latents: TSNE segfaults on these
    (np.full((40, 3), 0.25) + np.random.default_rng(0).normal(size=(40, 3)) * 1e-150, "identical up to rounding"),
    (np.zeros((4, 8)), "4 point(s), fewer than 5"),
    (np.where(np.eye(6, 3) > 0, np.nan, 1.0 + np.arange(18).reshape(6, 3)), "3 of 6 points hold NaN"),
    (np.arange(10.0), "expected a 2-D array"),
])
def test_degenerate_embedding_inputs_are_detected(x, reason):
    assert reason in report.embedding_skip_reason(x)


def test_ordinary_latents_may_be_embedded():
    rng = np.random.default_rng(1)
    assert report.embedding_skip_reason(rng.normal(size=(30, 4))) is None
    two_clusters = np.repeat(rng.normal(size=(2, 4)), 15, axis=0)  # collapsed but not constant: fine for TSNE
    assert report.embedding_skip_reason(two_clusters) is None
    assert report.embedding_skip_reason(1e6 + rng.normal(size=(30, 4))) is None


def test_gather_names_the_first_missing_variant_and_counts_them(in_tmp):
    write_json(in_tmp / "metrics/toy/a-0.json", {"test_loss": 0.5})
    with pytest.raises(DataError) as err:
        report.gather("toy", ["a-0", "a-1", "a-2"])
    assert str(err.value) == ("metrics/toy/a-1.json: missing (2 variant(s) of the current sweep not evaluated; run "
                              "`dvc repro`)")
    write_json(in_tmp / "metrics/toy/stale-9.json", {"test_loss": 1.0})  # another sweep's file is ignored
    assert list(report.gather("toy", ["a-0"])) == ["a-0"]


@pytest.mark.parametrize(("ours", "paper", "lower_is_better", "verdict"), [
    ((7.0, 0.5), (7.07, 2.02), True, "within band"),  # |Δ| 0.07 ≤ 2·(2.02 + 0.5)
    ((7.0, 0.5), (12.0, 1.0), True, "better"),  # 5 below, band 3
    ((15.5, 0.5), (12.0, 1.0), True, "worse"),  # 3.5 above, band 3
    ((15.5, 0.5), (12.0, 1.0), False, "better"),  # higher is better (purity, AMI)
    ((15.0, 0.5), (12.0, 1.0), True, "within band"),  # exactly on the band's edge
])
def test_band_verdict_both_ways(ours, paper, lower_is_better, verdict):
    stat = {"mean": ours[0], "std": ours[1], "n": 2}
    assert report.band_verdict(stat, paper, lower_is_better) == verdict


def test_within_spread_flags_differences_the_seeds_spread_covers():
    close, far = {"mean": 12.05, "std": 0.07, "n": 3}, {"mean": 12.10, "std": 0.71, "n": 3}
    assert report.within_spread(close, far) and report.within_spread(far, close)  # 0.05 < 0.71
    assert not report.within_spread({"mean": 23.2, "std": 2.12, "n": 3}, {"mean": 28.95, "std": 0.78, "n": 3})
    assert not report.within_spread({**close, "n": 1}, far)  # one seed: no spread to compare against
    assert not report.within_spread(None, far) and not report.within_spread({**close, "mean": None}, far)
    # against a fixed threshold (no spread of its own): 90.4 ± 0.5 vs 90 is within, 91 ± 0.5 is not
    assert report.within_spread({"mean": 90.4, "std": 0.5, "n": 3}, 90.0)
    assert not report.within_spread({"mean": 91.0, "std": 0.5, "n": 3}, 90)
    assert not report.within_spread({"mean": 90.4, "std": 0.5, "n": 1}, 90.0)
    assert report.within_spread({"mean": 90.4, "std": 0.5, "n": 3}, np.float32(90.0))  # a numpy threshold too


@pytest.mark.parametrize(("checks", "within"), [
    ([(True, False), (True, True)], True),  # holds, but one comparison within the spread can fail
    ([(True, False), (True, False)], False),
    ([(False, True), (True, False)], True),  # fails only within the spread: it can turn
    ([(False, True), (False, False)], False),  # one failure outside the spread settles it
    ([(True, True), (None, False)], False),  # not testable: nothing to turn
    ([], False),
    ([(False, "detail", True)], True),  # (verdict, …, within): the first and the last of each tuple
])
def test_verdict_within_spread_asks_whether_the_deciding_comparisons_could_turn(checks, within):
    assert report.verdict_within_spread(checks) is within


@pytest.mark.parametrize(("mine", "others", "args", "verdict", "within"), [
    # strict: edge = noise = the larger std; margin 10 − 8 = 2 > 1 holds, |2 − 1| = 1 not < 1; with std 1.2,
    # 2 > 1.2 holds and |2 − 1.2| = 0.8 < 1.2
    ({"mean": 10.0, "std": 1.0}, {"mean": 8.0, "std": 0.5}, (2,), True, False),
    ({"mean": 10.0, "std": 1.2}, {"mean": 8.0, "std": 0.5}, (2,), True, True),
    # on a par (not strict, tolerance 0.25): edge −max(0.4, 0.25) = −0.4; margin −0.5 fails, |−0.5 + 0.4| = 0.1 < 0.4
    ({"mean": 70.0, "std": 0.4}, {"mean": 70.5, "std": 0.3}, (2, False, 0.25), False, True),
    ({"mean": 70.0, "std": 0.4}, {"mean": 71.5, "std": 0.3}, (2, False, 0.25), False, False),  # |−1.5 + 0.4| = 1.1
])
def test_beats_within_spread_measures_the_margin_from_beats_edge(mine, others, args, verdict, within):
    mine, others = {"A": {**mine, "n": 3}}, {"B": {**others, "n": 3}}
    assert report.beats("x", mine, others, *args)[0] is verdict
    assert report.beats_within_spread(mine, others, *args) is within
    assert report.beats_within_spread({"A": {**mine["A"], "n": 1}}, others, *args) is False  # one seed: no spread
    # a member that does not decide (mine's lowest and others' highest do) may have one seed: the mark stands
    assert report.beats_within_spread({**mine, "A2": {"mean": 99.0, "std": 0.0, "n": 1}}, others, *args) is within
    assert report.beats_within_spread({}, others, *args) is False and report.beats_within_spread(
        {"A": None}, others, *args) is False


def test_damaged_metrics_files_are_one_line_errors_naming_file_and_key(in_tmp, monkeypatch):
    """A top-level array, a missing or wrong-typed key, an overflowing number: DataError, never a traceback and
    never "NaN or infinite in the run"."""
    write_json(in_tmp / "metrics/toy/arr.json", [])
    with pytest.raises(DataError, match=r"^metrics/toy/arr.json: top level is an array, expected an object"):
        report.gather("toy", ["arr"])
    write_json(in_tmp / "metrics/toy/a-0.json", {"test_error": "x", "big": 1e308, "roc_auc": [0.5], "run": None,
                                                 "history": 5})
    records = report.gather("toy", ["a-0"])
    for metric, message in [("test_error", "test_error = 'x': not a number"), ("big", "big = 1e+308: out of range"),
                            ("roc_auc.3", "roc_auc: an array, expected an object"), ("nosuch", "nosuch: missing")]:
        with pytest.raises(DataError, match=rf"^metrics/toy/a-0.json: {re.escape(message)}"):
            records.stats(["a-0"], metric)
    with pytest.raises(DataError, match=r"^metrics/toy/a-0.json: run: null, expected an object"):
        report.run_summary(records.values())
    with pytest.raises(DataError, match=r"^metrics/toy/a-0.json: missing_key: missing"):
        records["a-0"]["missing_key"]

    @dataclass(frozen=True)
    class Config:
        seeds: list[int]

    def summarize(cfg, params):  # reads a value of the wrong type directly (history holds 5, not an object)
        return report.gather("toy", ["a-0"])["a-0"]["history"]["f1_seen"]

    module = types.ModuleType("replab.papers.toy")
    module.Config, module.summarize = Config, summarize
    monkeypatch.setattr(report, "PAPERS", ("toy",))
    monkeypatch.setattr(report, "paper_module", lambda name: module)
    monkeypatch.setattr(report, "REPORT_PATH", in_tmp / "plots/report.md")
    (in_tmp / "params.yaml").write_text("toy:\n  seeds: [0]\nmeta:\n  profile: quick\n")
    with pytest.raises(DataError) as err:
        report.main()
    assert str(err.value).startswith("metrics/toy/a-0.json: history: wrong type or range for the toy report "
                                     "(TypeError: 'int' object is not subscriptable)")
    assert "\n" not in str(err.value) and not (in_tmp / "plots/report.md").exists()


def test_numbers_beyond_a_floats_range_are_one_line_errors_naming_file_and_key(in_tmp, monkeypatch):
    """A 400-digit integer is valid JSON: it raised OverflowError inside the report's run summary (named as another
    file's key); a params.yaml whose `meta` is no mapping raised AttributeError after every summary was written."""
    write_json(in_tmp / "metrics/toy/a-0.json", {"big": 10**400, "run": {"device": "cpu", "seconds": 10**400}})
    records = report.gather("toy", ["a-0"])
    with pytest.raises(DataError, match=r"^metrics/toy/a-0.json: big = 10{39}…: out of range \(allowed: \|value\| ≤ "):
        records.stats(["a-0"], "big")
    with pytest.raises(DataError, match=r"^metrics/toy/a-0.json: run.seconds = 10{39}…: not a number in 0 … 1e\+100"):
        report.run_summary(records.values())
    for name, value, message in (("seconds", -1e99, r"run.seconds = -1e\+99: not a number in 0"),  # a duration
                                 ("samples_per_s", "x", r"run.samples_per_s = 'x': not a number in 0"),
                                 ("device", ["cpu"], r"run.device = \['cpu'\]: not a string")):
        write_json(in_tmp / "metrics/toy/b-0.json", {"run": {"device": "cpu", name: value}})
        with pytest.raises(DataError, match=rf"^metrics/toy/b-0.json: {message}"):
            report.run_summary(report.gather("toy", ["b-0"]).values())
    assert report.finite(10**400) is None and report.finite(-(10**400)) is None and report.finite(7) == 7.0

    @dataclass(frozen=True)
    class Config:
        seeds: list[int]

    module = types.ModuleType("replab.papers.toy")
    module.Config, module.summarize = Config, lambda cfg, params: report.Section("toy", "toy", "text", {"v": 1.0})
    monkeypatch.setattr(report, "PAPERS", ("toy",))
    monkeypatch.setattr(report, "paper_module", lambda name: module)
    monkeypatch.setattr(report, "REPORT_PATH", in_tmp / "plots/report.md")
    (in_tmp / "params.yaml").write_text("toy:\n  seeds: [0]\nmeta: quick\n")
    with pytest.raises(ParamError, match=r"^params\.yaml: meta = 'quick': must be a mapping \(meta\.profile"):
        report.main()
    assert not (in_tmp / "metrics/toy.json").exists() and not (in_tmp / "plots/report.md").exists()


@pytest.mark.parametrize(("record", "message"), [
    ({"test_error": -40.0}, "test_error = -40.0: out of range (allowed: 0 … 100, a percentage, or null"),
    ({"f1_seen": 250}, "f1_seen = 250: out of range (allowed: 0 … 100, a percentage"),
    ({"history": [{"user_accuracy": 10.0}, {"user_accuracy": 100.5}]}, "history.1.user_accuracy = 100.5"),
    ({"roc_auc": {"3": 1.2}}, "roc_auc.3 = 1.2: out of range (allowed: 0 … 1, a fraction"),
    ({"rationale": {"auprc": -0.1}}, "rationale.auprc = -0.1"),
    ({"test_kmeans_b_ari": -1.5}, "test_kmeans_b_ari = -1.5: out of range (allowed: -1 … 1"),
    ({"slant_r2_from_a": 1.01}, "slant_r2_from_a = 1.01: out of range (allowed: ≤ 1"),
    ({"test_kl_a": -0.5}, "test_kl_a = -0.5: out of range (allowed: ≥ -0.0001, a loss or squared error: ≥ 0 up to "
                          "float32 rounding"),
    ({"test_mse": -1e-3}, "test_mse = -0.001: out of range (allowed: -0.0001 … 1, a mean squared error of images"),
    ({"latent_corr_yz_mean_abs": 1.5}, "latent_corr_yz_mean_abs = 1.5: out of range (allowed: 0 … 1, a mean absolute"),
    # a hand-edited 1e6 dB flipped "the denoising autoencoder raises PSNR over the noisy input" to does not hold
    ({"psnr_noisy": 1e6}, "psnr_noisy = 1000000.0: out of range (allowed: 0 … 100, a PSNR in dB of images in [0, 1]"),
    ({"test_psnr": -50.0}, "test_psnr = -50.0: out of range (allowed: 0 … 100"),
], ids=["negative-error", "f1-over-100", "in-a-list", "per-class-auc", "nested", "ari", "r2", "kl", "mse",
        "mean-abs-corr", "psnr-huge", "psnr-negative"])
def test_a_measure_out_of_its_range_is_a_one_line_error_naming_file_and_key(in_tmp, record, message):
    """A hand-edited accuracy of -40 % entered the means and flipped a claim's verdict."""
    write_json(in_tmp / "metrics/toy/a-0.json", record)
    with pytest.raises(DataError) as err:
        report.gather("toy", ["a-0"])
    one_line = str(err.value)
    assert one_line.startswith(f"metrics/toy/a-0.json: {message}") and "\n" not in one_line
    assert "eval_toy" in one_line  # the stage that rewrites it


def test_measures_at_the_edges_of_their_ranges_and_unbounded_ones_are_read():
    record = report.Record({"test_error": 0, "dev_f1": 100.0, "roc_auc": {"0": 1.0}, "corr_pearson": -1.0,
                            "slant_r2_from_b": -3.5, "censor_loss": -78.7, "test_psnr": 100.0, "seed": 7,
                            "f1": None, "best_iteration": 600, "threads": 2, "test_kl_b": 0.0, "train_loss": 246.5,
                            "latent_corr_offdiag_mean_abs": 1.0, "test_kl_a": -3.7e-8},  # (a collapsed latent's KL
                           Path("metrics/toy/a-0.json"))                                    # in float32)
    assert record["roc_auc"]["0"] == 1.0 and record["slant_r2_from_b"] == -3.5 and record["f1"] is None


def test_a_file_that_disagrees_with_its_key_or_params_is_named_with_both_values(in_tmp):
    """Records.expect: autoencoder's anomaly.json of another run (model deep, score bce) was printed as this run's."""
    write_json(in_tmp / "metrics/toy/anomaly.json", {"model": "deep", "seed": 0, "held_out": [0, 3]})
    records = report.gather("toy", ["anomaly"])
    records.expect("anomaly", "params.yaml's toy.anomaly", seed=0, held_out=[0, 3])  # equal: nothing to say
    with pytest.raises(DataError) as err:
        records.expect("anomaly", "params.yaml's toy.anomaly", seed=0, model="simple")
    assert str(err.value) == ("metrics/toy/anomaly.json: model = 'deep', expected 'simple' from params.yaml's "
                              "toy.anomaly (params.yaml changed since its run, or a file of another run: run `dvc "
                              "repro`, which reruns what either changed)")
    with pytest.raises(DataError, match=r"^metrics/toy/anomaly.json: seed = 0, expected 1 from its key and params"):
        report.gather("toy", {"anomaly": {"model": "deep", "seed": 1}})  # gather's: the axes of the key


def test_the_run_summary_names_the_thread_counts_the_variants_were_trained_with():
    """runtime.threads is no training stage's param: DVC's run cache can restore a stage trained with another count
    (a queued run's share), so the summary says what the variants' metrics record, not what params.yaml asks."""
    run = {"device": "cpu", "device_name": "x", "cpu_capability": "AVX2", "torch": "2", "data_source": "d",
           "seconds": 1.0, "samples_per_s": 10.0}
    assert report.run_summary([{"run": {**run, "threads": 2}}, {"run": {**run, "threads": 2}}])["threads"] == "2"
    assert report.run_summary([{"run": {**run, "threads": 2}}, {"run": {**run, "threads": 1}}])["threads"] == "1, 2"
    assert report.run_summary([{"run": run}])["threads"] == "?"  # a record without the count
    assert report.run_summary([{"run": {**run, "threads": True}}])["threads"] == "?"  # a bool is no count
    # the distinct training seeds (the report's first table names the papers trained with one: nothing marked)
    assert report.run_summary([{"run": {**run, "seed": s}} for s in (0, 1, 1)])["seeds"] == 2
    assert report.run_summary([{"run": run}])["seeds"] == 0  # a record without its seed


def test_a_later_papers_bad_metrics_leave_every_summary_as_it_was(in_tmp, monkeypatch):
    """report.main wrote each paper's summary as it went: a failure in the second paper left the first's summary
    new and plots/report.md old."""

    @dataclass(frozen=True)
    class Config:
        seeds: list[int]

    def good(cfg, params):  # draws its figure, as every paper's summarize does
        import matplotlib.pyplot as plt

        report.save_figure(plt.figure(), in_tmp / "plots/one/summary/fig.png")
        return report.Section("one", "one", "text", {"value": 2.0})

    def bad(cfg, params):
        raise DataError("metrics/two/a-0.json: damaged")

    modules = {}
    for name, summarize in (("one", good), ("two", bad)):
        modules[name] = types.ModuleType(f"replab.papers.{name}")
        modules[name].Config, modules[name].summarize = Config, summarize
    monkeypatch.setattr(report, "PAPERS", ("one", "two"))
    monkeypatch.setattr(report, "paper_module", modules.__getitem__)
    monkeypatch.setattr(report, "REPORT_PATH", in_tmp / "plots/report.md")
    (in_tmp / "params.yaml").write_text("one:\n  seeds: [0]\ntwo:\n  seeds: [0]\nmeta:\n  profile: quick\n")
    write_json(in_tmp / "metrics/one.json", {"value": 1.0})
    with pytest.raises(DataError, match="metrics/two/a-0.json: damaged"):
        report.main()
    assert json.loads((in_tmp / "metrics/one.json").read_text()) == {"value": 1.0}
    assert not (in_tmp / "plots/report.md").exists()
    # the first paper's figure too (it was rewritten, showing new data beside the old summary), and no temp file
    assert list((in_tmp / "plots/one/summary").iterdir()) == [] and report._HELD is None
    monkeypatch.setattr(modules["two"], "summarize", good)
    report.main()
    assert json.loads((in_tmp / "metrics/one.json").read_text()) == {"value": 2.0}
    assert [p.name for p in (in_tmp / "plots/one/summary").iterdir()] == ["fig.png"]


def test_strict_gather_names_the_key_of_a_nan_or_infinite_number(in_tmp):
    """Every paper's evaluation writes strict JSON (an undefined measure as null), so a NaN or infinity in a metrics
    file is a hand edit: one line naming the file and the key, however deep (attention_vat's f1 set to NaN showed
    "–" and made claims "not measured" silently; so did autoencoder's test_loss, read as missing until the default
    was strict). `non_finite="missing"` still reads it as missing."""
    path = in_tmp / "metrics/toy/sub/a-0.json"  # a paper's metrics in a folder per data set: same stage
    path.parent.mkdir(parents=True)
    path.write_text('{"f1": 50.0, "curves": {"m": {"dev_f1": [1.0, NaN]}}, "auc": null}')
    assert report.gather("toy", ["sub/a-0"], non_finite="missing")["sub/a-0"]["curves"]["m"]["dev_f1"][1] is None
    with pytest.raises(DataError) as err:
        report.gather("toy", ["sub/a-0"])
    assert str(err.value).startswith("metrics/toy/sub/a-0.json: curves.m.dev_f1.1 = NaN: not a finite number (allowed: "
                                     "a number, or null where the measure is undefined")
    assert str(err.value).endswith("run `dvc repro -s -f eval_toy`)") and "\n" not in str(err.value)
    for token, shown in (("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e999", "Infinity")):
        path.write_text(f'{{"f1": {token}, "auc": null}}')
        with pytest.raises(DataError, match=rf"^metrics/toy/sub/a-0.json: f1 = {shown}: not a finite number"):
            report.gather("toy", ["sub/a-0"])
    path.write_text('{"f1": 50.0, "auc": null}')
    assert report.gather("toy", ["sub/a-0"])["sub/a-0"]["auc"] is None  # null: no error
    path.write_text('{"f1": NaN}')
    assert report.gather("toy", ["sub/a-0"], non_finite="missing")["sub/a-0"]["f1"] is None  # noted where read


def test_records_are_checked_against_a_schema_naming_file_and_key(in_tmp):
    """`schema` + `Records.check`: what a report reads beyond `Records.value` (counts, settings, names, null allowed
    or not), through replab.params' checks, in one line naming the file and the key; other keys are ignored."""
    toy = report.schema("Toy", {"n": (int, {"ge": 0, "le": 10}), "eps": (float | None, {"gt": 0.0}),
                                "method": (str, {"choices": ("a", "b")}), "note": (str | None, {"default": None})})
    for record, message in [({"eps": 1.0, "method": "a"}, "record.n: missing (required)"),
                            ({"n": 11, "eps": 1.0, "method": "a"}, "record.n = 11: must be <= 10"),
                            ({"n": 1.5, "eps": 1.0, "method": "a"}, "record.n = 1.5: must be an integer"),
                            ({"n": 1, "eps": -3, "method": "a"}, "record.eps = -3.0: must be > 0"),
                            ({"n": 1, "eps": 1.0, "method": "c"}, "record.method = 'c': not allowed (allowed: a, b)")]:
        write_json(in_tmp / "metrics/toy/a-0.json", record)
        with pytest.raises(DataError) as err:
            report.gather("toy", ["a-0"]).check(toy)
        assert str(err.value).startswith(f"metrics/toy/a-0.json: {message}") and "\n" not in str(err.value)
    write_json(in_tmp / "metrics/toy/a-0.json", {"n": 0, "eps": None, "method": "b", "other": [1, "x"]})
    records = report.gather("toy", ["a-0"])
    assert records.check(toy) is records and records.check(lambda record: toy) is records


def test_claim_detail_names_the_holding_part_of_a_claim_that_is_not_checkable_as_a_whole():
    """attention_vat's "semi VAT/iVAT above supervised AT/iAT": its Word half not checkable (constant models), its
    Attention half judged and holding, which read as numbers without a verdict."""
    assert report.claim_detail([(True, "a"), (True, "b")]) == "a; b"
    assert report.claim_detail([(None, "u"), (True, "a")]) == "holds: a; u"
    assert report.claim_detail([(None, "u"), (None, "v")]) == "u; v"
    assert report.claim_detail([(True, "a"), (False, "x"), (None, "u")]) == "fails: x; holds: a; u"
    assert report.claim_detail([(False, "x"), (None, "u")]) == "fails: x; u"
