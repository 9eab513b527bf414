"""Rules of the code base that keep Prefect's entrypoint loading and the docs honest."""

from __future__ import annotations

import ast
import importlib.util
import sysconfig
from pathlib import Path

from pydantic import BaseModel

from flows import lake
from flows.config import IngestConfig
from flows.quality import SIGNAL_NAMES
from tests.conftest import REPO

FLOWS = REPO / "flows"
ORCHESTRATION = {"ingest.py", "local_api.py"}


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
    for path in [*FLOWS.rglob("*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("bench/**/*.py")]:
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
