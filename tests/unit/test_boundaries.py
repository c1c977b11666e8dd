"""The stand-ins and the service stay apart: neither imports the other (lazy imports inside functions included).

An emulator that shared the service's code would agree with its bugs; a service that imported an emulator would
deploy it. The demo (``emulators/demo.py``) is a client of the service and may use it; the host runner loads a
function app by module name, as the real host does, which is no import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The stand-ins, which follow Microsoft's documentation and never the service's code.
STAND_INS = ["emulators/graph", "emulators/servicebus", "emulators/azurite.py", "emulators/functions_host",
             "emulators/functions_host.py", "emulators/functions_worker"]
#: What is deployed.
SERVICE = ["orchestrators", "function_app.py"]


def _files(paths: list[str]) -> Iterator[Path]:
    for relative in paths:
        path = ROOT / relative
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(path.rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module the file imports, with its line: ``import`` and ``from ... import`` statements anywhere, and
    ``importlib.import_module("...")`` or ``__import__("...")`` with a literal name."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def _offences(paths: list[str], forbidden: str) -> list[str]:
    found = []
    for path in _files(paths):
        for line, module in _imports(path):
            if module == forbidden or module.startswith(forbidden + "."):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_the_stand_ins_import_nothing_of_the_service() -> None:
    assert list(_files(STAND_INS)), "the stand-ins were not found"
    offences = _offences(STAND_INS, "orchestrators")
    assert not offences, "a stand-in imports the service:\n" + "\n".join(offences)


def test_the_service_imports_no_emulator() -> None:
    assert list(_files(SERVICE)), "the service was not found"
    offences = _offences(SERVICE, "emulators")
    assert not offences, "the deployed service imports an emulator:\n" + "\n".join(offences)


def test_the_check_sees_lazy_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("import json\n\n"
                      "def later():\n"
                      "    from orchestrators.kernel import settings\n"
                      "    import orchestrators.cli\n"
                      "    return importlib.import_module('orchestrators.app')\n")
    assert sorted(_imports(module)) == [(1, "json"), (4, "orchestrators.kernel"), (5, "orchestrators.cli"),
                                        (6, "orchestrators.app")]
