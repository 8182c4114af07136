"""End to end: `dvc repro` of the whole DAG in a temporary clone (smoke profile), reruns, experiments,
determinism and bad input. Marked slow (about two minutes on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import sh, smoke_clone

pytestmark = pytest.mark.slow

VOLATILE = {"seconds", "samples_per_s"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The project in a fresh, committed git repo (smoke profile) after `dvc repro` once."""
    return smoke_clone(tmp_path_factory.mktemp("clone"))


def strip_volatile(record):
    if isinstance(record, dict):
        return {k: strip_volatile(v) for k, v in record.items() if k not in VOLATILE}
    return record


def test_repro_writes_metrics_report_and_figures(repo):
    summary = json.loads((repo / "metrics/aae_ssl.json").read_text())
    assert set(summary["test_error"]["100"]) == {"ae", "aae_yz"}
    assert summary["run"]["devices"] and summary["dataset"] == "mnist5k"
    variant = json.loads((repo / "metrics/aae_ssl/aae_yz-100-0.json").read_text())
    assert {"device", "device_name", "torch", "python", "seconds", "samples_per_s", "seed",
            "data_source"} <= set(variant["run"])
    report = (repo / "plots/report.md").read_text()
    assert "Table 1" in report and "aae_ssl/summary/fig4_style_grid.png" in report
    for png in ("table1_test_error.png", "fig3_latent_correlation.png", "fig4_style_grid.png"):
        assert (repo / "plots/aae_ssl/summary" / png).stat().st_size > 1000
    assert list((repo / "plots/aae_ssl/curves/aae_yz-100-0/plots/metrics").glob("val_error.tsv"))


def test_status_clean_and_second_repro_runs_nothing(repo):
    assert "up to date" in sh(repo, "dvc", "status").stdout
    second = sh(repo, "dvc", "repro").stdout
    assert "Running stage" not in second


def test_same_seed_twice_gives_identical_metrics(repo):
    before = json.loads((repo / "metrics/aae_ssl/aae_yz-100-0.json").read_text())
    sh(repo, "dvc", "repro", "--force", "--single-item", "train_aae_ssl@aae_yz-100-0", "eval_aae_ssl@aae_yz-100-0")
    after = json.loads((repo / "metrics/aae_ssl/aae_yz-100-0.json").read_text())
    assert strip_volatile(before) == strip_volatile(after)


def test_exp_run_with_a_lambda_changes_metrics(repo):
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline results")
    # Hydra recomposes params.yaml from conf/, so the profile is named again (as a user does)
    sh(repo, "dvc", "exp", "run", "-n", "rec1", "-S", "profile=smoke", "-S", "runtime.progress=false",
       "-S", "aae_ssl.lambda_rec=1.0")
    shown = json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout)
    metrics = {}
    for commit in shown:
        revs = [commit] + [e for exp in (commit.get("experiments") or []) for e in exp["revs"]]
        for rev in revs:
            data = rev.get("data") or {}
            name = rev.get("name") or rev.get("rev")
            summary = (data.get("metrics") or {}).get("metrics/aae_ssl.json", {}).get("data")
            if summary:
                metrics[name] = (data["params"]["params.yaml"]["data"]["aae_ssl"]["lambda_rec"],
                                 summary["test_error"], summary["latent_corr_offdiag_mean_abs"])
    assert metrics["rec1"][0] == 1.0
    baseline = [v for k, v in metrics.items() if k != "rec1" and v[0] == 7.0]
    assert baseline and baseline[0][1:] != metrics["rec1"][1:]


def test_bad_input_fails_fast_with_one_line_and_no_output(repo, tmp_path):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    original = (repo / "params.yaml").read_text()
    try:
        params["aae_ssl"]["n_labeled"] = [4000]  # mnist5k has 350 training images per class
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        bad = sh(repo, "replab", "train", "aae_ssl", "ae-4000-0", "model=ae", "n_labeled=4000", "seed=0", check=False)
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines()[-1].startswith("error: params.yaml: aae_ssl.n_labeled = 4000")
        assert not (repo / "models/aae_ssl/ae-4000-0").exists()
        assert not (repo / "plots/aae_ssl/curves/ae-4000-0").exists()

        params["aae_ssl"]["n_labeled"] = [100]
        params["aae_ssl"]["models"] = ["ae", "gan"]
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        bad = sh(repo, "replab", "check", check=False)
        assert bad.returncode == 2 and "aae_ssl.models[1] = 'gan': not allowed" in bad.stderr
    finally:
        (repo / "params.yaml").write_text(original)

    raw = repo / "data/raw/mnist5k/mnist_5k.csv.gz"
    saved = raw.read_bytes()
    try:
        raw.chmod(0o644)
        raw.write_bytes(saved[: len(saved) // 2])
        bad = sh(repo, "replab", "prepare", "mnist5k", check=False)
        assert bad.returncode == 2 and "mnist_5k.csv.gz" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    finally:
        raw.write_bytes(saved)
