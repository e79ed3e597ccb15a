"""Runtime names to shim binaries: the table, the naming convention, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.runtime.resolve import binary_name, resolve_shim, runtime_table


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("runtime", "binary"),
    [
        ("io.containerd.runc.v2", "containerd-shim-runc-v2"),
        ("io.containerd.pyrunc.v2", "containerd-shim-pyrunc-v2"),
        ("runsc.v1", "containerd-shim-runsc-v1"),
        ("bogus", ""),
        ("io..v1", ""),
    ],
)
def test_binary_name_follows_containerd_convention(runtime: str, binary: str) -> None:
    assert binary_name(runtime) == binary


def test_runtime_table_defaults_to_our_shim_and_merges_entries() -> None:
    table = runtime_table({"io.containerd.kata.v2": {"shim": "kata-shim"}})
    assert table["io.containerd.runc.v2"] == "containerd-shim-pyrunc-v2"
    assert table["io.containerd.runc.v1"] == "containerd-shim-pyrunc-v2"
    assert table["io.containerd.kata.v2"] == "kata-shim"
    override = runtime_table({"io.containerd.runc.v2": {"shim": "containerd-shim-runc-v2"}})
    assert override["io.containerd.runc.v2"] == "containerd-shim-runc-v2"
    with pytest.raises(errdefs.InvalidArgument, match="needs a `shim` string"):
        runtime_table({"io.containerd.x.v1": {"path": 3}})


def test_resolve_on_path_table_and_absolute(tmp_path: Path, monkeypatch) -> None:
    _executable(tmp_path / "containerd-shim-demo-v1")
    mapped = _executable(tmp_path / "my-shim")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_shim("io.containerd.demo.v1", {}) == str(tmp_path / "containerd-shim-demo-v1")
    assert resolve_shim("io.containerd.other.v1", {"io.containerd.other.v1": "my-shim"}) == str(
        mapped
    )
    assert resolve_shim(str(mapped), {}) == str(mapped)
    assert resolve_shim("custom", {"custom": str(mapped)}) == str(mapped)


def test_resolve_errors_name_the_runtime_and_binary(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(errdefs.NotFound, match="io.containerd.nope.v1.*containerd-shim-nope-v1"):
        resolve_shim("io.containerd.nope.v1", {})
    with pytest.raises(errdefs.InvalidArgument, match="invalid runtime name 'bogus'"):
        resolve_shim("bogus", {})
    with pytest.raises(errdefs.InvalidArgument, match="no runtime name"):
        resolve_shim("", {})
    not_executable = tmp_path / "plain"
    not_executable.write_text("")
    with pytest.raises(errdefs.NotFound, match="not executable"):
        resolve_shim(str(not_executable), {})
