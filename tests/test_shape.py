"""Every paper has the same shape (model, train, evaluate, report), the package has no import cycle and nothing
imports the CLI, and dvc.yaml's code deps follow the shape: editing an evaluation or a figure never retrains."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_repo
from replab.papers import PAPERS

SRC = REPO / "src"
PACKAGE = SRC / "replab"
PAPERS_DIR = PACKAGE / "papers"
SHAPE = ("__init__.py", "model.py", "train.py", "evaluate.py", "report.py")
MAX_LINES = 450  # a paper module that reads top to bottom against its paper in one sitting
# Plumbing every stage goes through (parsing params, atomic writes, dataset lookup) and the tools that are no
# stage's code: not listed as code deps, so that touching them does not rerun the whole DAG.
NOT_DEPS = {"replab.io", "replab.params", "replab.data.registry", "replab.bench", "replab.report", "replab.papers"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path:
    base = SRC.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """replab modules that `name` imports anywhere in its file (top level or inside functions)."""
    tree = ast.parse(MODULES[name].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from replab import runtime` imports the module replab.runtime; `from replab.io import x` replab.io
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs or {node.module}
    return {m for m in found if m in MODULES}


def test_every_paper_has_the_same_files_and_public_names():
    import importlib

    for paper in PAPERS:
        files = sorted(p.name for p in (PAPERS_DIR / paper).glob("*.py"))
        assert files == sorted(SHAPE), paper
        module = importlib.import_module(f"replab.papers.{paper}")
        assert len((module.__doc__ or "").splitlines()) > 10, f"{paper}: a docstring that reads against the paper"
        for name in ("Config", "train", "evaluate", "summarize"):
            assert hasattr(module, name), f"{paper}.{name}"
    assert {p.name for p in PAPERS_DIR.glob("*.py")} == {"__init__.py"}, "one package per paper"


def test_no_file_under_papers_is_long():
    lines = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in PAPERS_DIR.rglob("*.py")}
    long = {path: n for path, n in lines.items() if n > MAX_LINES}
    assert not long


def test_nothing_imports_the_cli_and_the_import_graph_has_no_cycle():
    graph = {name: imports(name) - {name} for name in MODULES}
    # `python -m replab` (replab/__main__.py) is the command line's other entry point, not a user of it
    assert not [m for m, deps in graph.items() if "replab.cli" in deps and m != "replab.__main__"]
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " → ".join(path[path.index(dep):] + [node, dep]))
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def closure(files: list[str]) -> set[str]:
    """The shared modules the given paper files import, followed through shared modules (not through plumbing)."""
    todo = [module_name(REPO / f) for f in files]
    seen: set[str] = set()
    while todo:
        for dep in imports(todo.pop()):
            if dep not in seen and dep not in NOT_DEPS and not dep.startswith("replab.papers."):
                seen.add(dep)
                todo.append(dep)
    return {str(module_path(m).relative_to(REPO)) for m in seen}


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if d.startswith("src/")}


def stages_of(paper: str, prefix: str) -> dict[str, dict]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: s for name, s in stages.items()
            if name == f"{prefix}_{paper}" or name.startswith(f"{prefix}_{paper}_")}


@pytest.mark.parametrize("paper", PAPERS)
@pytest.mark.parametrize("kind, prefix", [("train", "train"), ("evaluate", "eval")])
def test_stage_deps_are_the_stage_code_and_the_shared_modules_it_imports(paper, kind, prefix):
    own = [f"src/replab/papers/{paper}/model.py", f"src/replab/papers/{paper}/{kind}.py"]
    stages = stages_of(paper, prefix)
    assert stages, f"no {prefix}_{paper} stage"
    for name, stage in stages.items():
        deps = code_deps(stage)
        other = {f"src/replab/papers/{paper}/{f}" for f in SHAPE} - set(own)
        assert set(own) <= deps, name
        assert not deps & other and f"src/replab/papers/{paper}" not in deps and "src/replab/papers" not in deps, name
        # exactly the modules it runs: a missing one leaves stale results, an extra one reruns it for nothing
        assert deps - set(own) == closure(own), (name, closure(own) - deps, deps - set(own) - closure(own))


@pytest.mark.parametrize("paper", [p for p in PAPERS if p != "attention_vat"])
def test_one_evaluation_stage_measures_every_trained_variant(paper):
    """`eval_<paper>` runs `replab evaluate <paper> all`: the paper's all_variants names exactly the models its
    training stages write (DVC's matrix items, resolved from the committed params.yaml); the stage depends on all
    of them and on the sweep lists, and owns the paper's metrics and variant-plot folders."""
    from dvc.repo import Repo

    from replab.papers import paper_module
    from replab.params import load_section, read_params

    module = paper_module(paper)
    with Repo(str(REPO)) as repo:
        stages = list(repo.index.stages)
    trained = {str(out.def_path) for stage in stages if stage.name.startswith(f"train_{paper}")
               for out in stage.outs if str(out.def_path).startswith(f"models/{paper}/")}
    cfg = load_section(module.Config, paper, params=read_params(REPO / "params.yaml"))
    assert {str(v.model_dir) for v in module.all_variants(cfg)} == trained
    evaluations = {name: s for name, s in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items()
                   if name.startswith(f"eval_{paper}")}
    assert list(evaluations) == [f"eval_{paper}"]
    stage = evaluations[f"eval_{paper}"]
    assert "matrix" not in stage and stage["cmd"] == f"python src/replab evaluate {paper} all"
    assert f"models/{paper}" in stage["deps"]
    assert {f"{paper}.{field}" for field in module.AXES.values()} <= set(stage["params"])
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    assert outs == [f"metrics/{paper}", f"plots/{paper}/variants"]


def test_evaluating_all_replaces_the_paper_folders_only_once_every_variant_is_written(in_tmp):
    from replab.io import write_json
    from replab.papers import Variant, evaluate_each

    def write(variant: Variant) -> None:
        write_json(variant.metrics_path, {"key": variant.key})
        variant.plots_dir.mkdir(parents=True)

    def names(folder: str) -> list[str]:
        return sorted(p.name for p in (in_tmp / folder).iterdir())

    write_json(in_tmp / "metrics/x/gone.json", {})  # a variant no longer in params.yaml
    (in_tmp / "plots/x/variants/gone").mkdir(parents=True)
    variants = [Variant("x", key, {}) for key in ("a", "b")]
    every = Variant("x", "all", {})

    def fails_on_b(variant: Variant) -> None:
        if variant.key == "b":
            raise RuntimeError("killed")
        write(variant)

    with pytest.raises(RuntimeError):
        evaluate_each(every, variants, fails_on_b, progress=False)
    assert names("metrics/x") == ["gone.json"] and names("plots/x/variants") == ["gone"]
    assert names("metrics") == ["x"] and names("plots/x") == ["variants"]  # no temporary folder left
    evaluate_each(every, variants, write, progress=False)
    assert names("metrics/x") == ["a.json", "b.json"] and names("plots/x/variants") == ["a", "b"]
    assert names("metrics") == ["x"] and names("plots/x") == ["variants"]
    evaluate_each(Variant("x", "c", {}), variants, write, progress=False)  # one variant: in place
    assert names("metrics/x") == ["a.json", "b.json", "c.json"]


def test_report_depends_on_every_paper_model_and_report():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["report"]
    deps = code_deps(stage)
    for paper in PAPERS:
        assert {f"src/replab/papers/{paper}/model.py", f"src/replab/papers/{paper}/report.py"} <= deps, paper
        assert not deps & {f"src/replab/papers/{paper}/train.py", f"src/replab/papers/{paper}/evaluate.py"}, paper
    assert {"src/replab/report.py", "src/replab/papers/__init__.py"} <= deps
    own = sorted(d for d in deps if d.startswith("src/replab/papers/") and not d.endswith("__init__.py"))
    shared = deps - set(own) - {"src/replab/report.py", "src/replab/papers/__init__.py"}
    assert shared == closure([*own, "src/replab/report.py"])  # the shared modules the paper files import, exactly


@pytest.mark.slow
def test_editing_evaluation_or_report_code_never_retrains(smoke_baseline, tmp_path):
    """After a smoke `dvc repro` (a copy of the session's smoke baseline), a comment appended to every paper's
    evaluate.py and report.py puts the evaluation stages and the report out of date, and no training stage."""
    repo = copy_repo(smoke_baseline, tmp_path / "clone")
    for paper in PAPERS:
        for name in ("evaluate.py", "report.py"):
            with open(repo / "src/replab/papers" / paper / name, "a") as f:
                f.write("# an edit that changes no training\n")
    status = json.loads(subprocess.run(["dvc", "status", "--json"], cwd=repo, capture_output=True, text=True,
                                       check=True).stdout)
    stale = {name.split("@")[0] for name in status}
    assert not [s for s in stale if s.startswith("train_")], stale
    assert "report" in stale
    for paper in PAPERS:
        assert f"eval_{paper}" in stale or any(s.startswith(f"eval_{paper}_") for s in stale), (paper, stale)


def test_a_text_set_is_prepared_after_every_raw_set_it_may_read(tmp_path):
    """prepare@sst reads the lm1b pool and the fastText vectors (or aclImdb's unsup reviews) by its params, besides
    data/raw/sst: each such download must come before it in DVC's graph, or a fresh `dvc repro` may run it first."""
    from dvc.repo import Repo

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for name in ("dvc.yaml", "params.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["datasets"] = ["mnist5k", "lm1b", "fasttext", "sst", "imdb"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    Repo.init(str(tmp_path))
    with Repo(str(tmp_path)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        stages = {stage.name: stage for stage in graph}
        upstream = {stage.name for stage in graph.successors(stages["prepare@sst"])}
    assert {"download@sst", "download@lm1b", "download@fasttext", "download@imdb"} <= upstream


def test_training_stages_rerun_when_runtime_compile_changes_where_it_applies():
    """`dvc exp run -S runtime.compile=true` retrains every paper that trains through torch.compile and leaves
    attention_vat, which trains eagerly (and says so), alone."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        if name.startswith("train_"):
            listed = {"runtime.compile", "runtime.compile_mode"} & set(stage.get("params", []))
            assert listed == (set() if "attention_vat" in name else {"runtime.compile", "runtime.compile_mode"}), name


def test_every_training_stage_reruns_when_runtime_cuda_graph_changes():
    """Every paper's loop replays its iterations under runtime.cuda_graph (rt.StepGraph), so `dvc exp run -S
    runtime.cuda_graph=true` on a GPU machine retrains every training stage (the eager runs' records are not taken
    for the replayed ones)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    training = [name for name in stages if name.startswith("train_")]
    assert len(training) >= 12 and [n for n in training if "runtime.cuda_graph" not in stages[n]["params"]] == []


def test_an_attention_vat_stage_lists_the_perturbation_params_of_its_family_only():
    """An ε sweep retrains only the methods it perturbs: ε_attention reruns the attention stages and the attention
    methods' Fig. 2 points, ε_word the word ones, neither the vanilla stage. Before, Fig. 2 was one stage for both
    families: an ε_attention sweep retrained Word VAT's points too."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    reads = {"vanilla": set(),
             "word": {"lam", "eps_word", "eps_word_interpretable", "neighbours", "dropout_in_perturbed", "xi",
                      "power_iterations", "alpha_norm"},
             "attention": {"lam", "eps_attention", "eps_attention_grid", "xi", "power_iterations", "alpha_norm"}}
    adversarial = set().union(*reads.values())
    families = {}
    for name, stage in stages.items():
        if name.startswith("train_attention_vat") and "family" in stage.get("matrix", {}):
            (family,) = stage["matrix"]["family"]
            params = {p.removeprefix("attention_vat.") for p in stage["params"]}
            fig2 = "setting" not in stage["matrix"]  # Fig. 2 trains at eps_attention, never a grid
            assert params & adversarial == reads[family] - ({"eps_attention_grid"} if fig2 else set()), name
            families.setdefault(family, set()).update(["fig2"] if fig2 else stage["matrix"]["setting"])
    assert families == {"vanilla": {"supervised"}, "word": {"supervised", "semi", "fig2"},
                        "attention": {"supervised", "semi", "fig2"}}


def test_every_stage_runs_after_the_params_check():
    """DVC deletes a stage's outputs before its command starts: a bad value (`dvc exp run -S autoencoder.seeds=[]`)
    rejected only by the evaluation stage that reads it deleted metrics/autoencoder/*.json. So every stage descends
    from check_params, which reads every param."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        stages = {stage.addressing: stage for stage in graph}
        check = stages.pop("check_params")
        assert [(dep.def_path, dep.params) for dep in check.params] == [("params.yaml", [])]  # every param
        orphans = [name for name, stage in stages.items() if not nx.has_path(graph, stage, check)]
    assert not orphans and len(stages) > 40, orphans


def test_the_committed_lock_holds_the_stages_of_dvc_yaml_only():
    """DVC keeps the dvc.lock entry of a stage removed from dvc.yaml (a renamed train_attention_vat_fig2 stayed), and
    every stage a repro runs then parses and rewrites it with the rest of the lock."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        stages = {stage.addressing for stage in repo.index.stages}
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    assert sorted(locked - stages) == []


@pytest.mark.slow
def test_a_bad_value_stops_the_pipeline_before_any_stage_deletes_its_outputs(smoke_baseline, tmp_path):
    repo = copy_repo(smoke_baseline, tmp_path / "clone")
    before = {p: p.read_bytes() for p in (repo / "metrics/autoencoder").glob("*.json")}
    assert before
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["autoencoder"]["seeds"] = []  # read first by eval_autoencoder, which deleted its metrics before failing
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True)
    assert result.returncode != 0
    assert "error: params.yaml: autoencoder.seeds: must list at least one value" in result.stdout + result.stderr
    assert {p: p.read_bytes() for p in (repo / "metrics/autoencoder").glob("*.json")} == before
    assert (repo / "models/autoencoder").is_dir() and any((repo / "models/autoencoder").iterdir())
