"""The `curves` stage: one training-curve file per paper and metric, every variant overlaid, for `dvc plots`.

Each training stage logs its curves with DVCLive under `plots/<paper>/curves/<variant>/`: one TSV per metric,
`plots/metrics/<name>.tsv` with the columns `step <last part of name>` (DVCLive's format; `timestamp` first when
logged with timestamps), beside a summary `metrics.json` that DVC cannot plot. DVC reads a plot directory file
by file, and a top-level plot definition cannot list the variants of a matrix (it expands no globs), so this
stage gathers them:

    plots/curves/<paper>/<name>.tsv      columns: variant, step, <name>     (name may contain `/`: subfolders)

A stage that trains several variants in one process (attention_vat: every method of a setting) has one output
folder holding a DVCLive folder per variant, `plots/<paper>/curves/<stage key>/<variant>/`; the variant's name
is its own folder's.

dvc.yaml declares `plots/curves` once (template `.dvc/plots/variants.json`: one line per variant, the revision
as the dash pattern in `dvc plots diff`), so any paper whose stages log through DVCLive there is covered.
Non-finite values (a diverged run) are left out of the lines and counted on stderr.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections import defaultdict
from pathlib import Path

from replab.io import DataError, atomic_dir

CURVES_ROOT = Path("plots/curves")


def live_root(paper: str) -> Path:
    return Path("plots") / paper / "curves"


def is_live_dir(folder: Path) -> bool:
    """A DVCLive folder (its summary metrics.json or its plots/), not a folder of them."""
    return (folder / "metrics.json").is_file() or (folder / "plots").is_dir()


def variant_paths(base: Path, outputs: list[str]) -> list[str]:
    """The variants' folders, relative to `base`, of the output folders `outputs` (relative to `base`): an output
    that is a DVCLive folder, or else each DVCLive folder one level below it (a stage that trains several
    variants); an empty folder holds no variant (a stage with nothing to train: attention_vat's family without
    methods); an output with none of these stays as it is (gather then names it). In variant-name order."""
    found = []
    for out in outputs:
        folder = base / out
        if folder.is_dir() and not any(folder.iterdir()):
            continue
        inner = [] if is_live_dir(folder) or not folder.is_dir() else sorted(p for p in folder.iterdir()
                                                                            if p.is_dir() and is_live_dir(p))
        found += [f"{out}/{p.name}" for p in inner] or [out]
    return sorted(found, key=lambda v: (v.rsplit("/", 1)[-1], v))


def dvc_outputs() -> list[Path] | None:
    """The outputs of every stage of this repository's dvc.yaml (as expanded for the params in force), absolute;
    None outside a DVC repository. Building DVC's index takes about half a second: read it once per process."""
    try:
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo
    except ImportError:  # pragma: no cover - dvc is a runtime requirement
        return None
    try:
        with Repo(".") as repo:
            return [Path(out.fs_path) for out in repo.index.outs]
    except NotDvcRepoError:
        return None


def current_variants(paper: str, outputs: list[Path] | None = None) -> list[str] | None:
    """The variants whose DVCLive directory is an output of a stage of this repository's dvc.yaml (`outputs`,
    default `dvc_outputs()`), or lies one level below one, so curves left on disk by an earlier sweep are not
    drawn: paths relative to plots/<paper>/curves/. None outside a DVC repository."""
    paths = dvc_outputs() if outputs is None else outputs
    if paths is None:
        return None
    root = live_root(paper).resolve()
    return variant_paths(live_root(paper), [p.name for p in paths if p.parent == root])


RERUN = "rerun the variant's training stage"  # what rewrites a damaged curve or summary
MAX_STEP = 2.0 ** 53  # DVCLive's steps are counters (`Live.step`, ints ≥ 0); beyond this a float cannot hold one


def read_live_tsv(path: Path) -> tuple[str, list[tuple[float, float]]]:
    """A DVCLive metric file → (value column name, [(step, value), ...]). Raises DataError naming the file (and
    line) when it is not DVCLive's format: a row with other columns than the header's, a step that is not a whole
    number from 0 to 2^53 or not above the row before's (rows appended twice, reordered), a value column not named
    as the file is (DVCLive names it so: another metric's file copied in), a last line cut off. Values may be NaN or
    ±inf (a diverged run: `gather` leaves them out and counts them)."""
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a DVCLive metric file (expected a TSV `[timestamp] step <name>`)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a DVCLive metric file (not UTF-8 text at byte {err.start})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or type(err).__name__})") from None
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    if text and not text.endswith("\n"):  # DVCLive ends every row with a line end: a file cut off while written
        raise DataError(f"{path}:{len(rows)}: the last line has no line end: a half-written file; {RERUN}")
    if not rows or rows[0][:-1] not in (["step"], ["timestamp", "step"]):
        raise DataError(f"{path}: not a DVCLive metric file (expected the header `[timestamp] step <name>`)")
    if rows[0][-1] != path.stem:
        raise DataError(f"{path}: its values are headed {rows[0][-1]!r}, not {path.stem!r} as DVCLive heads a "
                        f"{path.name} (another metric's file?)")
    step = len(rows[0]) - 2
    points: list[tuple[float, float]] = []
    for line, row in enumerate(rows[1:], 2):
        if len(row) != len(rows[0]):
            raise DataError(f"{path}:{line}: expected {len(rows[0])} columns ({' '.join(rows[0])}), got {len(row)}: "
                            f"{row!r}")
        try:
            point = float(row[step]), float(row[step + 1])
        except ValueError:
            raise DataError(f"{path}:{line}: expected a step and a number, got {row!r}") from None
        if not (0 <= point[0] <= MAX_STEP and point[0].is_integer()):  # (NaN fails every comparison)
            raise DataError(f"{path}:{line}: step {row[step]!r} is not a DVCLive step (allowed: a whole number from 0 "
                            f"to 2^53)")
        if points and point[0] <= points[-1][0]:
            raise DataError(f"{path}:{line}: step {row[step]} after step {points[-1][0]:.0f} (DVCLive's steps "
                            "increase: rows appended twice, or reordered?)")
        points.append(point)
    return rows[0][-1], points


