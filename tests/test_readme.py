"""The README's Python example runs as written (against the emulator)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mobizon_batch.emulator import MobizonEmulator
from tests.helpers import TEST_KEY

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_python_example_sends_a_list(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.csv").write_text(
        "phone,name\n+7 701 000 00 01,Aigerim\n8 747 000 00 02,Erzhan\n12,broken\n",
        encoding="utf-8",
    )
    exec(compile(example, "README.md", "exec"), {})
    assert "2 rows to send" in capsys.readouterr().out
    assert sorted(m.text for m in api_env.messages()) == ["Hello Aigerim!", "Hello Erzhan!"]
    results = (tmp_path / "results.csv").read_text(encoding="utf-8-sig")
    assert results.count(",sent,") == 2 and ",invalid," in results
    assert TEST_KEY not in results


def test_the_layout_lists_every_module_once_with_a_layer() -> None:
    """A new module gets its line in "Development → Layout"; a removed one loses it."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index("Layout: `mobizon_batch/`") :]
    listing = re.search(r"```\n(.*?)```", block, re.S)
    assert listing is not None
    rows = [line.split()[:2] for line in listing.group(1).splitlines()]
    package = README.parent / "mobizon_batch"
    modules = sorted(str(p.relative_to(package)) for p in package.rglob("*.py"))
    assert sorted(name for name, _ in rows) == modules
    layers = {"root", "cli", "runs", "domain", "edges", "ground", "beside"}
    assert {name: layer for name, layer in rows if layer not in layers} == {}
