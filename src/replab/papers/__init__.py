"""The registry of papers and the variant each dvc.yaml matrix item names.

Every paper is a package `replab.papers.<id>` of the same shape, read in this order:

    __init__.py   the docstring that reads against the paper (equations, our defaults and why), public names
    model.py      config dataclass, data access, networks, losses (equation numbers), the paper's numbers
    train.py      train(cfg, runtime, variant): fit, save          (training stages depend on model + train)
    evaluate.py   evaluate(cfg, runtime, variant): metrics, per-variant plot data   (evaluation: model + evaluate)
    report.py     summarize(cfg, params) -> replab.report.Section   (the report stage: model + report)

A package exports `Config`, `AXES` ({axis: sweep list field}, or `axes_for(key)`), optionally `SPECIAL_KEYS`
(stages outside the sweep, e.g. `style`), `train`, `check_data` (its train.py: the limits of its params that depend
on the prepared data), `evaluate`, `summarize` and optionally `bench_setup`, and
`all_variants(cfg)` where one evaluation stage measures every variant (`replab evaluate <paper> all`,
`evaluate_each`).
Adding a paper: create its package and append its id to `PAPERS` (the report follows this order).
This module imports no paper (they load lazily through `paper_module`) and nothing imports `replab.cli`,
so the import graph of replab has no cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from replab.params import PARAMS_FILE, ParamError

PAPERS: tuple[str, ...] = ("aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat")
EVALUATE_ALL = "all"  # `replab evaluate <paper> all`: every variant of params.yaml in one process (evaluate_each)


def check_paper(name: str) -> str:
    """`name` if it is a registered paper, else a ParamError listing the known ones (imports no paper)."""
    if name not in PAPERS:
        raise ParamError(f"paper {name!r}: unknown (allowed: {', '.join(PAPERS)})")
    return name


def paper_module(name: str) -> ModuleType:
    """The package of a registered paper; an unknown name is a ParamError listing the known ones."""
    return importlib.import_module(f"{__name__}.{check_paper(name)}")


# params.yaml's sections besides one per paper (`images` is conf/'s name for the image set, used in `datasets`)
SHARED_SECTIONS = ("meta", "runtime", "images", "datasets", "data")


def check_params(params: dict) -> None:
    """Every section of a params.yaml dict (runtime, meta.profile, the datasets' data params, each paper's
    section): ParamError, one line naming the key, on the first fault. What `replab check` and the check_params
    stage run, and what `replab sweep` runs on each grid point before queueing it."""
    from replab.data import registry
    from replab.params import Runtime, check_meta_profile, load_runtime, load_section, missing_key, shown

    allowed = (*SHARED_SECTIONS, *PAPERS)
    unknown = [key for key in params if key not in allowed]
    if unknown:
        raise ParamError(f"{PARAMS_FILE}: {unknown[0]}: unknown section (allowed: {', '.join(allowed)})")
    missing = [key for key in allowed if key not in params]
    if missing:  # dvc.yaml's ${…} read every section
        raise ParamError(f"{PARAMS_FILE}: section `{missing[0]}` is missing (`replab compose` writes every section)")
    load_runtime(params=params)
    check_meta_profile(params)
    # `images` only feeds conf/'s interpolations (aae_ssl.dataset, autoencoder.dataset, `datasets`), but it is shown
    # beside them in `dvc exp show` and `replab compare`: a value no stage could use would mislead there
    images = params["images"]
    image_sets = registry.IMAGE_DATASETS
    if not isinstance(images, str) or images not in image_sets:
        raise ParamError(f"{PARAMS_FILE}: images = {shown(images)}: must be an image data set (allowed: "
                         f"{', '.join(image_sets)})")
    datasets = params["datasets"]
    if not isinstance(datasets, list) or not datasets:
        raise ParamError(f"{PARAMS_FILE}: datasets = {shown(datasets)}: must be a non-empty list of data set names")
    for i, name in enumerate(datasets):
        registry.get(name, f"{PARAMS_FILE}: datasets[{i}]")
    if len(set(datasets)) != len(datasets):  # dvc.yaml's foreach would name two stages alike
        raise ParamError(f"{PARAMS_FILE}: datasets = {shown(datasets)}: values must be distinct")
    for name in datasets:
        registry.load_data_params(name, params=params)
    data = params.get("data") if isinstance(params.get("data"), dict) else {}
    for name in (key for key in data if key not in datasets and key != "split_seed"):
        # the sets this profile does not prepare too: a typo there is found now, not on switching profiles
        if name not in registry.SOURCES:
            raise ParamError(f"{PARAMS_FILE}: data.{name}: unknown data set (allowed: split_seed, "
                             f"{', '.join(registry.SOURCES)})")
        registry.load_data_params(name, params=params)
    prepared = set(datasets)
    for paper in PAPERS:
        cfg = load_section(paper_module(paper).Config, paper, params=params)
        for key in ("dataset", "datasets"):  # the sets a paper reads must be ones the pipeline prepares
            named = getattr(cfg, key, None)
            if named is not None and (absent := [n for n in ([named] if isinstance(named, str) else named)
                                                 if n not in prepared]):
                raise ParamError(f"{PARAMS_FILE}: {paper}.{key} = {named!r}: {absent[0]} is not in `datasets` "
                                 f"(no stage prepares it; add it there: now {', '.join(datasets)})")
    # every key set: an absent one would run on the code's default, not the profile's (`replab compose` writes all)
    sections = [(paper_module(paper).Config, params[paper], paper) for paper in PAPERS]
    sections += [(Runtime, params["runtime"], "runtime")]
    sections += [(registry.get(name).config_class(), section, f"data.{name}") for name, section in data.items()
                 if name != "split_seed"]
    for cls, section, where in sections:
        if key := missing_key(cls, section, where):
            raise ParamError(f"{PARAMS_FILE}: {key}: missing (params.yaml sets every key: `replab compose "
                             f"profile=<name>` writes them all, `dvc exp run -S` edits them)")


def check_data(params: dict) -> None:
    """The limits of params.yaml that depend on the prepared data under data/processed/ (class counts, writers,
    vocabulary, pool sizes, window lengths): each paper's `check_data(cfg)` loads the data its training loads, on
    the CPU, and runs the checks its training runs on it. What `replab check --data` and the check_data stage run,
    after `prepare` and before any training stage: DVC deletes a stage's outputs before its command starts, so a
    limit found by the training stage would cost that stage's results. ParamError or DataError, one line."""
    from replab.io import out_of_memory
    from replab.params import ParamError, load_section

    for paper in PAPERS:
        module = paper_module(paper)
        cfg = load_section(module.Config, paper, params=params)
        try:
            module.check_data(cfg)
        except (MemoryError, RuntimeError) as err:  # sizes that do not fit (torch.OutOfMemoryError too): name the
            if (message := out_of_memory(err, paper)) is None:  # paper's section, as its training stage would
                raise
            raise ParamError(message) from None