SUMMARY = "metrics.json"  # DVCLive's summary beside the curves: each metric's last value, and the last step
NON_FINITE = ("nan", "inf", "-inf")  # how DVCLive writes a non-finite last value there (diverged; undefined AUC)


def last_values(path: Path) -> dict[str, float]:
    """{metric name (as the curve files are named, `loss/train`): its last value} of a DVCLive summary (NaN and ±inf
    as DVCLive writes them, "nan", "inf", "-inf"). DataError when it is missing or not a summary of numbers:
    without it a deleted or cut curve would pass unnoticed."""
    from replab.io import read_json

    leaves: dict[str, float] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}/")
            elif value in NON_FINITE:
                leaves[f"{prefix}{key}"] = float(value)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise DataError(f"{path}: {prefix}{key} = {value!r}: expected a number (DVCLive's summary); {RERUN}")
            elif prefix or key != "step":
                leaves[f"{prefix}{key}"] = float(value)

    if not path.is_file():
        raise DataError(f"{path}: missing (DVCLive writes it beside the curves); {RERUN}")
    walk(read_json(path, expect=dict), "")
    return leaves


def check_last_value(path: Path, points: list[tuple[float, float]], summary: float | None, where: Path) -> None:
    """DataError when a curve is not the one DVCLive's summary `where` ends with: no rows, a metric the summary does
    not list, or another last value (rows cut off, another variant's or metric's file)."""
    if summary is None:
        raise DataError(f"{path}: not a metric of {where} (a curve DVCLive did not write); {RERUN}")
    if not points:
        raise DataError(f"{path}: no rows, but {where} ends it at {summary!r}; {RERUN}")
    last = points[-1][1]
    if not (last == summary or math.isnan(last) and math.isnan(summary)):
        raise DataError(f"{path}: ends at {last!r} (step {points[-1][0]:.0f}), but {where} ends it at {summary!r} "
                        f"(rows cut off, or another run's file?); {RERUN}")


def gather(paper: str, variants: list[str] | None = None) -> dict[str, list[tuple[str, float, float]]]:
    """{metric name (path below plots/metrics, no suffix): [(variant, step, value), ...]} over the variants
    (paths relative to plots/<paper>/curves/, named by their last part; default: every DVCLive directory there
    or one level below), in variant then step order; non-finite values dropped (counted on stderr). Raises
    DataError when a named variant has no curves."""
    base = live_root(paper)
    if variants is None:
        variants = variant_paths(base, sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else [])
    curves: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    dropped: dict[str, int] = defaultdict(int)
    for path in variants:
        variant = path.rsplit("/", 1)[-1]
        metrics_dir = base / path / "plots" / "metrics"
        files = sorted(metrics_dir.rglob("*.tsv")) if metrics_dir.is_dir() else []
        if not files:
            raise DataError(f"{metrics_dir}: no DVCLive curves (*.tsv) for variant {variant!r} of {paper}")
        summary_path = base / path / SUMMARY
        summary = last_values(summary_path)
        names = {file.relative_to(metrics_dir).with_suffix("").as_posix(): file for file in files}
        if missing := sorted(set(summary) - set(names)):
            raise DataError(f"{metrics_dir / missing[0]}.tsv: missing ({summary_path} lists {missing[0]}); {RERUN}")
        for name, file in names.items():
            _, points = read_live_tsv(file)
            check_last_value(file, points, summary.get(name), summary_path)
            for step, value in points:
                if math.isfinite(value):
                    curves[name].append((variant, step, value))
                else:
                    dropped[f"{variant}: {name}"] += 1
    for what, count in dropped.items():
        print(f"curves: {paper} {what}: {count} non-finite value(s) left out", file=sys.stderr)
    return dict(curves)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def write(paper: str, curves: dict[str, list[tuple[str, float, float]]], out_root: Path = CURVES_ROOT) -> Path:
    """Write plots/curves/<paper>/<name>.tsv (variant, step, <name>) as a whole (atomic). Returns the folder."""
    out = out_root / paper
    with atomic_dir(out) as tmp:
        for name, rows in curves.items():
            path = tmp / f"{name}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as handle:
                writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
                writer.writerow(["variant", "step", name])
                writer.writerows([variant, _number(step), _number(value)] for variant, step, value in rows)
    return out


def main(papers: list[str]) -> None:
    """Write every named paper's curve files (one DVC index read for all)."""
    from replab.papers import check_paper

    for paper in papers:  # an unknown paper: one line listing the known ones (no paper imported: no torch here)
        check_paper(paper)
    outputs = dvc_outputs()
    for paper in papers:
        curves = gather(paper, None if outputs is None else current_variants(paper, outputs))
        if not curves:
            raise DataError(f"{live_root(paper)}: no training curves of {paper} (run its training stages first)")
        out = write(paper, curves)
        variants = len({row[0] for rows in curves.values() for row in rows})
        print(f"{out}: {len(curves)} curves over {variants} variants", file=sys.stderr)
