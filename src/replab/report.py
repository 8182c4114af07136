"""The report stage: one summary per paper (metrics/<paper>.json) and plots/report.md, paper vs ours.

Each paper package provides `summarize(cfg, params) -> Section` (its report.py): it gathers its per-variant
metrics for the sweep currently in params.yaml (a missing variant is an error, a stale file from another sweep
is ignored), draws its summary figures under plots/<paper>/summary/, and returns Markdown plus the summary
dict. The papers come from the registry `replab.papers.PAPERS`, in its order. This module owns the shared
pieces: gathering, mean ± std, Markdown tables, figure saving and the final files.

Missing values: a metric that was NaN or infinite in a run is null in its JSON (replab.io.write_json). Every
helper here takes None / NaN / inf as missing: `mean_std` skips and counts it (mean None when nothing is left),
`fmt` shows "–", `greater` gives None (not testable). Values read through `Records.stats` / `Records.value`
are noted, and the report adds one note per paper naming each variant and metric that was missing.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replab.io import DataError, atomic_path, finite, read_json, rerun_hint, write_json
from replab.papers import PAPERS, paper_module, parse_record
from replab.params import PARAMS_FILE, load_section, meta_profile, param, read_params
from replab.runtime import device_label

if TYPE_CHECKING:
    import numpy as np

REPORT_PATH = Path("plots/report.md")


MISSING = "–"
WITHIN_SPREAD = "(within the seeds' spread)"  # a verdict's mark: a difference it rests on is within the seeds' std


# a verdict's mark: it rests on a rule's fixed margin (censor's "D_sim learned" threshold) met by less than a bound
# set from how far the same code's run moved across CPUs; unlike WITHIN_SPREAD it needs no second seed
NEAR_MARGIN = "(near its margin)"


def spread_mark(within: bool, near: bool = False) -> str:
    """What follows a verdict in the report's text: " (within the seeds' spread)" when `within`, " (near its
    margin)" when `near`, both, or ""."""
    return "".join(f" {mark}" for mark, on in ((WITHIN_SPREAD, within), (NEAR_MARGIN, near)) if on)


@dataclass
class Section:
    paper: str
    title: str
    markdown: str
    summary: dict[str, Any] = field(default_factory=dict)
    claim_texts: dict[str, str] = field(default_factory=dict)  # summary["claims"]' keys in words (the report's table)


_LAST_READ: list[str] = []  # "<file>: <key>" of the last metrics value a report read (named when it breaks)


class Record(dict):
    """One metrics file's object (nested objects too): a missing key is a one-line DataError naming the file and
    the key, and every read is remembered, so that a value of the wrong type met later is named (`main`)."""

    def __init__(self, data: dict, path: Path, prefix: str = "", name: str = ""):
        super().__init__({k: _wrap(v, path, f"{prefix}{k}", name if k.isdigit() else k) for k, v in data.items()})
        self.path, self.prefix = path, prefix

    def __getitem__(self, key):
        where = f"{self.path}: {self.prefix}{key}"
        _LAST_READ[:] = [where]
        if key not in self:
            raise DataError(f"{where}: missing ({_rerun(self.path)})")
        return super().__getitem__(key)


LOSS_ROUNDING = 1e-4  # how far below 0 float32 rounding can take a loss that is ≥ 0 in exact arithmetic
# Measures with a known range, by name (a key, or for a list's or a per-class object's numbers the key holding them:
# roc_auc.3): a value outside it is a damaged or hand-edited file, which would otherwise enter means and verdicts.
BOUNDS = (
    (re.compile(r"(^|_)(accuracy|error|f1|chance|predicted_positive)(_|$)|^probe_"), 0.0, 100.0, "a percentage"),
    (re.compile(r"(^|_)(auc|auprc|average_precision|roc_auc|roc_auc_score|roc_auc_mean|purity)$"), 0.0, 1.0,
     "a fraction"),
    (re.compile(r"(_ari|_ami_max|_ami_arithmetic|^corr_pearson|^corr_kendall)$"), -1.0, 1.0, "a chance-adjusted "
     "score or correlation"),
    (re.compile(r"(^|_)r2(_|$)"), -math.inf, 1.0, "a coefficient of determination"),
    (re.compile(r"_mean_abs$"), 0.0, 1.0, "a mean absolute correlation"),
    # images and sigmoid outputs in [0, 1]: MSE ≤ 1, floored at 1e-10 (autoencoder.model.psnr)
    (re.compile(r"(^|_)psnr(_|$)"), 0.0, 100.0, "a PSNR in dB of images in [0, 1]"),
    (re.compile(r"(^|_)mse$"), -LOSS_ROUNDING, 1.0, "a mean squared error of images in [0, 1]"),
    # losses that are sums of cross-entropies, squared errors and Gaussian KLs (censor's AFL censor_loss, log q_D(s|z),
    # is negative: not one); ≥ 0 up to float32 rounding (a collapsed latent's KL, exp(log σ²) − 1 − log σ², is −1e-8)
    (re.compile(r"^(train|val|test)_(loss|rec|kl_a|kl_b|ce|clf|mse)$|^adversary_loss$"), -LOSS_ROUNDING, math.inf,
     "a loss or squared error: ≥ 0 up to float32 rounding"),
)