@dataclass(frozen=True)
class Variant:
    """One point of a paper's sweep (one matrix item in dvc.yaml) and where its files live."""

    paper: str
    key: str
    axes: dict[str, Any]
    metrics_dir: Path | None = None  # where its metrics JSON goes instead of metrics/<paper>/ (evaluate_each)
    variants_dir: Path | None = None  # where its plot data goes instead of plots/<paper>/variants/

    @property
    def model_dir(self) -> Path:
        return Path("models") / self.paper / self.key

    @property
    def live_dir(self) -> Path:
        return Path("plots") / self.paper / "curves" / self.key

    @property
    def checkpoint_dir(self) -> Path:
        return Path("checkpoints") / self.paper / self.key

    @property
    def metrics_path(self) -> Path:
        return (self.metrics_dir or Path("metrics") / self.paper) / f"{self.key}.json"

    @property
    def plots_dir(self) -> Path:
        return (self.variants_dir or Path("plots") / self.paper / "variants") / self.key


def evaluate_each(variant: Variant, variants: list[Variant], evaluate_one: Callable[[Variant], None],
                  progress: bool = True) -> None:
    """`evaluate_one(variant)`; with the key `all` (dvc.yaml's evaluation stage), `evaluate_one` of every variant
    in `variants` (the paper's `all_variants(cfg)`) in this process, written into fresh copies of metrics/<paper>/
    and plots/<paper>/variants/ that replace the old folders only once every variant is measured: a killed stage
    leaves the old files, and no file of a variant no longer in params.yaml survives."""
    if variant.key != EVALUATE_ALL:
        evaluate_one(variant)
        return
    from replab.io import atomic_dir
    from replab.runtime import progress as progress_bar

    paper = variant.paper
    with atomic_dir(Path("metrics") / paper) as metrics, atomic_dir(Path("plots") / paper / "variants") as plots:
        for each in progress_bar(variants, enabled=progress, desc=f"evaluate {paper}", unit="variant"):
            evaluate_one(replace(each, metrics_dir=metrics, variants_dir=plots))


