"""The code a function reaches inside replab, and its fingerprint: what a download stage depends on instead of the
whole src/replab/data folder.

DVC deletes a stage's outputs before it reruns it, so a download stage that listed src/replab/data as a dependency
threw its verified archive away whenever any module there changed (a tokenizer in text.py, a split in
recordings.py), and offline could not fetch it again. `closure` follows, statically, every name the function uses
to the top-level statements of replab that bind or change it (`X = …`, `X[k] = …`, a def or class; every one, not
the last) in its own module or in the replab modules it imports (by name, as a module, relatively, with `*`, or
inside a function), and on from there; a module's other top-level statements (a loop filling a table) and those of
the packages above it count wherever the module does. Names outside replab (the standard library, numpy, pooch:
pinned by requirements.txt) end the walk, and so do annotations (a config's fields are params, fingerprinted as
such). A string constant naming a file below the module's folder (usc_had's checksum table) adds that file's bytes.

The fingerprint hashes each statement's source text without comments, docstrings, blank lines or trailing
spaces: an edited comment or docstring changes nothing, and the text, unlike `ast.unparse`, is the same under every
Python version (machines sharing a DVC remote must agree on it). What it cannot see: code reached only dynamically
(`getattr(module, name)`, `importlib`), which no download path uses, and a config's methods (a download reads only
its DOWNLOAD_PARAMS fields: tests/test_download.py)."""

from __future__ import annotations

import ast
import hashlib
import io
import tokenize
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]  # the folder holding the replab package this process runs
PACKAGE = "replab"
TOP_LEVEL = "<top level>"  # the key of a module's statements that bind no one name


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    bindings: dict[str, list[ast.stmt]]  # top-level name → every statement that binds or changes it
    imports: dict[str, list[tuple[str, str | None]]]  # local name → (module, attribute), attribute None: a module
    star: list[str]  # modules imported with *
    lines: list[str]  # the source, comments and docstrings blanked (`_blanked`)


def _module_path(name: str, src: Path) -> Path | None:
    base = src.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _ours(module: str | None) -> bool:
    return module is not None and (module == PACKAGE or module.startswith(PACKAGE + "."))


def _docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _inert(node: ast.stmt) -> bool:
    """A top-level statement that runs nothing a download could depend on: a docstring, an import, the `__main__`
    guard, `if TYPE_CHECKING:` or a try of imports alone."""
    if _docstring(node) or isinstance(node, ast.Import | ast.ImportFrom):
        return True
    if isinstance(node, ast.If):
        return any(name in ast.unparse(node.test) for name in ("__name__", "TYPE_CHECKING"))
    return isinstance(node, ast.Try) and all(isinstance(s, ast.Import | ast.ImportFrom | ast.Pass)
                                             for block in (node.body, *(h.body for h in node.handlers)) for s in block)