def _wrap(value: Any, path: Path, key: str, name: str) -> Any:
    """A metrics file's value as the report reads it (`key`: its dotted path; `name`: the measure it is)."""
    if isinstance(value, dict):
        return Record(value, path, f"{key}.", name)
    if isinstance(value, list):
        return [_wrap(v, path, f"{key}.{i}", name) for i, v in enumerate(value)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        for pattern, low, high, kind in BOUNDS:
            if pattern.search(name) and not low <= value <= high:  # (NaN was read as null)
                span = (f"≤ {high:g}" if low == -math.inf else f"≥ {low:g}" if high == math.inf else
                        f"{low:g} … {high:g}")
                raise DataError(f"{path}: {key} = {value!r}: out of range (allowed: {span}, {kind}, or null; "
                                f"{_rerun(path)})")
    return value


def _rerun(path: Path) -> str:
    """The hint of a damaged metrics/<paper>/[<folder>/]<key>.json: its paper's evaluation stage."""
    paper = next((p.name for p in Path(path).parents if p.parent.name == "metrics"), None)
    return rerun_hint(f"eval_{paper}") if paper else rerun_hint()


MAX_MAGNITUDE = 1e100  # a metric beyond this cannot be averaged (overflow): a damaged file, not a measure


class Records(dict):
    """{variant key: its metrics/<paper>/<key>.json} of one paper, as `gather` returns it.

    `stats` / `value` read metrics from it and note each missing one (null, NaN or inf) with its variant, so
    the report can say which runs lacked which metric. A key that is absent, or a value that is not a number or
    null, is a one-line DataError naming the file and the key."""

    def __init__(self, paper: str, records: dict[str, dict]):
        super().__init__(records)
        self.paper = paper
        self.missing: list[tuple[str, str]] = []  # (variant key, metric), in the order met

    def path(self, key: str) -> Path:
        """The metrics file records[key] was read from (metrics/<paper>/<key>.json for a record built in memory)."""
        return getattr(self[key], "path", Path("metrics") / self.paper / f"{key}.json")

    def value(self, key: str, metric: str) -> float | None:
        """records[key][metric] as a float (`metric` may be dotted: "roc_auc.3"); None, noted, if missing."""
        node: Any = self[key]
        path = self.path(key)
        _LAST_READ[:] = [f"{path}: {metric}"]
        parts = metric.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                raise DataError(f"{path}: {'.'.join(parts[:i])}: {_kind(node)}, expected an object ({_rerun(path)})")
            if part not in node:
                raise DataError(f"{path}: {'.'.join(parts[:i + 1])}: missing ({_rerun(path)})")
            node = dict.__getitem__(node, part)
        if node is not None and (isinstance(node, bool) or not isinstance(node, int | float)):
            raise DataError(f"{path}: {metric} = {_short(node)}: not a number (allowed: a number, or null when "
                            f"missing; {_rerun(path)})")
        if node is not None and abs(node) > MAX_MAGNITUDE:  # (an integer beyond a float's range too)
            raise DataError(f"{path}: {metric} = {_short(node)}: out of range (allowed: |value| ≤ "
                            f"{MAX_MAGNITUDE:g}, or null; {_rerun(path)})")
        number = finite(node)
        if number is None and (key, metric) not in self.missing:
            self.missing.append((key, metric))
        return number

    def derived(self, key: str, metric: str, expected: float | None, how: str) -> float | None:
        """`value(key, metric)` of a measure evaluate.py derives from others (`how` says from what, e.g. "its
        test_psnr"): a DataError naming the file when it is not `expected`, the value so derived (a hand edit
        within range: a verdict would rest on one number while the table shows another)."""
        value = self.value(key, metric)
        if value is not None and expected is not None and not math.isclose(value, expected, rel_tol=1e-9,
                                                                             abs_tol=1e-12):
            path = self.path(key)
            raise DataError(f"{path}: {metric} = {value!r}: not {how}, {expected!r}, as evaluate.py writes it "
                            f"({_rerun(path)})")
        return value

    def stats(self, keys: Iterable[str], metric: str) -> dict[str, Any]:
        """mean_std of `metric` over the variants `keys` (seeds); missing values are skipped and noted."""
        return mean_std([self.value(k, metric) for k in keys])

    def check(self, schema: type | Callable[[dict], type]) -> Records:
        """Each record against `schema` (made by `schema`; or a function of the record giving it) through
        replab.papers.parse_record, other keys ignored: a missing key, a value of the wrong type or out of range, or
        null where a number must be, is a one-line DataError naming the file and the key. Returns the records."""
        for key, record in self.items():
            path = self.path(key)
            try:
                parse_record(schema if isinstance(schema, type) else schema(record), record, f"{path}: record")
            except DataError as err:  # the stage that rewrites it, by name (here, not through a parse_record argument:
                # a schema's own checks call parse_record on nested blocks, whose errors pass through this one)
                message = str(err).removesuffix("; rerun the stage that wrote it")
                raise DataError(f"{message} ({_rerun(path)})") from None
        return self

    def expect(self, key: str, where: str, **values: Any) -> None:
        """Each field of records[key] equal to its value in `values` (what `where`, its key or params.yaml, gives):
        a DataError naming the file, the field and both values otherwise (a file of another run, copied or edited
        in; DVC reruns the stage that writes it when they differ)."""
        record = self[key]
        for name, value in values.items():
            if record[name] != value:
                raise mismatch(record.path, name, _short(record[name]), _short(value), where)


def mismatch(path: Path, name: str, found: str, expected: str, where: str) -> DataError:
    """The error of a metrics file whose `name` disagrees with what its key or params.yaml (`where`) gives."""
    return DataError(f"{path}: {name} = {found}, expected {expected} from {where} (params.yaml changed since its run, "
                     "or a file of another run: run `dvc repro`, which reruns what either changed)")


def schema(name: str, fields: dict[str, tuple[Any, dict]], check: Callable | None = None) -> type:
    """A metrics file's schema for `Records.check`: a dataclass of `replab.params.param` fields {key: (type, limits)}
    (a "default" among the limits: the key may be absent) with an optional `check(self, where)` across fields."""
    return make_dataclass(name, [(k, t, param(**limits)) for k, (t, limits) in fields.items()],
                          namespace={"check": check} if check else {})


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


_GATHERED: dict[str, list[Records]] = {}  # per paper, what `gather` returned during this report


def gather(paper: str, keys: Iterable[str] | Mapping[str, dict], non_finite: str = "error",
           schema: type | Callable[[dict], type] | None = None) -> Records:
    """metrics/<paper>/<key>.json for exactly these keys (the current sweep); each must hold an object, match
    `schema` (`Records.check`), and where `keys` maps each key to fields ({"model": "ae", "seed": 0, "dataset":
    "mnist5k"}: its axes and data set), hold those values (`Records.expect`: a file of another run is not read as
    this one's). Every paper's evaluation writes strict JSON (replab.io.write_json: an undefined or diverged measure
    as null), so a NaN or infinite number in a file is a hand edit: a DataError naming file and key; with
    `non_finite="missing"` it reads as null instead."""
    found, missing = {}, []
    for key in keys:
        path = Path("metrics") / paper / f"{key}.json"
        if path.exists():
            try:
                found[key] = Record(read_json(path, expect=dict, stage=f"eval_{paper}", non_finite=non_finite), path)
            except DataError:  # read_json names the file; the key, found again by Python's lenient parser, too
                if non_finite == "error" and (bad := _non_finite_in(path)):
                    raise DataError(f"{path}: {bad[0]} = {json.dumps(bad[1])}: not a finite number (allowed: a "
                                    "number, or null where the measure is undefined; its evaluation writes no NaN or "
                                    f"infinity; {_rerun(path)})") from None
                raise
        else:
            missing.append(str(path))
    if missing:
        raise DataError(f"{missing[0]}: missing ({len(missing)} variant(s) of the current sweep not evaluated; "
                        "run `dvc repro`)")
    records = Records(paper, found) if schema is None else Records(paper, found).check(schema)
    for key, fields in keys.items() if isinstance(keys, Mapping) else ():
        records.expect(key, "its key and params.yaml", **fields)
    _GATHERED.setdefault(paper, []).append(records)
    return records


def _non_finite_in(path: Path) -> tuple[str, float] | None:
    """`_non_finite` of a JSON file that Python's lenient parser reads (NaN, Infinity); None if it does not parse."""
    try:
        return _non_finite(json.loads(path.read_text()))
    except (ValueError, OSError):
        return None


def _non_finite(value: Any, key: str = "") -> tuple[str, float] | None:
    """(dotted key, number) of the first NaN or infinite number in a parsed JSON value; None if there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (key, value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((bad for k, v in items if (bad := _non_finite(v, f"{key}.{k}" if key else str(k)))), None)


def missing_note(paper: str) -> str:
    """One Markdown paragraph naming every (variant, metric) read as missing for `paper`; "" if none."""
    items = list(dict.fromkeys(m for records in _GATHERED.get(paper, []) for m in records.missing))
    if not items:
        return ""
    listed = "; ".join(f"`{key}`: {metric}" for key, metric in items)
    return (f"Missing values ({len(items)}; NaN or infinite in the run, written as null, shown as {MISSING} and "
            f"left out of means): {listed}.")


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof = 1, as papers report over seeds); std 0 for one seed.

    None / NaN / inf values are missing: skipped, and counted in "missing" (key present only then); with no
    value left, mean and std are None (null in the summary JSON, "–" in tables)."""
    present = [v for v in map(finite, values) if v is not None]
    n, lost = len(present), len(values) - len(present)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "missing": lost}
    mean = sum(present) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, **({"missing": lost} if lost else {})}


