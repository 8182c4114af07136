"""params.yaml → frozen, validated dataclasses.

Each paper module declares its section as a dataclass whose fields carry their limits
(`param(ge=0)`, `param(choices=...)`). `load_section` checks every key before any work starts and raises
`ParamError` with one line naming the key path and what is allowed, e.g.

    params.yaml: aae_ssl.lambda_rec = -1.0: must be >= 0

Every float (field, list element or mapping value) must be finite: `.inf` and `.nan` are rejected before
any range check, e.g. `params.yaml: aae_ssl.lr = inf: must be finite`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from replab.io import YAMLSyntaxError, not_a_regular_file, not_writable, one_line, parse_yaml

PARAMS_FILE = "params.yaml"
T = TypeVar("T")
# The largest seed a param may hold (`le=SEED_MAX`): NumPy's RandomState takes seeds below 2**32, and the headroom
# covers the small offsets added to a seed for separate streams
SEED_MAX = 2**31 - 1
# runtime.threads' limit: OpenMP could not start 20,000 threads here and crashed the process at 100,000 (no CPU
# has this many cores; a larger value is a typo)
MAX_THREADS = 1024
# The largest size a param may give one axis of a tensor or array (`le=MAX_SIZE`): layer widths and each element of
# a list of them, latent, hidden, embedding and attention sizes, batch sizes, windows, kernels, sequence lengths,
# generated set sizes. 2**20 is far past any paper's scale, and a product of three such sizes (a batch of
# activations, a weight matrix) stays below 2**63: a larger value is a typo, which PyTorch reported deep in a stage
# ("Storage size calculation overflowed") instead of `replab check` naming the key
MAX_SIZE = 2**20
# The largest count of steps or items a param may ask for (`le=MAX_COUNT`): epochs, iterations, repetitions,
# restarts and solver iterations, samples drawn, examples taken from a data set (labeled, unlabeled, held out)
MAX_COUNT = 10**9


class ParamError(ValueError):
    """A params.yaml value is missing, of the wrong type, out of range or not an allowed name."""


def param(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, choices=None,
          each_choices=None, nonempty: bool = False, distinct: bool = True, doc: str = "") -> Any:
    """A dataclass field with validation limits (applied to each element for list fields). List values must be
    distinct (sweep lists) unless `distinct=False` (layer sizes). `nonempty`: a list must hold a value, a string a
    non-blank one."""
    meta = dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, each_choices=each_choices,
                nonempty=nonempty, distinct=distinct, doc=doc)
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def refuse_special_file(path: str | Path = PARAMS_FILE) -> None:
    """ParamError when `path` is a named pipe, socket or device: a read (ours or DVC's) would block or never end. A
    directory or a missing file is left to the read's own one-line error."""
    if (kind := not_a_regular_file(path)) not in (None, "a directory"):
        raise ParamError(f"{path}: is {kind}; allowed: a YAML file")


def read_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    refuse_special_file(path)
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamError(f"{path}: not found (run from the repository root)") from None
    except YAMLSyntaxError as err:
        raise ParamError(f"{path}: not valid YAML ({err})") from None
    except UnicodeDecodeError as err:
        raise ParamError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:  # a directory, no permission
        raise ParamError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise ParamError(f"{path}: must be a mapping of sections")
    return data


def load_section(cls: type[T], section: str, path: str | Path = PARAMS_FILE,
                 params: dict[str, Any] | None = None) -> T:
    """Parse `params[section]` into `cls`, validating every field."""
    params = read_params(path) if params is None else params
    if section not in params:
        raise ParamError(f"{path}: section `{section}` is missing")
    return parse(cls, params[section], f"{path}: {section}")


def yaml_kind(value: Any) -> str:
    """What a YAML value is, in YAML's words (a message's `got null`, not Python's NoneType)."""
    kinds = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    return next((kind for cls, kind in kinds.items() if type(value) is cls), type(value).__name__)


def parse(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ParamError(f"{where} must be a mapping, got {yaml_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamError(f"{key}: missing (required)")
            continue
        values[name] = _convert(hints[name], data[name], key, f.metadata)
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj


def shown(value: Any) -> str:
    """A value in a ParamError message as params.yaml writes it where Python's repr differs: None as `null` (in a
    list or mapping too); else its repr (strings quoted, so that '' and ' 1' stay visible)."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(map(shown, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**24:
        text = str(abs(value))  # (a message holds its first and last digits, not hundreds)
        return f"{'-' if value < 0 else ''}{text[:4]}…{text[-2:]} ({len(text)} digits)"
    return repr(value)


def _convert(tp: Any, value: Any, key: str, meta: typing.Mapping[str, Any]) -> Any:
    written = value  # as read from YAML: an integer 0 was written so, a float 0.0 may be an underflowed literal
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, meta)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ParamError(f"{key} = {shown(value)}: must be a list")
        if meta.get("nonempty") and not value:
            raise ParamError(f"{key}: must list at least one value")
        elem_meta = dict(meta, choices=meta.get("each_choices") or meta.get("choices"))
        items = [_convert(args[0], v, f"{key}[{i}]", elem_meta) for i, v in enumerate(value)]
        if meta.get("distinct", True) and len(set(map(repr, items))) != len(items):
            raise ParamError(f"{key} = {shown(value)}: values must be distinct")
        return items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(f"{key} = {shown(value)}: must be a mapping")
        return {k: _convert(args[1], v, f"{key}.{k}", {}) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{key} = {shown(value)}: must be true or false")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{key} = {shown(value)}: must be an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(f"{key} = {shown(value)}: must be a number")
        try:
            value = float(value) + 0.0  # (+ 0.0: -0.0 is 0.0, one value, not a second sweep point or matrix item)
        except OverflowError:  # an integer beyond float64 (1 and 400 zeros): YAML's float literal would read as inf
            raise ParamError(f"{key} = {shown(value)}: must be finite{BEYOND_FLOAT64}") from None
        if not math.isfinite(value):  # YAML's .inf / .nan pass every range check (inf > 0) or none (nan)
            raise ParamError(f"{key} = {shown(value)}: must be finite{BEYOND_FLOAT64 if math.isinf(value) else ''}")
    elif tp is str:
        if not isinstance(value, str):
            raise ParamError(f"{key} = {shown(value)}: must be a string")
        if meta.get("nonempty") and not value.strip():  # '' would read as "none" (e.g. no mirror) without a word
            raise ParamError(f"{key} = {shown(value)}: empty; omit it or use null for none")
    _check_limits(value, key, meta, written)
    if tp is float and abs(value) > FLOAT32_MAX:  # finite in float64, infinite in the float32 tensors it scales:
        # `check` passed censor.adversarial.lr = 1e39, and training died in RMSprop with a traceback
        raise ParamError(f"{key} = {shown(value)}: must be within ±{FLOAT32_MAX:.4g} (float32's range, the "
                         "tensors' precision)")
    return value


FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max, without importing torch
# YAML reads a number outside float64's range without a word: say so where the value it became is refused
BEYOND_FLOAT64 = " (a number beyond ±1.8e308, e.g. 1e400, reads as inf)"
BELOW_FLOAT64 = " (a number nearer 0 than 2.2e-308, e.g. 1e-400, reads as 0.0)"


def _check_limits(value: Any, key: str, meta: typing.Mapping[str, Any], written: Any = None) -> None:
    """ParamError unless `value` is one of meta's `choices` and within its bounds. `written`: the value as read from
    YAML, before an integer became a float: the hint that a tiny number reads as 0.0 is only given for a float
    0.0 (what Hydra writes for `-S key=1e-400`), never for a 0 written as such."""
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ParamError(f"{key} = {shown(value)}: not allowed (allowed: {', '.join(map(str, choices))})")
    for name, ok, text in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                           ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            underflow = BELOW_FLOAT64 if isinstance(written, float) and written == 0.0 else ""
            raise ParamError(f"{key} = {shown(value)}: must be {text} {bound}{underflow}")


def missing_key(cls: type, data: Any, where: str) -> str | None:
    """The first field of `cls` (nested sections included) that the mapping `data` does not set, as a key path
    under `where`; None when every one is set. `parse` fills an absent key with the code's default, which need
    not be the profile's (`check_params` requires params.yaml to set every key)."""
    if not isinstance(data, dict):
        return None
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            return f"{where}.{f.name}"
        if dataclasses.is_dataclass(hints[f.name]) and (inner := missing_key(hints[f.name], data[f.name],
                                                                              f"{where}.{f.name}")):
            return inner
    return None


# What a command's own output file (bench --json, compare --out) must not replace: the pipeline's files and folders
# (check --marker, the check stages' output, writes into data/ by design: `data_ok`)
PIPELINE_FILES = ("params.yaml", "dvc.yaml", "dvc.lock")
PIPELINE_FOLDERS = ("data", "models", "metrics", "plots", "checkpoints", "conf", "src", "tests", ".dvc", ".git")


def project_file(path: str | os.PathLike, data_ok: bool = False) -> str | None:
    """Why `path` (links resolved) is a file of the project that an output written there would replace, or None: a
    file Git tracks (code, params.yaml, dvc.yaml, dvc.lock, committed metrics), one of PIPELINE_FILES or a path in
    one of PIPELINE_FOLDERS of the project it lies in (the nearest folder above it with a dvc.yaml): DVC's outputs
    and cache, which Git ignores; with `data_ok`, data/ is allowed (the check stages' markers)."""
    target = Path(os.path.realpath(path))
    root = next((p for p in target.parents if (p / "dvc.yaml").is_file()), None)
    if root is not None:
        rel = target.relative_to(root)
        if rel.as_posix() in PIPELINE_FILES:
            return "is a file of the pipeline"
        if len(rel.parts) > 1 and rel.parts[0] in PIPELINE_FOLDERS and not (data_ok and rel.parts[0] == "data"):
            return f"lies in the project's {rel.parts[0]}/, which the pipeline owns"
    return "is a file Git tracks" if git_tracked(target) else None


def git_tracked(path: Path) -> bool:
    """Whether Git tracks the file `path` (False outside a repository or without git)."""
    import subprocess

    if not path.parent.is_dir():
        return False
    try:
        return subprocess.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch", "--", path.name],
                              capture_output=True).returncode == 0
    except OSError:  # no git
        return False


def check_writable(path: str, option: str, markers: tuple[str, ...] = ()) -> None:
    """ParamError unless a file can be written at `path`, the value of the command-line `option` (e.g. "bench
    --json"), so that a bad path fails before the work whose result it is for: also when the file is one of the
    project's (`project_file`). `markers`: the path is for one of these texts (`replab check --marker`, the check
    stages' output): it may lie in data/, and a file already there must hold one of them."""
    if not str(path).strip():
        raise ParamError(f"{option}: empty path (give a file path to write to)")
    if str(path).endswith(("/", os.sep)):  # Path() drops the slash: a folder that does not exist yet became a file
        raise ParamError(f"{option} {path}: a folder's path (give a file path to write to)")
    target = Path(path)
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if (kind := not_a_regular_file(target)) is not None:
        problem = f"is {kind}"
    elif (owned := project_file(target, data_ok=bool(markers))) is not None:
        raise ParamError(f"{option} {path}: {owned} (give a new file's path, e.g. one in the project's top folder)")
    elif markers and target.is_file() and not _holds_one_of(target, markers):
        raise ParamError(f"{option} {path}: holds something other than a marker of `replab check`, which writing "
                         "would replace (give a new file's path)")
    elif parent is not None and not parent.is_dir():
        problem = f"{parent} is not a directory"
    elif (problem := not_writable(parent)) is None:
        return
    raise ParamError(f"{option} {path}: {problem} (give a file path to write to)")


def _holds_one_of(path: Path, texts: tuple[str, ...]) -> bool:
    """Whether the file `path` holds exactly one of `texts` (read only when no larger than the longest)."""
    try:
        if path.stat().st_size > max(len(x.encode()) for x in texts):
            return False
        return path.read_bytes().decode("utf-8", "replace") in texts
    except OSError:
        return False


def check_replaceable_folder(path: str, option: str, keeps: typing.Callable[[Path], bool]) -> None:
    """ParamError unless the folder `path` (the value of the command-line `option`) may be replaced as a whole, as
    `io.atomic_dir` does: a new path, or a folder that holds only entries `keeps` accepts (the files the option
    writes there), none of them a file Git tracks; never the folder the command runs in or one above it. A new
    path loses nothing. Checked before any work."""
    if not str(path).strip():
        raise ParamError(f"{option}: empty path (give a folder path to write to)")
    if os.path.islink(path):  # the write would replace the link itself (with a folder), not what it points to
        raise ParamError(f"{option} {path}: is a symbolic link (give the folder's own path)")
    target = Path(os.path.realpath(path))
    if (above := next((p for p in target.parents if p.exists()), None)) is not None and not above.is_dir():
        raise ParamError(f"{option} {path}: {above} is not a folder (give a folder path to write to)")
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise ParamError(f"{option} {path}: is the folder this command runs in, or one above it, whose every file "
                         "would be replaced (give a new folder's path)")
    if (kind := not_a_regular_file(target)) not in (None, "a directory"):
        raise ParamError(f"{option} {path}: is {kind}, not a folder (give a folder path to write to)")
    if target.exists() and not target.is_dir():
        raise ParamError(f"{option} {path}: is not a folder (give a folder path to write to)")
    if (problem := not_writable(above)) is not None:  # the new folder is made beside the old, in this one
        raise ParamError(f"{option} {path}: {problem} (give a folder path to write to)")
    if target.is_dir():
        try:
            entries = list(target.iterdir())
        except OSError as err:
            raise ParamError(f"{option} {path}: unreadable ({err.strerror}; give a folder path to write to)") from None
        foreign = sorted(e.name for e in entries if not (e.is_file() and keeps(e)) or git_tracked(e))
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise ParamError(f"{option} {path}: holds {foreign[0]}{more}, which writing replaces with the folder as a "
                             "whole (give a new or an empty folder's path)")


def fail(where: str, message: str) -> typing.NoReturn:
    """Raise a ParamError for a cross-field check (used by sections' `check` methods)."""
    raise ParamError(f"{where}.{message}")


# ---------------------------------------------------------------------------------------------------------
# Sections shared by every paper

def check_profile(name: str, where: str, conf: str | Path = "conf", *, no_conf_ok: bool = False) -> None:
    """ParamError unless `name` is a profile: a conf/profile/<name>.yaml (what Hydra composes with profile=<name>).
    `where` starts the message: the option or param key that gave it, e.g. "bench --profile nosuch". With
    `no_conf_ok`, a directory without conf/profile/ (params.yaml alone) is not checked."""
    profiles = Path(conf) / "profile"
    if no_conf_ok and not profiles.is_dir():
        return
    # a plain file name: `../config` names conf/config.yaml, which is no profile (Hydra then fails on the sweep)
    if Path(name).name != name or name.startswith(".") or not (profiles / f"{name}.yaml").is_file():
        known = ", ".join(sorted(p.stem for p in profiles.glob("*.yaml") if p.is_file())) or "none"
        raise ParamError(f"{where}: no {profiles}/{name}.yaml (known: {known})")


PROFILE_PACKAGE = "# @package _global_"  # a profile file's first line: its keys are params.yaml's, not under profile:


def _yaml_scalar(text: str) -> Any:
    """`text` as a YAML value (1 → int, null → None, mine → 'mine'); a text YAML cannot read stays a string."""
    try:
        return parse_yaml(text)
    except YAMLSyntaxError:
        return text


def hydra_package(text: str) -> str | None:
    """The `# @package` a config file's header gives, read as Hydra reads it (blank lines skipped, the header ends at
    the first other line); None without one, or "a malformed header (…)" where Hydra would refuse it."""
    from hydra.plugins.config_source import ConfigSource  # (Hydra's own reading: a private helper, pinned Hydra)

    try:
        return ConfigSource._get_header_dict(text)["package"]
    except ValueError as err:
        return f"a malformed header ({err})"


def check_profile_files(conf: str | Path = "conf") -> None:
    """ParamError unless every conf/profile/<name>.yaml is a regular file whose <name> `profile=` can give, whose
    Hydra header is PROFILE_PACKAGE (`hydra_package`), and which sets meta.profile: <name> and meta.profile_file:
    conf/profile/<name>.yaml. A copy of quick.yaml saved as mine.yaml composed mine's values
    labelled quick: its report and `replab compare` said quick, and `replab sweep` queued `-S profile=quick`, whose
    runs trained quick's values. No conf/profile/ (params.yaml alone): nothing to check."""
    for path in sorted((Path(conf) / "profile").glob("*.yaml")):
        name, where = path.stem, f"{conf}/profile/{path.name}"
        if (kind := not_a_regular_file(path)) is not None:  # a named pipe would block the read
            raise ParamError(f"{where}: is {kind}; allowed: a profile's YAML file")
        # `profile=<name>` as Hydra's override grammar reads it: 1, null or a,b are no name (passed check, failed
        # compose in Hydra's words: "Config group override must be a string or a list. Got int")
        if not isinstance(_yaml_scalar(name), str) or any(c in name for c in ",[]{}()='\"\\"):
            raise ParamError(f"{where}: `{name}` cannot name a profile (`profile={name}` would not read as a name); "
                             "allowed: a name such as mine or paper_gpu")
        try:
            text = path.read_text(encoding="utf-8")
            data = parse_yaml(text)
        except (OSError, UnicodeDecodeError, YAMLSyntaxError) as err:
            raise ParamError(f"{where}: cannot be read as YAML ({one_line(str(err))})") from None
        if (package := hydra_package(text)) != "_global_":  # else Hydra puts the file's keys under `profile:`
            bom = "; the file starts with a byte-order mark: save it as UTF-8 without one" * text.startswith("\ufeff")
            raise ParamError(f"{where}: its header must be `{PROFILE_PACKAGE}` (only blank lines before it), so that "
                             f"its keys are params.yaml's; Hydra reads {package or 'no @package'} there{bom}")
        meta = data.get("meta") if isinstance(data, dict) else None
        expected = {"profile": name, "profile_file": f"conf/profile/{path.name}"}
        for key, value in expected.items():
            got = meta.get(key) if isinstance(meta, dict) else None
            if got != value:
                raise ParamError(f"{where}: meta.{key} = {shown(got)}: must be {value!r}, the file's own "
                                 f"(a run composed from it is labelled, compared and re-queued by meta.profile)")


def meta_profile(params: dict[str, Any], default: Any = None, where: str = PARAMS_FILE) -> Any:
    """params.yaml's meta.profile (the profile composed), `default` without one; ParamError naming `where` (the file,
    or an experiment's) when `meta` is no mapping."""
    meta = params.get("meta", {})
    if not isinstance(meta, dict):
        raise ParamError(f"{where}: meta = {shown(meta)}: must be a mapping (meta.profile: the profile composed)")
    return meta.get("profile", default)


META_KEYS = ("profile", "profile_file")  # both set by the profile file (conf/profile/<name>.yaml)


def check_meta_profile(params: dict[str, Any]) -> None:
    """params.yaml's `meta`: only META_KEYS; `check_profile` of meta.profile, when it names one and the directory has
    conf/profile/; and meta.profile is the profile composed, whose file `meta.profile_file` names (a params.yaml
    without it, an older experiment's, is not checked for that). `-S meta.profile=paper` alone composed the quick
    profile's values labelled paper: its report and `replab compare` said paper, and `replab sweep` queued
    paper-scale runs."""
    meta = params.get("meta", {})
    profile = meta_profile(params)
    if unknown := sorted(str(k) for k in meta if k not in META_KEYS):
        raise ParamError(f"{PARAMS_FILE}: meta.{unknown[0]}: unknown key (allowed: {', '.join(META_KEYS)})")
    check_profile_files()
    if profile is None:
        return
    check_profile(str(profile), f"{PARAMS_FILE}: meta.profile = {shown(profile)}", no_conf_ok=True)
    if (composed := meta.get("profile_file")) is not None and composed != f"conf/profile/{profile}.yaml":
        raise ParamError(f"{PARAMS_FILE}: meta.profile = {shown(profile)}: the profile composed is "
                         f"meta.profile_file = {shown(composed)} (choose a profile with `-S profile={profile}` or "
                         f"`replab compose profile={profile}`, which set both; meta.profile alone changes no value)")


DEVICES = ("auto", "cpu", "cuda", "mps")
# torch.compile's modes; reduce-overhead also captures the compiled graphs as CUDA graphs on a GPU
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
GRAPH_COMPILE_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs
GRAPHLESS_COMPILE_MODES = tuple(m for m in COMPILE_MODES if m not in GRAPH_COMPILE_MODES)  # (runtime.cuda_graph's)


@dataclasses.dataclass(frozen=True)
class Runtime:
    device: str = param("auto", choices=DEVICES, doc="auto picks cuda → mps → cpu")
    threads: int = param(0, ge=0, le=MAX_THREADS,
                         doc="CPU threads of torch, BLAS and OpenMP; 0 = the CPUs ÷ DVC queue workers "
                         "(default_threads)")
    deterministic: bool = param(True, doc="torch deterministic algorithms (same seed → same metrics)")
    tf32: bool = param(True, doc="allow TF32 matmuls on Ampere+ GPUs")
    compile: bool = param(False, doc="train through torch.compile'd models (aae_ssl, split_vae, censor, autoencoder; "
                          "attention_vat trains eagerly): fewer kernel launches for GPU runs")
    compile_mode: str = param("default", choices=COMPILE_MODES,
                              doc="torch.compile mode; reduce-overhead replays CUDA graphs on GPUs (no effect on CPUs)")
    cuda_graph: bool = param(False, doc="replay each training iteration (forward, backward, optimizer step) as one "
                             "CUDA graph (every paper; attention_vat: one per batch shape; CUDA only, no effect "
                             "elsewhere): launch-bound GPU steps")
    progress: bool = param(True, doc="tqdm progress bars")
    checkpoint_every: float = param(300.0, ge=0.0, doc="seconds between training checkpoints (taken at the next "
                                    "iteration / epoch boundary; 0 = at every one); a killed stage resumes there")

    def check(self, where: str) -> None:
        if self.cuda_graph and self.compile and self.compile_mode in GRAPH_COMPILE_MODES:
            raise ParamError(f"{where}.cuda_graph = true with compile_mode = {self.compile_mode!r}: both capture CUDA "
                             "graphs and one cannot hold the other (allowed with cuda_graph: compile false, or "
                             f"compile_mode {', '.join(GRAPHLESS_COMPILE_MODES)})")


def load_runtime(path: str | Path = PARAMS_FILE, params: dict[str, Any] | None = None) -> Runtime:
    return load_section(Runtime, "runtime", path, params)
