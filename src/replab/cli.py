"""`replab` command line: the entry point every dvc.yaml stage calls.

    replab download <dataset>                 data/raw/<dataset>/
    replab prepare  <dataset>                 data/processed/<dataset>/
    replab train    <paper> <key> [axis=value ...]   models/<paper>/<key>/, plots/<paper>/curves/<key>/
    replab evaluate <paper> <key> [axis=value ...]   metrics/<paper>/<key>.json, plots/<paper>/<key>/
    replab report                             metrics/<paper>.json, plots/report.md, summary figures
    replab compose [override ...]             params.yaml from conf/ (e.g. profile=paper)
    replab check                              validate every params section
    replab bench [paper ...]                  training-step throughput

Errors in params or data end the command with one line on stderr naming the key or file, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replab.io import DataError
from replab.params import PARAMS_FILE, ParamError

PAPERS = ("aae_ssl", "split_vae", "autoencoder")


def paper_module(name: str):
    if name not in PAPERS:
        raise ParamError(f"paper {name!r}: unknown (allowed: {', '.join(PAPERS)})")
    return importlib.import_module(f"replab.papers.{name}")


@dataclass(frozen=True)
class Variant:
    """One point of a paper's sweep (one matrix item in dvc.yaml) and where its files live."""

    paper: str
    key: str
    axes: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return Path("models") / self.paper / self.key

    @property
    def live_dir(self) -> Path:
        return Path("plots") / self.paper / "curves" / self.key

    @property
    def metrics_path(self) -> Path:
        return Path("metrics") / self.paper / f"{self.key}.json"

    @property
    def plots_dir(self) -> Path:
        return Path("plots") / self.paper / "variants" / self.key


def parse_variant(paper: str, key: str, assignments: list[str], cfg: Any, axes: dict[str, str]) -> Variant:
    """`model=ae n_labeled=100 seed=0` → typed values, each checked against its sweep list in params."""
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or name not in axes:
            raise ParamError(f"{paper} variant {item!r}: expected axis=value with axis in {', '.join(axes)}")
        sweep = getattr(cfg, axes[name])
        allowed = sweep if isinstance(sweep, list) else [sweep]
        matches = [v for v in allowed if str(v) == raw]
        if not matches:
            raise ParamError(f"{PARAMS_FILE}: {paper}.{axes[name]}: variant {name}={raw!r} is not in the sweep "
                             f"(allowed: {', '.join(map(str, allowed))})")
        values[name] = matches[0]
    missing = [a for a in axes if a not in values]
    if missing:
        raise ParamError(f"{paper} variant: missing {', '.join(f'{a}=…' for a in missing)}")
    return Variant(paper, key, values)


def _variant_command(args, evaluate: bool) -> None:
    from replab.params import load_runtime, load_section

    module = paper_module(args.paper)
    cfg = load_section(module.Config, args.paper)
    runtime = load_runtime()
    if args.key in getattr(module, "SPECIAL_KEYS", ()) and not args.axes:
        variant = Variant(args.paper, args.key, {})
    else:
        variant = parse_variant(args.paper, args.key, args.axes, cfg, module.AXES)
    (module.evaluate if evaluate else module.train)(cfg, runtime, variant)


def _compose(args) -> None:
    from dvc.utils.hydra import compose_and_dump

    from replab.io import atomic_path

    with atomic_path(PARAMS_FILE, suffix=".yaml") as tmp:
        compose_and_dump(tmp, str(Path("conf").resolve()), None, "config", "", args.overrides)
    _check(args)


def _check(_args) -> None:
    from replab.data import registry
    from replab.params import load_runtime, load_section, read_params

    params = read_params()
    load_runtime(params=params)
    for name in params.get("datasets", []):
        registry.load_data_params(name, params=params)
    for paper in PAPERS:
        if paper in params:
            load_section(paper_module(paper).Config, paper, params=params)
    print(f"{PARAMS_FILE}: ok")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="fetch (real) or generate (embedded) a data set")
    p.add_argument("dataset")
    p.set_defaults(run=lambda a: importlib.import_module("replab.data.registry").download(a.dataset))

    p = sub.add_parser("prepare", help="parse raw files into train/val/test arrays")
    p.add_argument("dataset")
    p.set_defaults(run=lambda a: importlib.import_module("replab.data.registry").prepare(a.dataset))

    for name, evaluate in (("train", False), ("evaluate", True)):
        p = sub.add_parser(name, help=f"{name} one variant of a paper (one dvc matrix item)")
        p.add_argument("paper")
        p.add_argument("key", help="variant key, as dvc.yaml's ${key}")
        p.add_argument("axes", nargs="*", help="axis=value for each sweep axis of the paper")
        p.set_defaults(run=lambda a, e=evaluate: _variant_command(a, e))

    p = sub.add_parser("report", help="summaries per paper and plots/report.md")
    p.set_defaults(run=lambda a: importlib.import_module("replab.report").main())

    p = sub.add_parser("compose", help="rewrite params.yaml from conf/ (as `dvc exp run` does), with overrides")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=paper aae_ssl.lambda_rec=5")
    p.set_defaults(run=_compose)

    p = sub.add_parser("check", help="validate params.yaml")
    p.set_defaults(run=_check)

    p = sub.add_parser("bench", help="training-step throughput per paper")
    p.add_argument("papers", nargs="*", default=list(PAPERS))
    p.add_argument("--steps", type=int, default=30)
    p.set_defaults(run=lambda a: importlib.import_module("replab.bench").main(a.papers, a.steps))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        args.run(args)
    except (ParamError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.command in ("train", "evaluate", "report"):
        print(f"{args.command} finished in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