def num(value: Any, digits: int = 2) -> str:
    """One number with `digits` decimals (a paper's reference value, a single measure); MISSING for None, NaN, ±inf
    or a non-number."""
    number = finite(value)
    return MISSING if number is None else f"{number:.{digits}f}"


def fmt(stat: dict[str, Any] | tuple[float, float] | None, digits: int = 2) -> str:
    """"mean ± std"; the mean alone for one seed (a std of 0 would read as no variance); "–" when missing;
    "(n of N)" appended when some seeds' values were missing."""
    if stat is None:
        return MISSING
    mean, std = (stat["mean"], stat["std"]) if isinstance(stat, dict) else stat
    if finite(mean) is None:
        return MISSING
    one_seed = isinstance(stat, dict) and stat.get("n") == 1
    text = f"{mean:.{digits}f}" if one_seed else f"{mean:.{digits}f} ± {finite(std) or 0.0:.{digits}f}"
    lost = stat.get("missing", 0) if isinstance(stat, dict) else 0
    return f"{text} ({stat['n']} of {stat['n'] + lost})" if lost else text


def greater(a: dict[str, Any] | float | None, b: dict[str, Any] | float | None) -> bool | None:
    """mean(a) > mean(b) for stats dicts or plain numbers; None (not testable) when either is missing. Means
    equal to float rounding (relative 1e-6: e.g. the same test-error counts averaged in float32, 12.050000206
    vs 12.049999833) are a tie, not greater."""
    x, y = (finite(v["mean"] if isinstance(v, dict) else v) for v in (a, b))
    if x is None or y is None:
        return None
    return x > y and not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12)


