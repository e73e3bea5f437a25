"""The tree shows the architecture: layers import only downwards; the pki surface is pinned."""

from __future__ import annotations

import ast
from pathlib import Path

import packetlab
from packetlab import pki

SRC = Path(packetlab.__file__).parent
# DESIGN.md: layer of each package; a module may import packages of its own layer or lower.
LAYER = {
    "wire": 0,
    "pki": 0,
    "packets": 0,
    "programs": 1,
    "guardian": 1,
    "tls": 1,
    "endpoint": 2,
    "controller": 2,
    "broker": 2,
    "measure": 3,
    "scriptroute": 3,
    "testbed": 4,
    "cli": 5,
}
SAME_LAYER_ALLOWED = {("programs", "guardian"), ("guardian", "programs")}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n.split(".")[1] for n in names if n.startswith("packetlab.") and n.count(".") >= 1}


def test_lower_layers_never_import_higher_ones() -> None:
    checked = 0
    for package, layer in LAYER.items():
        for module in (SRC / package).rglob("*.py") if (SRC / package).is_dir() else ():
            for imported in _imports(module) - {package}:
                assert imported in LAYER, f"{module}: imports unknown package {imported}"
                ok = LAYER[imported] < layer or (package, imported) in SAME_LAYER_ALLOWED
                assert ok, f"{module.relative_to(SRC)} (layer {layer}) imports {imported}"
            checked += 1
    assert checked >= 10


def test_pki_does_no_network_io() -> None:
    for module in (SRC / "pki").rglob("*.py"):
        text = module.read_text()
        for forbidden in ("import socket", "import asyncio", "import ssl", "time.time("):
            assert forbidden not in text, f"{module.name} uses {forbidden}"


def test_pki_public_surface() -> None:
    assert set(pki.__all__) == {name for name in dir(pki) if not name.startswith("_")} - {
        "builder",
        "certificate",
        "chain",
        "info",
        "keys",
        "limits",
        "nvpairs",
        "channels",
        "descriptors",
    }
    for name in (
        "verify_controller_chain",
        "verify_endpoint_chain",
        "verify_agent_cert",
        "build_certificate",
        "build_csr",
        "load_certificates",
        "ChainError",
    ):
        assert name in pki.__all__
