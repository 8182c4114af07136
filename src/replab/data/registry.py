"""Dataset name → how to download and prepare it, and which `data.<name>` params configure it.

Source modules are imported lazily so `replab download mnist5k` never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replab.io import write_manifest
from replab.params import PARAMS_FILE, SEED_MAX, ParamError, parse, read_params, shown, yaml_kind

RAW_ROOT = Path("data/raw")
PROCESSED_ROOT = Path("data/processed")


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # "embedded" (offline stand-in) or "real" (pinned download)
    module: str
    config: str  # config dataclass name inside `module`

    def load(self):
        return importlib.import_module(self.module)

    def config_class(self):
        return getattr(self.load(), self.config)


# the digit-image sets (replab.data.images' processed layout): aae_ssl's and autoencoder's `dataset`, params' `images`
IMAGE_DATASETS = ("mnist5k", "mnist", "fashion_mnist")
SOURCES = {s.name: s for s in (
    Source("mnist5k", "embedded", "replab.data.embedded", "Mnist5kConfig"),
    Source("mnist", "real", "replab.data.mnist", "ImageSourceConfig"),
    Source("fashion_mnist", "real", "replab.data.mnist", "ImageSourceConfig"),
    Source("writers", "embedded", "replab.data.writers", "WritersConfig"),
    Source("emnist_writers", "real", "replab.data.emnist_writers", "EmnistWritersConfig"),
    Source("har", "embedded", "replab.data.har", "HarConfig"),
    Source("usc_had", "real", "replab.data.usc_had", "UscHadConfig"),
    Source("rt_snippets", "embedded", "replab.data.rt_snippets", "RtSnippetsConfig"),
    Source("sst", "real", "replab.data.sst", "SstConfig"),
    Source("imdb", "real", "replab.data.imdb", "ImdbConfig"),
    Source("eraser_movies", "real", "replab.data.eraser", "EraserMoviesConfig"),
    Source("lm1b", "real", "replab.data.lm1b", "Lm1bConfig"),
    Source("fasttext", "real", "replab.data.fasttext", "FasttextConfig"),
)}


def get(name: Any, where: str = "dataset") -> Source:
    """The Source of data set `name`; ParamError naming `where` (the param key or option) for any other value."""
    if not isinstance(name, str) or name not in SOURCES:
        raise ParamError(f"{where} = {shown(name)}: unknown data set (allowed: {', '.join(SOURCES)})")
    return SOURCES[name]


def load_data_params(name: str, path: str | Path = PARAMS_FILE, params: dict | None = None) -> tuple[Any, int]:
    """The validated `data.<name>` config and `data.split_seed`."""
    params = read_params(path) if params is None else params
    data = params.get("data")
    if not isinstance(data, dict):
        raise ParamError(f"{path}: section `data` is missing" if "data" not in params else
                         f"{path}: data must be a mapping, got {yaml_kind(data)}")
    split_seed = data.get("split_seed", 0)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or not 0 <= split_seed <= SEED_MAX:
        raise ParamError(f"{path}: data.split_seed = {split_seed!r}: must be an integer from 0 to {SEED_MAX}")
    source = get(name, f"{path}: dataset")
    cfg = parse(source.config_class(), data.get(name, {}), f"{path}: data.{name}")  # absent: the defaults
    if (mirror := getattr(cfg, "mirror", None)) is not None:  # found by check_params, before DVC deletes a download
        from replab.download import mirror_problem

        if (problem := mirror_problem(mirror)) is not None:
            raise ParamError(f"{path}: data.{name}.mirror = {mirror!r}: {problem}")
    return cfg, split_seed


def download_params(name: str, params: dict) -> dict:
    """The `data.<name>` params (validated, defaults filled in) that decide what its download writes: the fields
    its source module lists in DOWNLOAD_PARAMS (mirror, lm1b's sample, a generator's), never prepare's settings.
    The download stage depends on these alone (`write_download_params`): DVC deletes data/raw/<name> before a
    stage reruns, so a stage that listed the whole section threw away a verified archive, and offline could not
    get it back, whenever a preparation setting such as data.imdb.min_df changed."""
    cfg, _ = load_data_params(name, params=params)
    return {field: getattr(cfg, field) for field in get(name).load().DOWNLOAD_PARAMS}


def download_code(name: str, src: Path | None = None) -> str:
    """The fingerprint of the code `name`'s download runs (`code_closure.fingerprint` of its source module's
    `download`: that function and all it reaches inside replab, the pinned files' URLs and checksums included, and
    the text of `download` here, which calls it).
    The download stage depends on it instead of on src/replab/data, for download_params' reason: an edit of
    preparation code (a tokenizer in text.py, imdb's prepare) must not delete and refetch the archives. `src`: the
    folder holding the replab package to read (default: this process's)."""
    from replab.code_closure import SRC, fingerprint

    return fingerprint(get(name).module, "download", src or SRC, call_sites=[("replab.data.registry", "download")])


def write_download_params(params: dict, folder: str | Path) -> list[Path]:
    """`folder`/<name>.json (`download_params` and `download_code`) for every data set in `datasets`, each written
    atomically, and no other file (dvc.yaml: check_params writes them, download@<name> depends on its file)."""
    from replab.io import atomic_dir, write_json

    with atomic_dir(Path(folder)) as tmp:
        for name in params["datasets"]:
            write_json(tmp / f"{name}.json", {"dataset": name, "params": download_params(name, params),
                                              "code": download_code(name)})
    return [Path(folder) / f"{name}.json" for name in params["datasets"]]


def check_local_mirrors(params: dict) -> None:
    """Each data set of `datasets` whose `mirror` is local (a path or file:// URL) must name an existing folder:
    else the one-line DataError of `download.check_mirror`, from the check_params stage, before DVC deletes that data
    set's verified copy to rerun its download (which found it only then). Where the stages run, not where a sweep is
    planned: a cluster's mirror need not exist on the machine that submits."""
    from replab.download import check_mirror

    for name in params["datasets"]:
        cfg, _ = load_data_params(name, params=params)
        if getattr(cfg, "mirror", None):
            check_mirror(cfg.mirror, f"data.{name}.mirror", ("the data set's files",))


def download(name: str, progress: bool = True, params_path: str | Path = PARAMS_FILE) -> Path:
    source = get(name)
    cfg, _ = load_data_params(name, params_path)
    raw_dir = RAW_ROOT / name
    source.load().download(name, cfg, raw_dir, progress=progress)
    return raw_dir


def prepare(name: str, params_path: str | Path = PARAMS_FILE) -> Path:
    source = get(name)
    cfg, split_seed = load_data_params(name, params_path)
    out_dir = PROCESSED_ROOT / name
    source.load().prepare(name, cfg, RAW_ROOT / name, out_dir, split_seed)
    write_manifest(out_dir)  # what the loaders verify: an edit of the prepared files is never trained on silently
    return out_dir