def within_spread(a: dict[str, Any] | None, b: dict[str, Any] | float | None) -> bool:
    """True when two stats dicts (≥ 2 seeds each), or a stats dict and a fixed threshold `b` (a number: no spread
    of its own), differ in mean by less than the larger of their standard deviations: a difference the seeds' own
    spread covers, which a float-rounding change of training (another matmul kernel, another machine) can
    reverse. False when either is missing, not finite or has one seed."""
    if isinstance(b, numbers.Real) and not isinstance(b, bool):
        b = {"mean": float(b), "std": 0.0, "n": 2}
    if not a or not b or a.get("n", 0) < 2 or b.get("n", 0) < 2:
        return False
    values = [finite(v) for v in (a["mean"], b["mean"], a["std"], b["std"])]
    if None in values:
        return False
    return abs(values[0] - values[1]) < max(values[2], values[3])


def greater_with_spread(a: dict[str, Any] | None, b: dict[str, Any] | float | None) -> tuple[bool | None, bool]:
    """(`greater(a, b)`, `within_spread(a, b)`): a comparison's verdict and whether the seeds' spread covers it."""
    return greater(a, b), within_spread(a, b)


def verdict_within_spread(checks: Iterable[tuple[Any, ...]]) -> bool:
    """Whether a claim judged by several comparisons (`all_hold` of their verdicts) could turn within the seeds'
    spread, from (verdict, …, within the spread) per comparison (the first and the last of each tuple): when it
    holds, one comparison within the spread can fail; when it does not, it turns only if every failing one is
    within it (one failure outside settles it). False when a comparison is not testable (None) or there are none."""
    pairs = [(ok, within) for ok, *_, within in checks]
    if not pairs or None in (ok for ok, _ in pairs):
        return False
    return any(w for _, w in pairs) if all(ok for ok, _ in pairs) else all(w for ok, w in pairs if ok is False)


