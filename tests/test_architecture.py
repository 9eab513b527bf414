"""Rules of the code base: Prefect's entrypoint loading, the docs honest, and the shape a newcomer finds their way in
(module and function sizes, no import cycle, packages that name their API, no private names across modules)."""

from __future__ import annotations

import ast
import importlib.util
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from flows import lake
from flows.config import IngestConfig
from flows.quality import SIGNAL_NAMES
from tests.support.paths import REPO

FLOWS = REPO / "flows"
ORCHESTRATION = {"ingest.py", "local_api.py"}
SCRIPTS = ("bench", "tools")
BENCH_OUTPUT = REPO / "bench" / "out"
"""Git-ignored: what benchmarks build (a datatrove virtual environment among it), not the project's code."""
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def script_files() -> list[Path]:
    """The Python files of bench/ and tools/, without the benchmarks' output."""
    return [p for d in SCRIPTS for p in sorted((REPO / d).glob("**/*.py")) if not p.is_relative_to(BENCH_OUTPUT)]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_never_imports_prefect() -> None:
    for path in FLOWS.rglob("*.py"):
        if path.relative_to(FLOWS).as_posix() in ORCHESTRATION:
            continue
        offenders = {m for m in imported_modules(path) if m.split(".")[0] in {"prefect", "prefect_dask"}}
        assert not offenders, f"{path.name} imports {offenders}: only {ORCHESTRATION} may use Prefect"


def test_siftlake_modules_are_imported_as_flows_modules() -> None:
    own = {p.stem for p in FLOWS.glob("*.py")} | {p.parent.name for p in FLOWS.glob("*/__init__.py")}
    scripts = script_files()
    for path in [*FLOWS.rglob("*.py"), *REPO.glob("tests/**/*.py"), *scripts]:
        bare = {m for m in imported_modules(path) if m.split(".")[0] in own}
        assert not bare, f"{path} imports {bare} without the flows. prefix (two copies of each class under Prefect)"


def _installed(name: str) -> bool:
    """Whether ``name`` imports as a module or package of its own. A plain folder on the path, such as
    the ``lake/`` that ``make run`` writes in the working directory, is only a namespace package: it
    counts when it lies in site-packages."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    if spec.origin is not None:
        return True
    site_dirs = [Path(d).resolve() for d in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])]
    return any(Path(place).resolve().is_relative_to(d) for place in spec.submodule_search_locations or []
               for d in site_dirs)


def test_no_module_is_named_after_an_installed_package() -> None:
    top_level = [p.stem for p in FLOWS.glob("*.py")] + [p.parent.name for p in FLOWS.glob("*/__init__.py")]
    for name in top_level:
        if name.startswith("_"):
            continue
        assert not _installed(name), f"flows/{name} shadows the package {name!r}"


def _field_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _field_names(annotation, f"{prefix}{name}.")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_readme_documents_every_column_and_setting() -> None:
    readme = (REPO / "README.md").read_text()
    columns = lake.documents_schema(SIGNAL_NAMES).names + lake.REJECTS_SCHEMA.names
    missing = [c for c in columns if f"`{c}`" not in readme]
    assert not missing, f"README.md does not document the columns {missing}"
    settings = [name for name in _field_names(IngestConfig) if f"`{name}`" not in readme]
    assert not settings, f"README.md does not document the settings {settings}"


# -- the shape of flows/ -----------------------------------------------------------------------------------------


def flows_modules() -> dict[str, Path]:
    """Every module of flows/ by its dotted name; a package's ``__init__.py`` is the module of the package."""
    modules = {}
    for path in sorted(FLOWS.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_no_module_is_over_450_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in flows_modules().items()}
    long = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them along their sections): {long}"


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for name, path in flows_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def module_level_imports(tree: ast.Module, every: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: top level, inside if/try/with, not under TYPE_CHECKING;
    with ``every``, all its imports (those for type checkers and those inside functions as well)."""
    if every:
        yield from (node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom))
        return
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                pending += [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            pending += [*node.body, *(s for h in node.handlers for s in h.body), *node.orelse, *node.finalbody]
        elif isinstance(node, ast.With):
            pending += node.body


def import_edges(name: str, path: Path, modules: dict[str, Path], every: bool = False) -> set[str]:
    """The flows modules that importing ``name`` runs. ``from flows.x import y`` runs flows.x.y when y is a module,
    flows.x otherwise; importing flows.x.y also runs the package flows.x, unless ``name`` lives inside it (then
    the package is already being imported)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in module_level_imports(ast.parse(path.read_text()), every):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    edges = set()
    for target in targets:
        parts = target.split(".")
        for depth in range(2, len(parts) + 1):
            ancestor = ".".join(parts[:depth])
            if ancestor in modules and ancestor != name and not (name + ".").startswith(ancestor + "."):
                edges.add(ancestor)
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


@pytest.mark.parametrize("every", [False, True], ids=["module-level", "every-import"])
def test_the_import_graph_has_no_cycle(every: bool) -> None:
    """No cycle among the imports a module runs on import; nor once every import is counted, those for type
    checkers and those inside functions too (an import that closes a circle late still ties two modules into one)."""
    modules = flows_modules()
    graph = {name: import_edges(name, path, modules, every) for name, path in modules.items()}
    cycle = " -> ".join(find_cycle(graph) or [])
    assert not cycle, f"import cycle: {cycle} (inside a package, import sibling modules directly)"


def test_the_cycle_finder_sees_a_cycle_through_a_package() -> None:
    assert find_cycle({"flows.a": {"flows.b.c"}, "flows.b": {"flows.b.c"}, "flows.b.c": {"flows.a"}}) == [
        "flows.a", "flows.b.c", "flows.a"]
    assert find_cycle({"flows.a": {"flows.b"}, "flows.b": set()}) is None


def test_every_package_names_its_job_and_its_public_api() -> None:
    for folder in sorted(p for p in FLOWS.rglob("*") if p.is_dir() and any(p.glob("*.py"))):
        init = folder / "__init__.py"
        assert init.is_file(), f"{folder.relative_to(REPO)} has no __init__.py"
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init.relative_to(REPO)} has no docstring saying the package's job"
        names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)}
        assert "__all__" in names, f"{init.relative_to(REPO)} does not name its public API in __all__"


def test_no_module_imports_a_private_name_of_another() -> None:
    offenders = []
    for name, path in flows_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("flows"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and node.module != name:
                    offenders.append(f"{name} imports {private} from {node.module}")
    assert not offenders, "private names are the module's own: " + "; ".join(offenders)


def uses_sys_path(tree: ast.AST) -> bool:
    return any(isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
               and node.value.id == "sys" for node in ast.walk(tree))


def test_scripts_never_edit_sys_path() -> None:
    """bench/ and tools/ run as ``python -m bench.x`` from the repository with the package installed: they import
    ``flows`` and their own helpers without editing sys.path."""
    scripts = script_files()
    edits = [str(p.relative_to(REPO)) for p in scripts if uses_sys_path(ast.parse(p.read_text()))]
    assert not edits, f"scripts that edit sys.path: {edits}"
