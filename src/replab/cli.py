"""`replab` command line: the entry point every dvc.yaml stage calls.

    replab download <dataset>                 data/raw/<dataset>/
    replab prepare  <dataset>                 data/processed/<dataset>/
    replab train    <paper> <key> [axis=value ...]   models/<paper>/<key>/, plots/<paper>/curves/<key>/
    replab evaluate <paper> <key> [axis=value ...]   metrics/<paper>/<key>.json, plots/<paper>/variants/<key>/
    replab evaluate <paper> all               the same for every variant in params.yaml (one process)
    replab curves   <paper> ...               plots/curves/<paper>/<metric>.tsv (variants overlaid)
    replab report                             metrics/<paper>.json, plots/report.md, summary figures
    replab compose [override ...]             params.yaml from conf/ (e.g. profile=paper)
    replab check                              validate every params section
    replab bench [paper ...] [--profile quick|paper] [--json PATH] [--process-defaults] [--seeds N]
                                                   training-step throughput vs a peer loop
    replab sweep <paper> key=v1,v2 ... [--run -j N]   queue a param grid as `dvc exp run --queue`
    replab sweep <paper> key=v1,v2 ... --executor slurm [--collect]   the grid as a SLURM job array
    replab compare <paper> [exp ...] [--format md|csv]  chosen experiments side by side

Errors in params or data end the command with one line on stderr naming the key or file, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time
import typing

from replab.io import DataError, PartialFailure, one_line, out_of_memory, require_writable, unwritable
from replab.papers import (
    EVALUATE_ALL,
    PAPERS,
    Variant,
    check_params,
    key_forms,
    paper_module,
    parse_variant,
    read_off_axes,
)
from replab.params import COMPILE_MODES, PARAMS_FILE, ParamError, read_params, refuse_special_file


def _variant_command(args, evaluate: bool) -> None:
    from replab.params import load_runtime, load_section

    module = paper_module(args.paper)
    params = read_params()
    cfg = load_section(module.Config, args.paper, params=params)
    runtime = load_runtime(params=params)
    variant = command_variant(args.paper, args.key, args.axes, cfg, evaluate, params[args.paper])
    if not evaluate:
        require_writable(variant.model_dir, variant.live_dir, variant.checkpoint_dir,
                         what=f"train {args.paper} {args.key}")
    (module.evaluate if evaluate else module.train)(cfg, runtime, variant)


def command_variant(paper: str, key: str, assignments: list[str], cfg, evaluate: bool,
                    section: dict | None = None) -> Variant:
    """The variant of `replab train|evaluate <paper> <key> axis=value …`: a special key (or `all` to evaluate)
    without axes, else `parse_variant` against the key's axes. Without axis=value arguments the axes are read off
    the key's last `-`-separated parts (`ae-100-0` → model=ae n_labeled=100 seed=0; `afl_mlp-1e-05-0` → λ = 1e-05,
    `read_off_axes`), and checked as given ones; with `section` (the paper's params.yaml section as written) also
    spelled as dvc.yaml spells them (`parse_variant`)."""
    module = paper_module(paper)
    if key == EVALUATE_ALL and not evaluate and hasattr(module, "all_variants"):
        raise ParamError(f"train {paper} {key}: `{key}` is for `replab evaluate`; training is one stage per variant "
                         f"(`dvc repro --glob 'train_{paper}*'`, or one of `dvc stage list`)")
    if key == EVALUATE_ALL and evaluate and not hasattr(module, "all_variants"):  # (else read as a broken key)
        raise ParamError(f"evaluate {paper} {key}: {paper} has no `{key}` evaluation" + key_forms(paper))
    every = evaluate and key == EVALUATE_ALL and hasattr(module, "all_variants")
    if (every or key in getattr(module, "SPECIAL_KEYS", ())) and not assignments:
        return Variant(paper, key, {})
    axes = module.axes_for(key) if hasattr(module, "axes_for") else module.AXES
    if assignments or len(key.split("-")) < len(axes):
        return parse_variant(paper, key, assignments, cfg, axes, section)
    read, complete = read_off_axes(key, axes, cfg)
    try:  # (an incomplete reading: parse_variant names the value that is not in its sweep)
        return parse_variant(paper, key, read, cfg, axes, section)
    except ParamError as err:
        if complete:
            raise
        raise ParamError(f"{err} (read off `{key}` as {' '.join(read)}; or give each axis as axis=value)") from None


def _compose(args) -> None:
    from replab.compare import compose
    from replab.io import atomic_path

    # through a link to the file it names (else the write would replace the link by a file, the target unchanged)
    with atomic_path(os.path.realpath(PARAMS_FILE), suffix=".yaml") as tmp:
        compose(tmp, args.overrides, f"compose {' '.join(args.overrides)}".rstrip())
        try:
            check_params(read_params(tmp))  # a bad override leaves params.yaml as it was
        except ParamError as err:
            raise ParamError(composed_value_error(str(err), args.overrides)) from None
    print(f"{PARAMS_FILE}: rewritten from conf/ ({' '.join(args.overrides) or 'no overrides'}) and checked")


def composed_value_error(message: str, overrides: list[str]) -> str:
    """A check's `params.yaml: …` about a freshly composed file, named by the command that composed it rather than
    by params.yaml (which it leaves unwritten): with the override that set a key the message names (its leading key
    or a `backticked` one, a section above either or a key below; the most specific override, the last of equals),
    `compose runtime.cuda_graph=maybe: runtime.cuda_graph = 'maybe': must be true or false`; with no overrides,
    `compose: from conf/: …`; otherwise all the overrides (the value may come from conf/ or an interpolation)."""
    prefix = f"{PARAMS_FILE}: "
    if not message.startswith(prefix):
        return message
    detail = message[len(prefix):]
    keys = {re.match(r"[\w.-]*", detail).group(), *re.findall(r"`([\w.-]+)`", detail)} - {""}

    def sets(override: str) -> bool:  # the override's key is a named key, a section above one, or a key below one
        name = override.split("=", 1)[0].lstrip("+~")  # (Hydra's list item `seeds.1` is below `seeds`)
        return any(k == name or k.startswith(f"{name}.") or name.startswith(f"{k}.") for k in keys)

    if named := [o for o in reversed(overrides) if sets(o)]:  # the last override of a key is the one Hydra keeps
        return f"compose {max(named, key=lambda o: len(o.split('=', 1)[0]))}: {detail}"
    if not overrides:
        return f"compose: from conf/: {detail}"
    return f"compose {' '.join(overrides)}: {detail}"


BENCH_STEPS = 30  # `replab bench --steps`' default: timed steps per round
CHECKED = "params.yaml passed `replab check`\n"  # constant: a passing check changes no downstream stage's deps
CHECKED_DATA = "params.yaml passed `replab check --data` on data/processed/\n"


def _bench(args) -> None:
    bench = importlib.import_module("replab.bench")
    if args.markdown and args.show is None:
        raise ParamError("bench --markdown: only with --show (it formats earlier results; measure with --json first)")
    if args.show is None:
        bench.main(args.papers, BENCH_STEPS if args.steps is None else args.steps, args.profile, args.json_path,
                   args.process_defaults, args.compile_mode, args.seeds, args.cuda_graph)
        return
    measuring = {"--steps": args.steps, "--profile": args.profile, "--json": args.json_path,
                 "--process-defaults": args.process_defaults or None, "--compile": args.compile_mode,
                 "--seeds": args.seeds, "--cuda-graph": args.cuda_graph or None}
    if given := [name for name, value in measuring.items() if value is not None]:  # (given at all, also 0 or "")
        raise ParamError(f"bench --show prints earlier results and measures nothing: give it without "
                         f"{', '.join(given)}")
    # `--show a.json aae_ssl`: argparse gives the paper to --show; a paper's name that is no file is a paper
    moved = [p for p in args.show if p in PAPERS and not os.path.isfile(p)]  # (metrics/ holds an aae_ssl/ folder)
    chosen = [p for p in args.papers if args.papers != list(PAPERS)]  # (the default: every paper)
    files = [p for p in args.show if p not in moved]
    if not files:
        raise ParamError(f"bench --show {' '.join(args.show)}: no JSON file given, only papers (give the files "
                         "written by `replab bench --json`)")
    bench.show(files, [*chosen, *moved] or args.papers, args.markdown)  # (paper names choose the papers shown)


def _check(args) -> None:
    if args.marker is not None:  # a marker that cannot be written fails before the check, as one line naming it
        from replab.params import check_writable

        check_writable(args.marker, "check --marker", markers=(CHECKED, CHECKED_DATA))  # data/*.checked
    if args.download_params is not None:  # replaced as a whole: a folder of other files is refused, not emptied
        from replab.data.registry import SOURCES
        from replab.params import check_replaceable_folder

        check_replaceable_folder(args.download_params, "check --download-params",
                                 lambda entry: entry.suffix == ".json" and entry.stem in SOURCES)
    params = read_params()
    check_params(params)
    if args.data:
        from replab.papers import check_data

        check_data(params)
    if args.marker is not None:  # check_params runs where the stages will run: a device it lacks stops it here,
        from replab.data.registry import check_local_mirrors  # and a local mirror it lacks (before DVC deletes a
        from replab.params import load_runtime  # download's verified copy to rerun it)

        check_local_mirrors(params)

        device = load_runtime(params=params).device
        if device not in ("auto", "cpu"):
            from replab.runtime import choose_device

            choose_device(device)
    print(f"{PARAMS_FILE}: ok{' with the prepared data' if args.data else ''}")
    if args.marker is not None:
        from replab.io import atomic_path

        with atomic_path(args.marker) as tmp:
            tmp.write_text(CHECKED_DATA if args.data else CHECKED)
    if args.download_params is not None:
        from replab.data.registry import write_download_params

        write_download_params(params, args.download_params)


def _sweep(a) -> None:
    from replab.compare import check_timeout

    waits = a.run_queue if a.executor == "queue" else a.collect
    if check_timeout(a.timeout) is not None and not waits:  # else accepted and never used
        raise ParamError(f"sweep --timeout: only with {'--run' if a.executor == 'queue' else '--collect'} "
                         "(it bounds the wait for the results)")
    if a.executor == "queue":
        if a.collect or a.only_failed:
            raise ParamError("sweep --collect / --only-failed: only with --executor slurm (queue: --run)")
        if not a.grid:
            raise ParamError("sweep: give the grid as key=v1,v2,...")
        importlib.import_module("replab.compare").sweep(
            a.paper, a.grid, a.profile, a.fixed, a.name, a.run_queue, 1 if a.jobs is None else a.jobs, a.dry_run,
            a.timeout, a.allow_dirty)
        return
    if a.run_queue or a.jobs is not None:
        raise ParamError(f"sweep {'--run' if a.run_queue else '-j/--jobs'}: only with --executor queue (slurm: the "
                         "array runs every point; --collect waits for the results)")
    slurm = importlib.import_module("replab.slurm")
    slurm.sweep(a.paper, a.grid, a.profile, a.fixed, a.name,
                slurm.Resources(a.partition, a.time, a.cpus_per_task, a.gres), a.dry_run, a.collect,
                a.only_failed, a.allow_dirty, a.git_remote, a.scratch, a.timeout)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line like every other replab error (argparse prints the whole usage
    first): `error: replab bench: argument --compile: invalid choice: 'fast' (choose from …) (see replab bench -h)`.
    Subcommand parsers are of the same class."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {one_line(' '.join(message.split()))} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="replab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from replab.data.registry import SOURCES  # names and kinds only: a source's module loads when it runs

    datasets = "one of: " + ", ".join(f"{name} ({source.kind})" for name, source in SOURCES.items())
    p = sub.add_parser("download", help="fetch (real) or generate (embedded) a data set")
    p.add_argument("dataset", help=datasets)
    p.set_defaults(run=lambda a: importlib.import_module("replab.data.registry").download(a.dataset))

    p = sub.add_parser("prepare", help="parse raw files into train/val/test arrays")
    p.add_argument("dataset", help=datasets)
    p.set_defaults(run=lambda a: importlib.import_module("replab.data.registry").prepare(a.dataset))

    for name, evaluate in (("train", False), ("evaluate", True)):
        p = sub.add_parser(name, help=f"{name} one dvc matrix item of a paper: one variant"
                           + (", or every variant (`all`; attention_vat: `evaluate-<dataset>`)" if evaluate else
                              " (attention_vat: every method of one family, `<dataset>-<setting>-<family>-<seed>`)"))
        p.add_argument("paper", help=f"one of: {', '.join(PAPERS)}")
        p.add_argument("key", help="variant key, as dvc.yaml's ${key}: e.g. ae-100-0 (aae_ssl), "
                       + ("evaluate-rt_snippets (attention_vat's one evaluation per dataset), or `all`" if evaluate
                          else "rt_snippets-supervised-attention-0 (attention_vat's families)"))
        p.add_argument("axes", nargs="*", default=[], help="axis=value for each sweep axis of the paper (default: read "
                       "off the key, e.g. ae-100-0 → model=ae n_labeled=100 seed=0)")
        p.set_defaults(run=lambda a, e=evaluate: _variant_command(a, e))

    p = sub.add_parser("curves", help="papers' DVCLive training curves, variants overlaid, for `dvc plots`")
    p.add_argument("papers", nargs="+", metavar="paper")
    p.set_defaults(run=lambda a: importlib.import_module("replab.curves").main(a.papers))

    p = sub.add_parser("report", help="summaries per paper and plots/report.md",
                       description="Read every paper's metrics/<paper>/*.json (written by its evaluation stage) and "
                                   "params.yaml; write metrics/<paper>.json (each summary: tables, claims, marks), "
                                   "the figures under plots/<paper>/summary/ and plots/report.md, every paper's "
                                   "numbers beside the paper's with a verdict per claim. The report stage of "
                                   "`dvc repro`; a damaged or missing metrics file stops it with one line naming the "
                                   "file and key, leaving every earlier output as it was.")
    p.set_defaults(run=lambda a: importlib.import_module("replab.report").main())

    p = sub.add_parser("compose", help="rewrite params.yaml from conf/ (as `dvc exp run` does), with overrides")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=paper aae_ssl.lambda_rec=5")
    p.set_defaults(run=_compose)

    p = sub.add_parser("check", help="validate params.yaml")
    p.add_argument("--marker", metavar="PATH", help="then write PATH (dvc.yaml's check_params stage: every stage "
                   "runs after it, so a bad value, or a runtime.device this machine lacks, stops `dvc repro` "
                   "before any stage deletes its outputs)")
    p.add_argument("--download-params", metavar="DIR", help="then write DIR/<name>.json for each of `datasets`: "
                   "the data.<name> params its download reads (mirror, …; dvc.yaml's download@<name> depends on "
                   "that file, not on preparation settings)")
    p.add_argument("--data", action="store_true", help="also check the limits that depend on the prepared data "
                   "(data/processed/: class counts, writers, vocabulary, pool sizes, window lengths), as training "
                   "would; dvc.yaml's check_data stage, after prepare and before any training stage")
    p.set_defaults(run=_check)

    p = sub.add_parser("bench", help="training-step throughput per paper")
    p.add_argument("papers", nargs="*", default=list(PAPERS), metavar="paper",
                   help=f"papers to benchmark, one after another (default: all: {', '.join(PAPERS)})")
    p.add_argument("--steps", type=int, metavar="N",
                   help="timed training steps per round, after 3 warm-up steps (4 for a loop replayed as CUDA "
                        f"graphs); each paper runs 2 rounds of its loop and its peer loop (default: {BENCH_STEPS})")
    p.add_argument("--profile", help="sizes of conf/profile/<name>.yaml, e.g. quick or paper, with conf/'s runtime "
                                     "section (params.yaml is neither read nor changed; default: params.yaml)")
    p.add_argument("--json", dest="json_path", metavar="PATH",
                   help="also write the results as JSON, after every paper (default: none)")
    p.add_argument("--process-defaults", action="store_true",
                   help="without replab's process settings (glibc malloc keeping freed blocks, no NaN fill of new "
                        "tensors), to measure them")
    p.add_argument("--compile", dest="compile_mode", metavar="MODE", choices=COMPILE_MODES,
                   help="replab's loop through torch.compile in this mode (runtime.compile / compile_mode; "
                        f"{', '.join(COMPILE_MODES)}; reduce-overhead = CUDA graphs on a GPU; without it: params' "
                        "runtime.compile)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="replab's loop with runtime.cuda_graph: each training iteration replayed as one CUDA graph "
                        "(every paper, and aae_ssl's --seeds; on a CUDA device; without it: params' "
                        "runtime.cuda_graph)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="also time N ≥ 2 seeds trained together as one vmap-batched model (aae_ssl) against N "
                        "single-seed steps (default: off)")
    p.add_argument("--show", nargs="+", action="extend", metavar="JSON",
                   help="print the results of earlier --json runs (other machines: a CPU's beside a GPU's) as one "
                        "table instead of measuring; paper names (before or after the files) choose its papers")
    p.add_argument("--markdown", action="store_true",
                   help="with --show: README's step-time table in Markdown instead (a row per paper, a column per "
                        "file: ms per step, × the peer, seeds together; aae_ssl's projected sweep)")
    p.set_defaults(run=_bench)

    p = sub.add_parser("sweep", help="queue a param grid of one paper as DVC experiments (dvc exp run --queue)")
    p.add_argument("paper", help=f"whose section the grid's short keys are in: one of {', '.join(PAPERS)}")
    p.add_argument("grid", nargs="*", default=[], metavar="key=v1,v2,...",
                   help="values per key (cartesian product); keys relative to the paper's section or full dotted")
    p.add_argument("--profile", help="profile named in every run (default: params.yaml's meta.profile)")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                   help="an override shared by every grid point (repeatable)")
    p.add_argument("--name", help="experiment names <name>-1, <name>-2, ... (default: DVC's random names)")
    p.add_argument("--run", dest="run_queue", action="store_true",
                   help="then `dvc queue start -j N` and wait for the results")
    p.add_argument("-j", "--jobs", type=int, help="queue workers (at most the CPU cores / GPUs; default 1)")
    p.add_argument("--timeout", type=float, help="with --run (slurm: --collect): give up after this many seconds "
                   "(the queue and any reruns of lost experiments together)")
    p.add_argument("--dry-run", action="store_true", help="print the dvc commands only")
    p.add_argument("--allow-dirty", action="store_true",
                   help="queue even though untracked files (which the queued runs would not see) exist")
    p.add_argument("--executor", choices=["queue", "slurm"], default="queue",
                   help="queue: `dvc exp run --queue` here; slurm: an sbatch job array (replab.slurm)")
    slurm = p.add_argument_group("--executor slurm")
    slurm.add_argument("--partition", help="sbatch --partition")
    slurm.add_argument("--time", help="sbatch --time per job (e.g. 2:00:00)")
    slurm.add_argument("--cpus-per-task", type=int, help="sbatch --cpus-per-task")
    slurm.add_argument("--gres", help="sbatch --gres of each array task, e.g. gpu:1")
    slurm.add_argument("--collect", action="store_true",
                       help="wait for the array, `dvc exp pull` its experiments, compare them, name failed points "
                            "(without a grid: of the earlier sweep --name)")
    slurm.add_argument("--only-failed", action="store_true", help="resubmit the failed points of sweep --name")
    slurm.add_argument("--git-remote", default="origin", help="Git remote the tasks push experiments to")
    slurm.add_argument("--scratch", help="where tasks clone the commit, on the node (default: $TMPDIR or /tmp)")
    p.set_defaults(run=_sweep)

    p = sub.add_parser("compare", help="chosen experiments of one paper side by side (Markdown or CSV)")
    p.add_argument("paper", help=f"whose params and summary metrics (metrics/<paper>.json) to set side by side: "
                   f"one of {', '.join(PAPERS)}")
    p.add_argument("exps", nargs="*", default=[],
                   help="experiment names or revs, `workspace`, `HEAD` (default: all of HEAD)")
    p.add_argument("--baseline", action="store_true", help="add the HEAD commit as the first row")
    p.add_argument("-A", "--all-commits", action="store_true", help="look for experiments of every commit")
    p.add_argument("--format", default="md", choices=["md", "csv"], help="Markdown table or CSV (default: md)")
    p.add_argument("--out", help="write the table to this file instead of stdout")
    p.add_argument("--metrics", help="regex: only the summary metrics whose dotted name matches")
    p.add_argument("--all-params", action="store_true", help="every param of the paper, not just the differing")
    p.add_argument("--transpose", action="store_true", help="one column per experiment")
    p.add_argument("--only-changed", action="store_true",
                   help="only the metrics and run fields that differ between the experiments")
    p.set_defaults(run=lambda a: importlib.import_module("replab.compare").compare(
        a.paper, a.exps, a.format, a.out, a.baseline, a.all_commits, a.metrics, a.all_params, a.transpose,
        a.only_changed))
    parser.set_defaults(command_parsers=sub.choices)  # a stray argument is named with its command's -h
    return parser


def check_working_dir(command: str) -> None:
    """ParamError when run in a subdirectory of a DVC repository holding dvc.yaml: every path replab reads and writes
    (params.yaml, conf/, data/, metrics/, plots/, models/) is relative to the repository root. From `metrics/`,
    `replab curves` said no curves existed and `replab compare` said metrics/<paper>.json was missing."""
    from pathlib import Path

    from replab.isolation import dvc_root

    root = dvc_root()
    if root is not None and root != Path.cwd().resolve() and (root / "dvc.yaml").is_file():
        raise ParamError(f"replab {command}: run from the repository root, {root} (not {Path.cwd()}): the paths it "
                         "reads and writes are relative to it")


def main(argv: list[str] | None = None) -> int:
    """Run one command; `argv=None` (a process entry point: console script, `python src/replab`, `python -m
    replab`) first makes sure the code running is the enclosing repository's (replab.isolation)."""
    if argv is None:
        from replab.isolation import run_own_code

        try:
            run_own_code(sys.argv[1:])
        except RuntimeError as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            return 2
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "sweep" and all("=" in e and not e.startswith("-") for e in extra):
        args.grid = [*args.grid, *extra]  # grid points after an option: argparse places a `*` positional once
    elif extra and args.command == "compare" and not any(e.startswith("-") for e in extra):
        args.exps = [*args.exps, *extra]  # experiment names after an option (`compare aae_ssl -A rec-1`), likewise
    elif extra:
        args.command_parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    started = time.perf_counter()
    try:
        if not (args.command == "bench" and args.show):  # (bench --show reads the files it is given, from anywhere)
            check_working_dir(args.command)
            refuse_special_file(PARAMS_FILE)  # (compare reads it through DVC alone, which would block)
        args.run(args)
    except (ParamError, DataError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except PartialFailure as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        if (message := unwritable(err)) is None:
            raise
        print(f"error: {one_line(message)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError is a RuntimeError
        section = (f"data.{args.dataset}" if args.command in ("download", "prepare") else
                   getattr(args, "paper", "") if args.command in ("train", "evaluate") else "")
        if (message := out_of_memory(err, section)) is None:
            raise
        print(f"error: {one_line(message)}", file=sys.stderr)
        return 2
    if args.command in ("download", "prepare", "train", "evaluate", "curves", "report"):  # the stages that take time
        print(f"{args.command} finished in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