def beats(where: str, mine: dict[str, dict | None], others: dict[str, dict | None], digits: int,
          strict: bool = True, tolerance: float = 0.0) -> tuple[bool | None, str]:
    """The lowest mean of `mine` against the highest of `others` (label → mean ± std stat): strict, above them by
    more than the noise (the larger std over seeds, at least half the printed precision); not strict, not below
    by more than the noise or `tolerance` (an equivalence margin: the largest loss a paper still calls "on a par").
    None if a value is undefined. Returns (verdict, detail)."""
    if any(v is None for v in (*mine.values(), *others.values())):
        return None, f"{where}: undefined ({', '.join(m for m, v in {**mine, **others}.items() if v is None)})"
    low, high, margin, noise, edge = _beats_edge(mine, others, digits, strict, tolerance)
    ok = margin > edge if strict else margin >= edge
    note = (f", a difference within the noise ±{noise:.{digits + 1}f}" if abs(margin) <= noise else
            f", within the margin of a par ±{tolerance:.{digits}f}" if not strict and abs(margin) <= tolerance else "")
    return ok, f"{where}: {low} {mine[low]['mean']:.{digits}f} vs {high} {others[high]['mean']:.{digits}f}{note}"


def _beats_edge(mine: dict[str, dict], others: dict[str, dict], digits: int, strict: bool,
                tolerance: float) -> tuple[str, str, float, float, float]:
    """`beats`' deciding pair and rule: (mine's lowest, others' highest, the margin between their means, the noise,
    the edge the margin must pass: the noise when strict, −max(noise, tolerance) when not)."""
    low = min(mine, key=lambda m: mine[m]["mean"])
    high = max(others, key=lambda m: others[m]["mean"])
    noise = max(mine[low]["std"], others[high]["std"], 0.5 * 10 ** -digits)
    return low, high, mine[low]["mean"] - others[high]["mean"], noise, noise if strict else -max(noise, tolerance)


def beats_within_spread(mine: dict[str, dict | None], others: dict[str, dict | None], digits: int,
                        strict: bool = True, tolerance: float = 0.0) -> bool:
    """Whether `beats`' verdict (same arguments) lies within the seeds' spread: its margin is nearer its edge than
    the larger standard deviation (≥ 2 seeds each) of the deciding pair, so more seeds can turn it. False when a
    value is missing or the deciding pair has one seed."""
    if not mine or not others or any(v is None for v in (*mine.values(), *others.values())):
        return False
    low, high, margin, _, edge = _beats_edge(mine, others, digits, strict, tolerance)
    if mine[low].get("n", 0) < 2 or others[high].get("n", 0) < 2:  # the deciding pair's spread, not the others'
        return False
    return abs(margin - edge) < max(mine[low]["std"], others[high]["std"])


def claim_detail(results: Sequence[tuple[Any, ...]]) -> str:
    """The details of a claim's comparisons ((verdict, detail, …) each, as `beats` gives them; what follows is
    ignored): when one fails, the failing ones first and the holding ones apart, so that a comparison that holds
    never reads as evidence against, then those that could not be judged (undefined, not checkable). When none
    fails but some could not be judged, the holding ones are named so too: the claim as a whole is not checkable,
    and its judged part (attention_vat's Attention level beside its constant Word models) would otherwise read
    as numbers without a verdict."""
    failing, holding, unjudged = ([d for ok, d, *_ in results if ok is want] for want in (False, True, None))
    if not failing and not (holding and unjudged):
        return "; ".join(d for _, d, *_ in results)
    return "; ".join([*([f"fails: {'; '.join(failing)}"] if failing else []),
                      *([f"holds: {'; '.join(holding)}"] if holding else []), *unjudged])