def parse_record(cls: type, data: Any, where: str, partial: bool = True) -> Any:
    """`data` read from a file (a model's config, a training record) as the dataclass `cls`, whose fields are
    `replab.params.param`s, through `replab.params.parse`: a wrong type, a value out of range, or null or NaN where
    a number must be is a one-line DataError naming `where` (the file) and the key. `partial`: keys that are not
    fields of `cls` are ignored (else an error)."""
    import dataclasses

    from replab.io import DataError
    from replab.params import parse

    if partial and isinstance(data, dict):
        data = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
    try:
        return parse(cls, data, where)
    except ParamError as err:
        raise DataError(f"{err}; rerun the stage that wrote it") from None


def key_forms(paper: str) -> str:
    """'; <paper>'s keys: `train …`, `evaluate …`' where the paper's train.py / evaluate.py list the keys they take
    (`KEYS`: a paper whose keys are not simply its axes' values joined, e.g. attention_vat's stage keys); '' for
    the others (their keys are what parse_variant's message already says)."""
    forms = [f"`{command} {form}`" for command in ("train", "evaluate") if paper in PAPERS
             for form in getattr(importlib.import_module(f"{__name__}.{paper}.{command}"), "KEYS", ())]
    return f"; {paper}'s keys: {', '.join(forms)}" if forms else ""


