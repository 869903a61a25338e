"""The sans-IO core imports no I/O, clock, randomness or concurrency module.

Two checks. A fresh interpreter imports attrs (the one allowed third-party dependency; it uses `threading`
internally) and then every module under fluxkit.protocols, and looks at what newly landed in sys.modules: a
fresh process, so modules imported by pytest itself (which uses `time`) cannot hide a violation. And an AST scan
of the sources rejects any import statement naming a forbidden module, even one attrs happened to load first.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import fluxkit.protocols

FORBIDDEN = (
    "trio",
    "socket",
    "asyncio",
    "threading",
    "time",
    "random",
    "select",
    "selectors",
    "textual",
    "fluxkit_tui",
    "fluxkit.net",
    "subprocess",
)

PROBE = r"""
import json, sys, pkgutil, importlib
import attrs
before = set(sys.modules)
import fluxkit.protocols
names = [m.name for m in pkgutil.walk_packages(fluxkit.protocols.__path__, "fluxkit.protocols.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "new": sorted(set(sys.modules) - before)}))
"""


def _probe() -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_protocols_import_no_io_modules() -> None:
    result = _probe()
    assert len(result["modules"]) >= 1
    bad = [m for m in result["new"] if m.split(".")[0] in FORBIDDEN or m.startswith("fluxkit.net")]
    assert bad == [], f"fluxkit.protocols pulled in forbidden modules: {bad}"


def test_every_protocols_module_is_probed() -> None:
    # Guards the probe itself: a package that fails to list its modules would make the test above vacuous.
    listed = set(_probe()["modules"])
    on_disk = {m.name for m in pkgutil.walk_packages(fluxkit.protocols.__path__, "fluxkit.protocols.")}
    assert listed == on_disk


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    # Imports under `if TYPE_CHECKING:` never run: `random.Random` as an annotation for an injected generator is
    # exactly how the core takes randomness without drawing it itself.
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if not _is_type_checking_block(child):
                stack.append(child)
    return found


def _imported_names(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_protocols_sources_name_no_forbidden_module() -> None:
    root = Path(fluxkit.protocols.__file__).parent
    sources = sorted(root.rglob("*.py"))
    assert sources
    offenders = [
        f"{path.relative_to(root)}: {name}"
        for path in sources
        for name in _imported_names(ast.parse(path.read_text()))
        if name.split(".")[0] in FORBIDDEN or name.startswith("fluxkit.net")
    ]
    assert offenders == []