def verdict_words(holds: bool | None, missing: str, bold: bool = False) -> str:
    """A claim's verdict in the report's words: holds / does not hold, or `missing` when it is not testable."""
    if holds is None:
        return missing
    words = "holds" if holds else "does not hold"
    return f"**{words}**" if bold else words


def all_hold(verdicts: Iterable[bool | None]) -> bool | None:
    """Three-valued AND of claim verdicts: False if any fails, else None (not testable) if any is None
    (a missing value), else True. None as well when there is no verdict at all."""
    verdicts = list(verdicts)
    if False in verdicts:
        return False
    return None if not verdicts or None in verdicts else True


def plot_values(values: Iterable[Any]) -> list[float]:
    """Numbers for matplotlib: a missing value (None, NaN, inf) becomes NaN, which leaves a gap in the line."""
    return [math.nan if finite(v) is None else float(v) for v in values]


def embedding_skip_reason(x: Any, min_points: int = 5) -> str | None:
    """Why a 2-D embedding (t-SNE) of the rows of `x` (N, D) must not be computed, or None when it can be.

    Degenerate inputs: NaN / inf values; fewer than `min_points` rows; rows identical up to rounding (spread
    max_j (max_i x_ij − min_i x_ij) ≤ 1e-9 · max(1, max |x|)), e.g. the latents of a collapsed model. On those
    scikit-learn's TSNE divides by a zero standard deviation in its PCA initialisation and its Barnes–Hut tree
    then crashes the whole process (a segfault, no exception), so the check must come first. Numpy only."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        return f"expected a 2-D array (points × features), got shape {x.shape}"
    if len(x) < min_points:
        return f"{len(x)} point(s), fewer than {min_points}"
    bad = int((~np.isfinite(x)).any(axis=1).sum())
    if bad:
        return f"{bad} of {len(x)} points hold NaN or infinite values"
    spread = float(np.ptp(x, axis=0).max()) if x.shape[1] else 0.0
    if spread <= 1e-9 * max(1.0, float(np.abs(x).max())):
        return f"all {len(x)} points are identical up to rounding (spread {spread:.3g}): nothing to embed"
    return None


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def band_verdict(ours: dict[str, Any], paper: tuple[float, float], lower_is_better: bool = True) -> str:
    """On real data: within the paper's mean ± 2·(paper std + our std) band, or better / worse; "– (missing)"
    when our value is missing."""
    if finite(ours.get("mean")) is None:
        return f"{MISSING} (missing)"
    tolerance = 2 * (paper[1] + ours["std"])
    diff = ours["mean"] - paper[0]
    if abs(diff) <= tolerance:
        return "within band"
    return "better" if (diff < 0) == lower_is_better else "worse"


_HELD: contextlib.ExitStack | None = None  # while `main` builds the summaries: the figures saved, not yet renamed


def save_figure(fig, path: str | Path) -> str:
    """Save a matplotlib figure atomically (during `main`, renamed into place only once every paper's summary is
    built); returns the path relative to plots/ for Markdown links."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with contextlib.ExitStack() as own:
        fig.savefig((_HELD or own).enter_context(atomic_path(path, suffix=".png")), format="png", dpi=110,
                    bbox_inches="tight")
    plt.close(fig)
    return str(path.relative_to(REPORT_PATH.parent))


