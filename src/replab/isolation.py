"""Run the code of the repository a command runs in, never another copy's.

`pip install -e .` puts one checkout's `src/` on sys.path for every process of the environment. A DVC
experiment run with `--queue` or `--temp` runs in a copy of the repository under `.dvc/tmp/exps/`; importing
the installed replab there would run the workspace's code while the experiment's commit and dvc.lock record the
copy's. Stages therefore call `python src/replab …` (src/replab/__main__.py), and the `replab` console script
re-executes itself on the code of the enclosing DVC repository when it imported another one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import replab

REEXEC_ENV = "REPLAB_REEXEC"  # set on re-execution, so a mismatch that persists fails instead of looping


def dvc_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above `start` (default: the working directory) holding `.dvc/`."""
    start = (start or Path.cwd()).resolve()
    return next((d for d in (start, *start.parents) if (d / ".dvc").is_dir()), None)


def repo_package(start: Path | None = None) -> Path | None:
    """`<DVC root>/src/replab` when the enclosing DVC repository is a replab checkout, else None."""
    root = dvc_root(start)
    package = root / "src" / "replab" if root else None
    return package.resolve() if package and (package / "__init__.py").is_file() else None


def imported_package() -> Path:
    return Path(replab.__file__).resolve().parent


def run_own_code(argv: list[str]) -> None:
    """Return when the imported replab is the enclosing repository's (or there is none); otherwise replace this
    process by the same command on the repository's code (quietly: stderr stays the command's own, one line per
    error). Raises RuntimeError when even the re-executed process imports other code (e.g. a `sitecustomize`
    forcing another path)."""
    package = repo_package()
    if package is None or package == imported_package():
        return
    if os.environ.get(REEXEC_ENV) == str(package):
        raise RuntimeError(f"replab: this repository's code is {package}, but {imported_package()} is imported "
                           f"(check PYTHONPATH); run `python {package.relative_to(package.parents[1])} …` instead")
    os.environ[REEXEC_ENV] = str(package)
    # `-c` rather than the package's __main__.py, so that checkouts of commits without one still work
    boot = ("import sys; sys.path[0] = sys.argv.pop(1); from replab.cli import main; sys.exit(main())")
    os.execv(sys.executable, [sys.executable, "-c", boot, str(package.parent), *argv])
