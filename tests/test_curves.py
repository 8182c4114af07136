"""The curves stage: DVCLive metric files of every variant → one overlaid file per paper and metric."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, one_line_naming
from replab.curves import current_variants, gather, read_live_tsv, write
from replab.io import DataError


def log_variant(root: Path, paper: str, variant: str, values: dict[str, list[float]]) -> None:
    """Curves written by DVCLive itself (the format the training stages produce), as `replab train` logs them."""
    from dvclive import Live

    steps = max(len(v) for v in values.values())
    with Live(str(root / "plots" / paper / "curves" / variant), dvcyaml=False, save_dvc_exp=False,
              report=None) as live:
        for i in range(steps):
            for name, series in values.items():
                if i < len(series):
                    live.log_metric(name, series[i])
            live.next_step()


@pytest.fixture
def two_variants(in_tmp):
    log_variant(in_tmp, "p", "ae-0", {"loss/rec": [1.5, 0.75, 0.5], "val_error": [0.25, 0.125, 0.1]})
    log_variant(in_tmp, "p", "aae-0", {"loss/rec": [2.0, float("nan"), 1.0]})
    return in_tmp


def test_overlay_per_metric_from_dvclive_files(two_variants, capsys):
    curves = gather("p")
    assert curves == {
        "loss/rec": [("aae-0", 0, 2.0), ("aae-0", 2, 1.0), ("ae-0", 0, 1.5), ("ae-0", 1, 0.75), ("ae-0", 2, 0.5)],
        "val_error": [("ae-0", 0, 0.25), ("ae-0", 1, 0.125), ("ae-0", 2, 0.1)],
    }
    assert capsys.readouterr().err.splitlines() == ["curves: p aae-0: loss/rec: 1 non-finite value(s) left out"]
    out = write("p", curves)
    assert (out / "loss/rec.tsv").read_text() == (
        "variant\tstep\tloss/rec\naae-0\t0\t2\naae-0\t2\t1\nae-0\t0\t1.5\nae-0\t1\t0.75\nae-0\t2\t0.5\n")
    assert (out / "val_error.tsv").read_text().splitlines()[1:] == ["ae-0\t0\t0.25", "ae-0\t1\t0.125", "ae-0\t2\t0.1"]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["rec.tsv", "val_error.tsv"]


def test_only_the_named_variants_and_rewrite_drops_old_files(two_variants):
    assert set(gather("p", ["ae-0"])) == {"loss/rec", "val_error"}
    write("p", gather("p"))
    out = write("p", gather("p", ["aae-0"]))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tsv")) == ["loss/rec.tsv"]


def test_a_variant_without_curves_is_an_error_naming_its_folder(two_variants):
    with pytest.raises(DataError) as err:
        gather("p", ["ae-0", "gone-0"])
    one_line_naming(err, "plots/p/curves/gone-0/plots/metrics")


def test_a_file_not_in_dvclive_format_is_an_error_naming_it(in_tmp):
    path = in_tmp / "loss.tsv"
    path.write_text("step,loss\n0,1\n")
    with pytest.raises(DataError) as err:
        read_live_tsv(path)
    one_line_naming(err, str(path))
    path.write_text("step\tloss\n0\tabc\n")
    with pytest.raises(DataError) as err:
        read_live_tsv(path)
    one_line_naming(err, f"{path}:2")
    path.write_bytes(b"step\tloss\n0\t\xff\n")  # was UnicodeDecodeError's traceback
    with pytest.raises(DataError, match="not UTF-8 text at byte 12") as err:
        read_live_tsv(path)
    one_line_naming(err, str(path))
    path.write_text("timestamp\tstep\tloss\n1\t0\tinf\n2\t1\t0.5\n")  # Live.log_metric(..., timestamp=True)
    name, points = read_live_tsv(path)
    assert name == "loss" and points[1] == (1.0, 0.5) and math.isinf(points[0][1])



@pytest.mark.parametrize("text, where, message", [
    ("step\tloss\n0\t1\nnan\t0.5\n", 3, "step 'nan' is not a DVCLive step"),
    ("step\tloss\n0\t1\ninf\t0.5\n", 3, "step 'inf' is not a DVCLive step"),
    ("step\tloss\n0\t1\textra\n", 2, "expected 2 columns (step loss), got 3"),
    ("timestamp\tstep\tloss\n1\t-inf\t0.5\n", 2, "step '-inf' is not a DVCLive step"),
    ("step\tloss\n0\t1\n-5\t0.5\n", 3, "step '-5' is not a DVCLive step (allowed: a whole number from 0 to 2^53)"),
    ("step\tloss\n1e30\t0.5\n", 2, "step '1e30' is not a DVCLive step"),
    ("step\tloss\n2.5\t0.5\n", 2, "step '2.5' is not a DVCLive step"),
    # a file cut off while written: `0\t0.12` cut to `0\t0.1` would parse, so the missing line end is what tells
    ("step\tloss\n0\t1\n1\t0.1", 3, "the last line has no line end: a half-written file"),
    ("step\tloss", 1, "the last line has no line end"),
], ids=["nan-step", "inf-step", "extra-column", "timestamped-inf-step", "negative-step", "huge-step", "fraction-step",
        "cut-off-row", "cut-off-header"])
def test_a_step_that_is_no_counter_or_an_extra_column_is_an_error_naming_file_and_line(in_tmp, text, where, message):
    path = in_tmp / "loss.tsv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_live_tsv(path)
    one_line_naming(err, f"{path}:{where}")
    assert message in str(err.value)


def test_a_directory_named_like_a_metric_file_is_an_error_naming_it(two_variants):
    folder = Path("plots/p/curves/ae-0/plots/metrics/acc.tsv")
    folder.mkdir(parents=True)
    with pytest.raises(DataError) as err:
        gather("p", ["ae-0"])
    one_line_naming(err, str(folder))
    assert "a directory" in str(err.value)


def dvc_project(root, seeds: str, train_outs: str, other: str) -> None:
    """A DVC project (no Git) whose `train` stage is a matrix over `p.seeds`, with outputs `train_outs` (YAML list
    items), beside one more stage `other` (`name: out`)."""
    subprocess.run(["dvc", "init", "-q", "--no-scm"], cwd=root, check=True)
    (root / "params.yaml").write_text(f"p:\n  seeds: {seeds}\n")
    name, out = other.split(": ")
    (root / "dvc.yaml").write_text(
        "stages:\n  train:\n    matrix:\n      seed: ${p.seeds}\n    cmd: 'true'\n"
        f"    outs:\n{train_outs}  {name}:\n    cmd: 'true'\n    outs:\n      - {out}\n")


def test_current_variants_follow_the_expanded_matrix_not_stale_folders(in_tmp):
    dvc_project(in_tmp, "[0, 1]", "      - plots/p/curves/${key}\n      - models/p/${key}\n",
                "other: plots/q/curves/x")
    for name in ("0", "1", "7"):  # 7: left on disk by an earlier sweep
        log_variant(in_tmp, "p", name, {"loss": [1.0]})
    assert current_variants("p") == ["0", "1"]
    assert current_variants("q") == ["x"]


def test_a_stage_that_trains_several_variants_holds_their_folders(in_tmp):
    """attention_vat: a stage trains several variants into one output folder, one DVCLive folder per variant
    inside it; each variant is named by its own folder (in name order), stale stage folders are not drawn."""
    log_variant(in_tmp, "p", "s-0/b-s-0", {"loss": [2.0]})
    log_variant(in_tmp, "p", "s-0/a-s-0", {"loss": [1.0, 0.5]})
    log_variant(in_tmp, "p", "fig-0", {"f1": [3.0]})
    log_variant(in_tmp, "p", "s-7/a-s-7", {"loss": [9.0]})  # left on disk by an earlier sweep
    assert gather("p", ["s-0/a-s-0", "s-0/b-s-0", "fig-0"]) == {
        "loss": [("a-s-0", 0, 1.0), ("a-s-0", 1, 0.5), ("b-s-0", 0, 2.0)], "f1": [("fig-0", 0, 3.0)]}
    assert [v for v, _, _ in gather("p")["loss"]] == ["a-s-0", "a-s-0", "a-s-7", "b-s-0"]
    dvc_project(in_tmp, "[0]", "      - plots/p/curves/s-${key}\n", "fig: plots/p/curves/fig-0")
    assert current_variants("p") == ["s-0/a-s-0", "s-0/b-s-0", "fig-0"]
    # a stage with nothing to train (attention_vat's family without methods) leaves its folder empty: no variant
    (in_tmp / "plots/p/curves/s-0/a-s-0").rename(in_tmp / "a-s-0")
    (in_tmp / "plots/p/curves/s-0/b-s-0").rename(in_tmp / "b-s-0")
    assert current_variants("p") == ["fig-0"]
    assert gather("p", current_variants("p")) == {"f1": [("fig-0", 0, 3.0)]}


def test_the_command_writes_every_named_paper_without_importing_torch(in_tmp):
    """`replab curves aae_ssl censor`: both papers' files from one read of dvc.yaml, stale folders left out, and
    no paper module (so no torch: the stage runs in every experiment) imported; an unknown paper is one line
    listing the known ones, before anything is written."""
    dvc_project(in_tmp, "[0]", "      - plots/aae_ssl/curves/ae-${key}\n", "other: plots/censor/curves/sct-0")
    log_variant(in_tmp, "aae_ssl", "ae-0", {"loss": [1.0]})
    log_variant(in_tmp, "aae_ssl", "ae-7", {"loss": [9.0]})  # left on disk by an earlier sweep
    log_variant(in_tmp, "censor", "sct-0", {"f1": [0.5, 0.25]})
    code = ("import sys; from replab.cli import main; code = main(); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(code)")
    run = subprocess.run(["python", "-c", code, "curves", "aae_ssl", "censor"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (in_tmp / "plots/curves/aae_ssl/loss.tsv").read_text() == "variant\tstep\tloss\nae-0\t0\t1\n"
    assert (in_tmp / "plots/curves/censor/f1.tsv").read_text().splitlines()[1:] == ["sct-0\t0\t0.5", "sct-0\t1\t0.25"]
    bad = subprocess.run(["python", "-c", code, "curves", "censor", "cencor"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: paper 'cencor': unknown (allowed: aae_ssl, split_vae, censor, autoencoder, attention_vat)"]


def test_outside_a_dvc_repository_every_folder_counts(in_tmp):
    assert current_variants("p") is None


def test_the_plots_template_is_valid_vega_lite_with_dvc_anchors():
    template = json.loads((REPO / ".dvc/plots/variants.json").read_text())
    text = json.dumps(template)
    for anchor in ("DATA", "X", "Y", "TITLE", "X_LABEL", "Y_LABEL"):
        assert f"<DVC_METRIC_{anchor}>" in text
    assert template["encoding"]["color"]["field"] == "variant"
    assert template["$schema"].endswith("vega-lite/v5.json")
    # `dvc plots diff`: 20 colours (aae_ssl has 13 variants, attention_vat 14: the default 10 repeated), and the
    # revision legend drawn as the dash patterns it stands for (the default drew every revision as the same dot)
    assert template["encoding"]["color"]["scale"]["scheme"] == "category20"
    dash = template["encoding"]["strokeDash"]
    assert dash["field"] == "rev" and dash["legend"]["symbolType"] == "stroke"
    # one revision solid, the others patterns that differ in kind (dash, dot, dash-dot), not only in length:
    # Vega-Lite's defaults for 4 revisions (4-2, 2-1, 1-1) read alike at a 1.5 px stroke
    patterns = dash["scale"]["range"]
    assert patterns[0] == [1, 0] and len({tuple(p) for p in patterns}) == len(patterns) >= 4


def test_curves_of_an_unknown_paper_name_the_known_ones(capsys):
    from replab.cli import main

    assert main(["curves", "nosuch"]) == 2
    assert capsys.readouterr().err == ("error: paper 'nosuch': unknown (allowed: aae_ssl, split_vae, censor, "
                                       "autoencoder, attention_vat)\n")


def test_a_curve_of_another_metric_or_with_rows_out_of_order_is_an_error_naming_it(in_tmp):
    """`train.tsv` copied over `test.tsv` drew the train curve as the test one; rows appended twice or reversed
    drew a line back and forth: DVCLive heads a file's values with its name, and its steps increase."""
    path = in_tmp / "test.tsv"
    path.write_text("step\ttrain\n0\t1\n1\t0.5\n")
    with pytest.raises(DataError) as err:
        read_live_tsv(path)
    one_line_naming(err, str(path))
    assert "its values are headed 'train', not 'test' as DVCLive heads a test.tsv" in str(err.value)
    for text, line, message in (("step\ttest\n0\t1\n1\t0.5\n0\t1\n1\t0.5\n", 4, "step 0 after step 1"),
                                ("step\ttest\n1\t0.5\n0\t1\n", 3, "step 0 after step 1"),
                                ("step\ttest\n0\t1\n0\t1\n", 3, "step 0 after step 0")):
        path.write_text(text)
        with pytest.raises(DataError) as err:
            read_live_tsv(path)
        one_line_naming(err, f"{path}:{line}")
        assert message in str(err.value) and "rows appended twice, or reordered?" in str(err.value)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "plots/metrics/val_error.tsv").unlink(),
     "plots/metrics/val_error.tsv: missing (plots/p/curves/ae-0/metrics.json lists val_error)"),
    (lambda d: (d / "plots/metrics/val_error.tsv").write_text("step\tval_error\n"),
     "plots/metrics/val_error.tsv: no rows, but plots/p/curves/ae-0/metrics.json ends it at 0.1"),
    (lambda d: (d / "plots/metrics/val_error.tsv").write_text("step\tval_error\n0\t0.25\n1\t0.125\n"),
     "plots/metrics/val_error.tsv: ends at 0.125 (step 1), but plots/p/curves/ae-0/metrics.json ends it at 0.1"),
    (lambda d: (d / "plots/metrics/extra.tsv").write_text("step\textra\n0\t1\n"),
     "plots/metrics/extra.tsv: not a metric of plots/p/curves/ae-0/metrics.json"),
    (lambda d: (d / "metrics.json").unlink(),
     "plots/p/curves/ae-0/metrics.json: missing (DVCLive writes it beside the curves)"),
    (lambda d: (d / "metrics.json").write_text('{"loss": {"rec": "x"}, "step": 2}'),
     "plots/p/curves/ae-0/metrics.json: loss/rec = 'x': expected a number"),
], ids=["deleted", "header-only", "rows-cut", "stray-file", "no-summary", "summary-not-numbers"])
def test_a_curve_that_is_not_what_dvclive_summarised_is_an_error_naming_it(two_variants, damage, message):
    """A variant's deleted, emptied or cut curve vanished from the plots or ended early without a word: DVCLive's
    metrics.json beside the curves holds every metric's last value, and each curve must end there."""
    damage(two_variants / "plots/p/curves/ae-0")
    with pytest.raises(DataError) as err:
        gather("p")
    assert message in str(err.value) and "rerun the variant's training stage" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_curve_ending_in_nan_or_inf_matches_dvclives_summary_of_it(in_tmp, capsys):
    """DVCLive writes a last value of NaN or ±inf into metrics.json as the string "nan" / "inf" / "-inf" (an
    undefined dev AUC on a one-class dev split, a diverged run): its curve is drawn without them, not refused."""
    log_variant(in_tmp, "p", "v-0", {"dev_auc": [0.5, float("nan")], "loss/a": [1.0, float("inf")],
                                     "loss/b": [1.0, float("-inf")]})
    assert json.loads((in_tmp / "plots/p/curves/v-0/metrics.json").read_text())["dev_auc"] == "nan"
    assert gather("p") == {"dev_auc": [("v-0", 0, 0.5)], "loss/a": [("v-0", 0, 1.0)], "loss/b": [("v-0", 0, 1.0)]}
    assert "v-0: dev_auc: 1 non-finite value(s) left out" in capsys.readouterr().err
    (in_tmp / "plots/p/curves/v-0/plots/metrics/dev_auc.tsv").write_text("step\tdev_auc\n0\t0.5\n")  # cut
    with pytest.raises(DataError, match=r"dev_auc.tsv: ends at 0.5 \(step 0\), but .*metrics.json ends it at nan"):
        gather("p")