def _bound(node: ast.stmt) -> set[str]:
    """The top-level names a statement binds or changes (`X = …`, `X[k] = …`, `X.a += …`, def, class)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = (node.targets if isinstance(node, ast.Assign) else [node.target]
               if isinstance(node, ast.AnnAssign | ast.AugAssign) else [])
    names = set()
    for target in targets:
        for leaf in ast.walk(target):
            while isinstance(leaf, ast.Subscript | ast.Attribute | ast.Starred):
                leaf = leaf.value
            if isinstance(leaf, ast.Name):
                names.add(leaf.id)
    return names


def _blanked(text: str, tree: ast.Module) -> list[str]:
    """The source lines with every comment and docstring replaced by spaces (positions kept)."""
    lines = text.splitlines()
    spans = [(t.start, t.end) for t in tokenize.generate_tokens(io.StringIO(text).readline)
             if t.type == tokenize.COMMENT]
    spans += [((n.body[0].lineno, n.body[0].col_offset), (n.body[0].end_lineno, n.body[0].end_col_offset))
              for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
              and n.body and _docstring(n.body[0])]
    for (row, col), (end_row, end_col) in spans:
        for r in range(row, end_row + 1):
            line = lines[r - 1]
            start, stop = (col if r == row else 0), (end_col if r == end_row else len(line))
            lines[r - 1] = line[:start] + " " * (stop - start) + line[stop:]
    return lines


_PARSED: dict[tuple[str, int, int], Module] = {}  # (path, mtime_ns, size) → Module: an edited file is read again


def _load(name: str, src: Path, cache: dict[str, Module | None]) -> Module | None:
    if name in cache:
        return cache[name]
    path = _module_path(name, src)
    if path is None:
        return cache.setdefault(name, None)
    stat = path.stat()
    if (key := (str(path), stat.st_mtime_ns, stat.st_size)) in _PARSED:
        return cache.setdefault(name, _PARSED[key])
    with tokenize.open(path) as f:  # the file's declared encoding (UTF-8 by default), never the locale's
        text = f.read()
    tree = ast.parse(text, str(path))
    bindings: dict[str, list[ast.stmt]] = defaultdict(list)
    for node in tree.body:
        for bound in _bound(node) or ({TOP_LEVEL} if not _inert(node) else set()):
            bindings[bound].append(node)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imports: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    star = []
    for node in ast.walk(tree):  # top level and inside functions (lazy imports) alike
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            if _ours(module):
                for alias in node.names:
                    if alias.name == "*":
                        star.append(module)
                    else:
                        imports[alias.asname or alias.name].append((module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in (a for a in node.names if _ours(a.name)):
                imports[alias.asname or PACKAGE].append((alias.name if alias.asname else PACKAGE, None))
    _PARSED[key] = Module(name, path, dict(bindings), dict(imports), star, _blanked(text, tree))
    return cache.setdefault(name, _PARSED[key])


def _targets(mod: Module, chain: list[str], src: Path) -> list[tuple[str, str]]:
    """What a name, or a dotted chain `a.b.c` rooted at one, refers to: (module, top-level name) pairs."""
    first, rest = chain[0], chain[1:]
    found = [(mod.name, first)] if first in mod.bindings else []
    for owner, attr in mod.imports.get(first, []):
        module = owner if attr is None else f"{owner}.{attr}" if _module_path(f"{owner}.{attr}", src) else None
        if module is None:
            found.append((owner, attr))
            continue
        for i, part in enumerate(rest):  # down the chain's submodules to the attribute it reads
            if _module_path(f"{module}.{part}", src) is None:
                found.append((module, part))
                break
            module = f"{module}.{part}"
            if i == len(rest) - 1:
                found.append((module, TOP_LEVEL))
    if not found and first not in mod.imports:
        found += [(module, first) for module in mod.star]
    return found


def _text(mod: Module, node: ast.stmt) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    kept = (line.rstrip() for line in mod.lines[start - 1:node.end_lineno])
    return "\n".join(line for line in kept if line.strip())


def _source(mod: Module, symbol: str) -> str:
    """The text of every statement binding `symbol` in `mod`, in file order."""
    return "\n".join(_text(mod, node) for node in mod.bindings[symbol])


def _references(node: ast.stmt) -> Iterable[list[str]]:
    """Each name the statement reads, as the dotted chain it starts (`fetch`, `download.fetch`), annotations left
    out."""
    skip = set()
    for inner in ast.walk(node):
        for note in ([inner.annotation] if isinstance(inner, ast.arg | ast.AnnAssign) and inner.annotation else
                     [inner.returns] if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and inner.returns
                     else []):
            skip.update(map(id, ast.walk(note)))
    for inner in ast.walk(node):
        if id(inner) in skip:
            continue
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load):
            yield [inner.id]
        elif isinstance(inner, ast.Attribute):
            chain, root = [inner.attr], inner.value
            while isinstance(root, ast.Attribute):
                chain.insert(0, root.attr)
                root = root.value
            if isinstance(root, ast.Name):
                yield [root.id, *chain]


def _data_file(mod: Module, value: str) -> Path | None:
    if not value or len(value) > 200 or value.startswith("/") or any(c in value for c in "\n\0"):
        return None
    path = mod.path.parent / value
    return path if path.suffix != ".py" and path.is_file() else None


def closure(module: str, name: str, src: Path = SRC, call_sites: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """"module:name" → the source text (comments and docstrings out) of every top-level statement of replab that
    `name` of `module` reaches, "module:file:<path>" → sha256 of a data file a string constant there names; plus
    the text alone, not followed, of each (module, name) of `call_sites` (what calls the function: a change there
    can change what it writes). KeyError when `name` is not a top-level definition of `module`."""
    src = Path(src).resolve()
    found: dict[str, str] = {}
    modules: dict[str, Module | None] = {}  # this call's view: one version of each file throughout
    root = _load(module, src, modules)
    if root is None or name not in root.bindings:
        raise KeyError(f"{module}.{name}: not a top-level definition of {root.path if root else module}")
    for site_module, site in call_sites:
        site_mod = _load(site_module, src, modules)
        found[f"{site_module}:{site}"] = _source(site_mod, site)
    stack, seen = [(module, name)], set()
    while stack:
        item = stack.pop()
        if item in seen:
            continue
        seen.add(item)
        mod_name, symbol = item
        if (mod := _load(mod_name, src, modules)) is None:
            continue
        parents = mod_name.split(".")
        stack += [(".".join(parents[:i]), TOP_LEVEL) for i in range(1, len(parents))]  # packages' own statements
        if symbol != TOP_LEVEL:
            stack.append((mod_name, TOP_LEVEL))
        if symbol not in mod.bindings:  # imported into this module (a re-export) or from a `*`
            stack += _targets(mod, [symbol], src) if symbol != TOP_LEVEL else []
            continue
        found[f"{mod_name}:{symbol}"] = _source(mod, symbol)
        for node in mod.bindings[symbol]:
            for chain in _references(node):
                stack += _targets(mod, chain, src)
            for inner in ast.walk(node):
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str) and (
                        path := _data_file(mod, inner.value)):
                    found[f"{mod_name}:file:{inner.value}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def fingerprint(module: str, name: str, src: Path = SRC, call_sites: Iterable[tuple[str, str]] = ()) -> str:
    """sha256 (hex) of `closure(module, name, src, call_sites)`: changes when the code the function reaches
    changes, and only then."""
    digest = hashlib.sha256()
    for key, text in sorted(closure(module, name, src, call_sites).items()):
        digest.update(f"{key}\n{text}\n".encode())
    return digest.hexdigest()