def _field_names(cfg: Any) -> set[str]:
    """The params.yaml keys of a paper's config (its dataclass fields; not its derived properties)."""
    import dataclasses

    return {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set(vars(cfg))


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def sweep_matches(cfg: Any, attr: str, raw: str) -> list:
    """The values of the sweep list cfg.<attr> (or its one value) that the text `raw` names: by its text, or a float
    by its number (DVC spells an integer λ `1`)."""
    sweep = getattr(cfg, attr, None)
    return [v for v in (sweep if isinstance(sweep, list) else [sweep])
            if str(v) == raw or (isinstance(v, float) and _as_float(raw) == v)]


def read_off_axes(key: str, axes: dict[str, str], cfg: Any) -> tuple[list[str], bool]:
    """(`axis=value` for each axis, whether each value is in its sweep list), read off the end of `key` (dvc.yaml's
    matrix ${key}: the values joined by `-` in the axes' order, after any prefix). A value may hold `-` itself (a λ
    of 1e-05, a negative number), so every split of the key's last parts is tried: the one with the most values in
    their sweeps (then the one leaving the least prefix), for `parse_variant` to accept or to name the value that is
    not (`afl_mlp-1e-05-1` with seeds [0]: seed=1, not method=1e). The key has at least one part per axis."""
    parts, names = key.split("-"), list(axes)

    def readings(end: int, count: int):  # each split of parts[:end] into `count` last groups of ≥ 1 part
        if count == 0:
            yield []
            return
        for start in range(end - 1, count - 2, -1):
            for before in readings(start, count - 1):
                yield [*before, "-".join(parts[start:end])]

    def score(raws: list[str]) -> tuple[int, int]:
        return sum(bool(sweep_matches(cfg, axes[n], r)) for n, r in zip(names, raws, strict=True)), len("-".join(raws))

    best = max(readings(len(parts), len(names)), key=score)
    return [f"{n}={r}" for n, r in zip(names, best, strict=True)], score(best)[0] == len(names)


def dvc_spelling(value: Any) -> str:
    """A params.yaml value as dvc.yaml's ${key} and ${item.…} spell it (dvc.parsing.interpolate.to_str: str(),
    booleans lowercase; tests/test_censor.py holds them alike): 1e-05, 1 (an integer λ), 0.2."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def parse_variant(paper: str, key: str, assignments: list[str], cfg: Any, axes: dict[str, str],
                  section: dict | None = None, prefixes: tuple[str, ...] | None = None) -> Variant:
    """`model=ae n_labeled=100 seed=0` → typed values, each checked against its sweep list in params. Each axis
    once; the key must be the values joined by `-` in the axes' order (dvc.yaml's matrix ${key}), or those after
    one of `prefixes` (default: the paper's KEY_PREFIXES, e.g. attention_vat's `fig2-<dataset>-<family>-<seed>`),
    so that a variant never trains into another's folder (`junk-afl_mlp-0.2-0` had trained where no stage reads). With
    `section` (the paper's params.yaml section as read, before parsing) each value must also be spelled as dvc.yaml
    spells that list item (`dvc_spelling`): `afl_mlp-1e-5-0 lambda=1e-5` trained into a folder no stage reads
    (dvc.yaml's is afl_mlp-1e-05-0)."""
    values: dict[str, Any] = {}
    raws: dict[str, str] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or name not in axes:
            raise ParamError(f"{paper} variant {item!r}: expected axis=value with axis in {', '.join(axes)} (a key "
                             f"like `{key}` has these)"
                             + key_forms(paper))
        if name in raws:
            raise ParamError(f"{paper} variant {key}: {name}= given twice ({name}={raws[name]}, {item})")
        raws[name] = raw
        if not (matches := sweep_matches(cfg, axes[name], raw)):
            sweep = getattr(cfg, axes[name])
            allowed = sweep if isinstance(sweep, list) else [sweep]
            # a sweep list of params.yaml, or an axis the code fixes (attention_vat's settings and families)
            where = (f"{PARAMS_FILE}: {paper}.{axes[name]}: variant" if axes[name] in _field_names(cfg)
                     else f"{paper} variant {key}:")
            raise ParamError(f"{where} {name}={raw!r} is not in the sweep (allowed: {', '.join(map(str, allowed))})")
        values[name] = matches[0]
    missing = [a for a in axes if a not in values]
    if missing:
        raise ParamError(f"{paper} variant {key}: missing {', '.join(f'{a}=…' for a in missing)}" + key_forms(paper))
    for name, raw in raws.items():
        items = (section or {}).get(axes[name])
        spelled = [dvc_spelling(i) for i in (items if isinstance(items, list) else [items])
                   if i is not None and not isinstance(i, dict | list) and i == values[name]]
        if spelled and raw not in spelled:
            raise ParamError(f"{paper} variant {key}: {name}={raw} is spelled {spelled[0]} in dvc.yaml's keys and "
                             "folders (a variant spelled otherwise would train where no stage reads)")
    if prefixes is None:
        prefixes = getattr(paper_module(paper), "KEY_PREFIXES", ()) if paper in PAPERS else ()
    joined = "-".join(raws[a] for a in axes)
    given = " ".join(f"{a}={raws[a]}" for a in axes)
    if joined and key != joined and not key.endswith(f"-{joined}"):
        prefix = next((p for p in prefixes if key.startswith(f"{p}-")), None)
        raise ParamError(f"{paper} variant {key}: the key does not match its axes ({given} give "
                         f"{f'{prefix}-' if prefix else ''}{joined})" + key_forms(paper))
    if joined and key != joined and (prefix := key.removesuffix(f"-{joined}")) not in prefixes:
        allowed = f"{', '.join(f'{p}-' for p in prefixes)} or none" if prefixes else "none"
        raise ParamError(f"{paper} variant {key}: {prefix}- is not a key prefix of {paper} (allowed: {allowed}; "
                         f"{given} give {joined})" + key_forms(paper))
    return Variant(paper, key, values)
