"""The layers of design.md, checked on the imports of the source tree."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pycontainerd"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offenders(folder: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in sorted(_imports(path)):
            if name.startswith(forbidden) and not name.startswith(allowed):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return bad


@pytest.mark.parametrize(
    "forbidden",
    ["pycontainerd.api.runtime", "pycontainerd.shim_v2", "pycontainerd.client"],
)
def test_services_reach_the_runtime_only_through_its_interface(forbidden: str) -> None:
    """Services are thin adapters: no shim messages, no shim internals, no SDK."""
    assert _offenders("services", (forbidden,)) == []


def test_the_runtime_knows_the_shim_only_through_the_contract() -> None:
    """The daemon's runtime and pycontainerd's shim share one contract module."""
    allowed = ("pycontainerd.shim_v2.contract",)
    assert _offenders("runtime", ("pycontainerd.shim_v2",), allowed) == []
    for folder in ("services", "metadata", "content", "snapshots", "cmd"):
        assert _offenders(folder, ("pycontainerd.shim_v2",), allowed) == []


def test_the_contract_is_a_leaf() -> None:
    """Importing the contract pulls in nothing of the shim (its entry points import lazily)."""
    contract = PACKAGE / "shim_v2" / "contract.py"
    tree = ast.parse(contract.read_text())
    top_level = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not any(name.startswith("pycontainerd.shim_v2") for name in top_level)


@pytest.mark.parametrize(
    "forbidden",
    [
        "pycontainerd.client",
        "pycontainerd.shim_v2",
        "pycontainerd.api.runtime.v2.task",
        "pycontainerd.ttrpc",
        "pycontainerd.runtime.shim_task",
    ],
)
def test_cri_runs_in_process_over_stores_and_the_task_interface(forbidden: str) -> None:
    """The CRI plugin calls the daemon's stores and runtime, never the SDK or a shim."""
    assert _offenders("cri", (forbidden,)) == []
    assert _offenders("restart", (forbidden,)) == []  # the restart monitor likewise


@pytest.mark.parametrize(
    "folder", ["services", "cri", "distribution", "transfer", "sandbox", "restart"]
)
def test_the_daemon_side_never_imports_the_sdk(folder: str) -> None:
    """The daemon reaches its stores in-process; shared machinery lives below the SDK."""
    assert (PACKAGE / folder).is_dir(), f"pycontainerd/{folder} is gone: update this list"
    assert _offenders(folder, ("pycontainerd.client",)) == []


def test_the_sdk_reexports_the_distribution_machinery() -> None:
    """The SDK's pull/push/unpack modules are the distribution package's, not copies."""
    from pycontainerd.client import pull, push, transfer, unpack
    from pycontainerd.distribution import fetch
    from pycontainerd.distribution import pull as dist_pull
    from pycontainerd.distribution import push as dist_push
    from pycontainerd.distribution import unpack as dist_unpack

    assert pull.pull is dist_pull.pull
    assert push.push is dist_push.push
    assert unpack.unpack_layers is dist_unpack.unpack_layers
    assert transfer.RegistryToContent is fetch.RegistryToContent


def test_the_daemon_imports_neither_grpc_nor_a_registry_client_at_start() -> None:
    """grpc is the clients' library: in the daemon it would cost ~19 MiB resident and its threads.
    The registry client (requests) costs ~9 MiB and waits for the first pull or push.

    The daemon with every built-in plugin loaded (as `pycontainerd` starts it) has no
    module of grpc's, no generated ``*_pb2_grpc`` one, and no requests.
    """
    probe = (
        "import sys\n"
        "import pycontainerd.cmd.daemon, pycontainerd.server\n"
        "from pycontainerd.builtins import load_builtin_plugins\n"
        "load_builtin_plugins()\n"
        "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')"
        " or m.endswith('_pb2_grpc') or m == 'requests'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    ).stdout
    assert out.strip() == "[]"