def md_cell(value: Any) -> str:
    """`value` as the text of one Markdown table cell: on one line, its '|' escaped (a column separator otherwise)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def claims_at_a_glance(sections: Sequence[Section]) -> list[str]:
    """The report's first table: every paper's claims (its summary's `claims`, in order) in words (its section's
    `claim_texts`; the key where a text is missing), each verdict (holds / does not hold / not checkable) with a
    link to the section that gives its numbers, the verdicts counted, and the devices the variants ran on: a
    verdict whose margin lies within the seeds' spread can read otherwise on another CPU or GPU; those the
    section's summary lists in `claims_within_spread` ({key: bool}) are marked so, and those it lists in
    `claims_near_margin` (a fixed margin met by less than a run moves across CPUs; one seed suffices) too."""
    rows, counts, close, near = [], {"holds": 0, "does not hold": 0, "not checkable": 0}, 0, 0
    for s in sections:
        for key, holds in s.summary.get("claims", {}).items():
            verdict = verdict_words(holds, "not checkable")
            counts[verdict] += 1
            within = bool(s.summary.get("claims_within_spread", {}).get(key))
            at_margin = bool(s.summary.get("claims_near_margin", {}).get(key))
            close, near = close + within, near + at_margin
            rows.append([f"[{s.paper}](#{s.paper})", md_cell(s.claim_texts.get(key, f"`{key}`")),
                         (f"**{verdict}**" if holds is not None else verdict) + spread_mark(within, at_margin)])
    if not rows:
        return []
    devices = sorted({d for s in sections for d in s.summary.get("run", {}).get("devices", "").split("; ") if d})
    one_seed = [s.paper for s in sections if s.summary.get("run", {}).get("seeds") == 1]
    holds, fails = counts["holds"], counts["does not hold"]
    return ["## Claims at a glance", "",
            f"{holds} {'holds' if holds == 1 else 'hold'}, {fails} {'does' if fails == 1 else 'do'} not, "
            f"{counts['not checkable']} not checkable; {close} marked {WITHIN_SPREAD}: a difference the verdict rests "
            "on (or, for a rule with a margin, its distance from the margin) is smaller than the seeds' standard "
            "deviation, so that more seeds, another CPU or a GPU can turn it (with one seed nothing is marked so"
            + (f": {', '.join(one_seed)} trained one, so {'its' if len(one_seed) == 1 else 'their'} close verdicts go "
               "without this mark" if one_seed else "")
            + ")" + (f"; {near} marked {NEAR_MARGIN}: a rule's fixed margin (censor's D_sim threshold) is met, or "
                     "missed, by less than a bound set from how far the same code's run moved between two CPUs (the "
                     "section gives both), so that another machine can turn it, one seed or many" if near else "")
            + ". Each paper's section gives the numbers. "
            f"Trained on {'; '.join(devices) or 'an unrecorded device'}: a verdict by a narrow margin can read "
            "otherwise on another CPU or GPU (README, Quick start).", "",
            md_table(["paper", "claim", "verdict"], rows), ""]


def run_summary(records: Iterable[dict]) -> dict[str, Any]:
    """Where and how fast the variants ran (from the `run` block every metrics file carries). `seeds`: how many
    distinct training seeds (0 when no record names one). `threads`: the torch CPU thread counts they were trained
    with, e.g. "2" or "1, 2", which can differ from params.yaml's `runtime.threads`: it is no training stage's param,
    so DVC's run cache restores a stage trained with another."""
    runs = []
    for r in records:
        if "run" in r:
            run, path = r["run"], getattr(r, "path", "a metrics file")
            if not isinstance(run, dict):
                raise DataError(f"{path}: run: {_kind(run)}, expected an object ({_rerun(Path(path))})")
            for name in ("seconds", "samples_per_s"):  # summed: a float's range at most; a duration, a rate
                if finite(value := run.get(name, 0.0)) is None or not 0 <= value <= MAX_MAGNITUDE:
                    raise DataError(f"{path}: run.{name} = {_short(value)}: not a number in 0 … {MAX_MAGNITUDE:g} "
                                    f"({_rerun(Path(path))})")
            if not isinstance(run["device"], str):
                raise DataError(f"{path}: run.device = {_short(run['device'])}: not a string ({_rerun(Path(path))})")
            runs.append(run)
    if not runs:
        return {}
    devices = sorted({f"{r['device']} ({device_label(r)})" for r in runs})
    threads = sorted({r["threads"] for r in runs if type(r.get("threads")) is int})  # (not a bool)
    seeds = {r["seed"] for r in runs if type(r.get("seed")) is int}
    return {"devices": "; ".join(devices), "seeds": len(seeds), "threads": ", ".join(map(str, threads)) or "?",
            "torch": runs[0]["torch"], "data_source": runs[0]["data_source"],
            "train_seconds_total": round(sum(r.get("seconds", 0.0) for r in runs), 1),
            "samples_per_s_mean": round(sum(r.get("samples_per_s", 0.0) for r in runs) / len(runs), 1)}


# what a report's reading of a metrics value of the wrong type raises: named as bad input, with the last key read
BAD_VALUE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, ZeroDivisionError)


