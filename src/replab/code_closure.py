"""The code a function reaches inside replab, and its fingerprint: what a download stage depends on instead of the
whole src/replab/data folder.

DVC deletes a stage's outputs before it reruns it, so a download stage that listed src/replab/data as a dependency
threw its verified archive away whenever any module there changed (a tokenizer in text.py, a split in
recordings.py), and offline could not fetch it again. `closure(module, name)` follows, statically, every name the
function's source uses to the top-level definition it resolves to (a function, class or assignment of its own
module, or one imported from another replab module, imports inside functions included) and on from there;
names outside replab (the standard library, numpy, pooch: pinned by requirements.txt) end the walk, and so do
annotations (a config class's fields are params, fingerprinted as such). A module's top-level statements that bind
no one name (a loop filling a table) count wherever the module does; a string constant naming a file beside the
module (usc_had's checksum table) adds that file. The source is compared as `ast.unparse` without docstrings,
so an edited comment, docstring or layout changes nothing.

What it cannot see: code reached only dynamically (`getattr(module, name)`, `importlib`), which no download path
uses (tests/test_download.py checks what each source's closure holds)."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]  # the folder holding the replab package this process runs
PACKAGE = "replab"
TOP_LEVEL = "<top level>"  # the key of a module's statements that bind no one name


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    definitions: dict[str, ast.AST]  # top-level name → the statement that binds it
    imports: dict[str, tuple[str, str | None]]  # local name → (module, attribute) of a replab import; None: a module


def _module_path(name: str, src: Path) -> Path | None:
    base = src.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _load(name: str, src: Path, cache: dict[str, Module | None]) -> Module | None:
    if name in cache:
        return cache[name]
    path = _module_path(name, src)
    if path is None:
        return cache.setdefault(name, None)
    tree = ast.parse(path.read_text(), str(path))
    definitions: dict[str, ast.AST] = {}
    other: list[ast.stmt] = []  # statements that bind no one name (a loop filling a table): part of every closure
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            definitions[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        definitions[leaf.id] = node
        elif not isinstance(node, ast.Import | ast.ImportFrom) and not _docstring(node) and not _main_guard(node):
            other.append(node)
    if other:
        definitions[TOP_LEVEL] = ast.If(ast.Constant(True), other, [])
    imports: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):  # top level and inside functions (lazy imports) alike
        if isinstance(node, ast.ImportFrom) and node.module and _ours(node.module):
            for alias in node.names:
                imports[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name):
                    imports[alias.asname or alias.name.split(".")[0]] = (alias.asname and alias.name or PACKAGE, None)
    return cache.setdefault(name, Module(name, path, definitions, imports))


def _docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _main_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _without_docstrings_and_annotations(node: ast.AST) -> ast.AST:
    node = ast.parse(ast.unparse(node)).body[0]  # a copy
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and body and _docstring(body[0]):
            inner.body = body[1:] or [ast.Pass()]
        if isinstance(inner, ast.arg):
            inner.annotation = None
        elif isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
            inner.returns = None
    if isinstance(node, ast.AnnAssign):
        node.annotation = ast.Name("_", ast.Load())
    return node


def _target(module: Module, name: str, src: Path) -> tuple[str, str] | str | None:
    """What `name` in `module` refers to: (module, top-level name), a module's name (str), or None (not ours)."""
    if name in module.definitions:
        return module.name, name
    if name not in module.imports:
        return None
    owner, attr = module.imports[name]
    if attr is None:
        return owner
    if _module_path(f"{owner}.{attr}", src) is not None:  # `from replab import download`: a module
        return f"{owner}.{attr}"
    return owner, attr


def closure(module: str, name: str, src: Path = SRC) -> dict[str, str]:
    """"module:name" → normalised source of every top-level definition `name` of `module` reaches inside replab
    (and "module:file:<name>" → sha256 of a file beside a module that a string constant names). KeyError when
    `name` is not defined in `module`."""
    src = Path(src).resolve()
    found: dict[str, str] = {}
    modules: dict[str, Module | None] = {}  # parsed once per call: a file edited between calls is read again
    stack = [(module, name)]
    while stack:
        mod_name, symbol = stack.pop()
        key = f"{mod_name}:{symbol}"
        if key in found:
            continue
        mod = _load(mod_name, src, modules)
        if mod is None or symbol not in mod.definitions:
            if mod is not None and symbol in mod.imports:  # re-exported (`from replab.x import y` in replab/z)
                target = _target(mod, symbol, src)
                if isinstance(target, tuple):
                    stack.append(target)
                continue
            if (mod_name, symbol) == (module, name):
                raise KeyError(f"{module}.{name}: not a top-level definition of {mod.path if mod else module}")
            continue
        node = _without_docstrings_and_annotations(mod.definitions[symbol])
        found[key] = ast.unparse(node)
        if TOP_LEVEL in mod.definitions:
            stack.append((mod_name, TOP_LEVEL))
        for inner in ast.walk(node):
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load):
                target = _target(mod, inner.id, src)
                if isinstance(target, tuple):
                    stack.append(target)
            elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
                target = _target(mod, inner.value.id, src)
                if isinstance(target, str):  # module.attribute
                    stack.append((target, inner.attr))
            elif isinstance(inner, ast.Constant) and isinstance(inner.value, str) and "/" not in inner.value:
                beside = mod.path.parent / inner.value
                if inner.value and beside.is_file() and beside.suffix != ".py":
                    found[f"{mod_name}:file:{inner.value}"] = hashlib.sha256(beside.read_bytes()).hexdigest()
    return found


def fingerprint(module: str, name: str, src: Path = SRC) -> str:
    """sha256 (hex) of `closure(module, name)`: changes when the code the function reaches changes, and only then."""
    digest = hashlib.sha256()
    for key, text in sorted(closure(module, name, src).items()):
        digest.update(f"{key}\n{text}\n".encode())
    return digest.hexdigest()
