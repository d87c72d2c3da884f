"""The import layers of design.md: arrows point down, only cli/ prints."""

from __future__ import annotations

import ast
import subprocess
import sys
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


HEAVY = ("pandas", "numpy", "requests", "phonenumbers", "openpyxl", "python_calamine", "tqdm")


def test_the_command_line_starts_without_the_heavy_modules() -> None:
    """``--help`` (of the tool and of each command) builds the parser from argparse alone.

    Each command imports its use case, and with it pandas, requests and the
    rest, in the function that runs it; a module-level import of one of them
    anywhere under ``cli`` costs every invocation a second or more.  Checked
    in a fresh interpreter, where nothing is loaded yet.
    """
    script = (
        "import sys\n"
        "from mobizon_batch.cli import build_parser\n"
        "parser = build_parser()\n"
        "parser.format_help()\n"
        "commands = next(a for a in parser._actions if a.dest == 'command')\n"
        "for sub in commands.choices.values():\n"
        "    sub.format_help()\n"
        "print(len(commands.choices))\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    count, loaded = done.stdout.splitlines()
    assert int(count) >= 10
    assert loaded == ""


def test_a_command_still_loads_what_it_uses() -> None:
    """The check above can fail: running a command's function loads its modules."""
    script = (
        "import sys\n"
        "from mobizon_batch.cli import main\n"
        "main(['validate', '--quiet', '-'])\n"
        "print(' '.join(m for m in ('pandas', 'phonenumbers') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input="phone,text\n+77011234567,hi\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.splitlines()[-1] == "pandas phonenumbers"