def _build_sections(params: dict) -> tuple[list[Section], dict[str, dict]]:
    """Every paper's report section and summary (its `summarize`), the missing-values note appended."""
    _GATHERED.clear()
    sections, summaries = [], {}
    for paper in PAPERS:
        if paper not in params:
            continue
        module = paper_module(paper)
        cfg = load_section(module.Config, paper, PARAMS_FILE, params)
        _LAST_READ.clear()
        try:
            section = module.summarize(cfg, params)
        except BAD_VALUE_ERRORS as err:
            # a value of the wrong type or range in a metrics file (a list where a number belongs, null where an
            # object does): one line naming the last file and key read, with the error, not a traceback
            where = _LAST_READ[0] if _LAST_READ else f"metrics/{paper}/"
            detail = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            raise DataError(f"{where}: wrong type or range for the {paper} report ({detail}); "
                            f"{rerun_hint(f'eval_{paper}')}") from None
        note = missing_note(paper)
        if note:
            section.markdown = f"{section.markdown.rstrip()}\n\n{note}\n"
        sections.append(section)
        summaries[paper] = section.summary
    return sections, summaries


def main() -> None:
    global _HELD
    params = read_params()
    profile = meta_profile(params, "?")  # (checked before any summary is written)
    try:  # a later paper's bad metrics file leaves every summary, figure included, as it was
        with contextlib.ExitStack() as _HELD:
            sections, summaries = _build_sections(params)
    finally:
        _HELD = None
    for paper, summary in summaries.items():
        write_json(Path("metrics") / f"{paper}.json", summary)
    header = [
        "# replab report: paper vs reproduced",
        "",
        f"Profile: **{profile}**. Regenerated by `dvc repro` (stage `report`); every number below is read "
        "from `metrics/<paper>/*.json`, the papers' numbers from each paper module's reference tables.",
        "On embedded stand-in data (the quick profile) numbers are not comparable with the papers'; the "
        "verdicts there judge the paper's qualitative claim.",
        "",
        "Contents: " + ", ".join(f"[{s.paper}](#{s.paper})" for s in sections),
        "",
        *claims_at_a_glance(sections),
    ]
    body = [f'<a id="{s.paper}"></a>\n\n## {s.title}\n\n{s.markdown.strip()}\n' for s in sections]
    with atomic_path(REPORT_PATH, suffix=".md") as tmp:
        tmp.write_text("\n".join(header) + "\n" + "\n".join(body))
    print(f"wrote {REPORT_PATH} ({len(sections)} papers)")


# ---------------------------------------------------------------------------------------------------------
# Trade-off curves (censor's Fig. 2): lower envelopes and their comparison at thresholds

def lower_envelope(x: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold t: the lowest y among the points with x ≥ t (NaN if none); censor's Fig. 2: x = label F1,
    y = user accuracy, both in %."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = x[None, :] >= np.asarray(thresholds, float)[:, None]
    return np.where(ok.any(1), np.where(ok, y[None, :], np.inf).min(1), np.nan)


def envelope_difference(a: np.ndarray, b: np.ndarray, first: str, second: str) -> tuple[np.ndarray, str]:
    """a − b at the thresholds that envelope a or b reaches (each +inf where it reaches none; ±inf where only one
    does), and those numbers in words (a's and b's names: `first`, `second`)."""
    import numpy as np

    reached = np.isfinite(a) | np.isfinite(b)
    d = a[reached] - b[reached]
    finite = d[np.isfinite(d)]
    plural = "" if len(finite) == 1 else "s"
    words = [f"{finite.mean():+.1f} points on average over {len(finite)} threshold{plural}" if len(finite) else
             "no threshold both reach"]
    words += [f"{n} reached by {who} only" for n, who in ((int((d == -np.inf).sum()), first),
                                                         (int((d == np.inf).sum()), second)) if n]
    return d, ", ".join(words)


def envelope_better(d: np.ndarray, tol: float, counted: np.ndarray | None = None) -> bool:
    """Whether envelope a is better (lower) than b from d = a − b (`envelope_difference`): b reaches no threshold
    that a misses (no +inf), and a is lower than b by more than tol on average where both reach, or a reaches
    thresholds that b misses (−inf) and is not higher by more than tol on average where both reach. (The mean of d
    itself read −inf, "better", whenever a alone reached a threshold: +38 points where both reach counted as
    better.) `counted`: for each −inf of d, in order, whether it counts for a (censor: only where a censors; LSM
    "beat" AFL at five F_y^v thresholds AFL never reaches, its user accuracy there the CNN's: no privacy)."""
    import numpy as np

    finite = d[np.isfinite(d)]
    mean = finite.mean() if len(finite) else 0.0
    alone = (d == -np.inf).any() if counted is None else bool(np.any(counted))
    return bool(len(d) and not (d == np.inf).any() and (mean < -tol or (alone and mean <= tol)))
