"""The import layers of design.md: arrows point down, only cli/ prints."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mobizon_batch"


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def below_cli() -> list[Path]:
    skip = {PACKAGE / "__init__.py", PACKAGE / "__main__.py"}
    return [p for p in PACKAGE.rglob("*.py") if "cli" not in p.parts and p not in skip]


def test_nothing_below_the_command_line_imports_it() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in imported(path) if "cli" in n.split("."))
        for path in below_cli()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_domain_does_not_import_the_use_cases() -> None:
    domain = [p for p in below_cli() if "runs" not in p.parts]
    assert len(domain) > 10
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in domain
        if any(
            n == "mobizon_batch.runs" or n.startswith("mobizon_batch.runs.") for n in imported(p)
        )
    ]
    assert offenders == []


def test_the_use_cases_never_print_or_exit() -> None:
    runs = sorted((PACKAGE / "runs").glob("*.py"))
    assert runs
    calls = {
        f"{path.name}:{node.lineno}"
        for path in runs
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in {"print", "exit"})
            or (isinstance(node.func, ast.Attribute) and node.func.attr in {"exit", "_exit"})
        )
    }
    assert calls == set()
    assert all("tqdm" not in imported(path) for path in runs)
