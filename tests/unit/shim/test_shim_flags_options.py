"""Command-line flags (Go flag syntax) and runtime options decoding."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2, descriptor_pb2

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.shim_v2.flags import ShimFlags, parse_flags
from pycontainerd.shim_v2.options import (
    LEGACY_OPTIONS_TYPE,
    ROOT_ENV,
    RUNC_OPTIONS_TYPE,
    RuntimeOptions,
    decode_options,
    legacy_options_class,
    read_options,
    write_options,
)


def test_containerd_start_command_line() -> None:
    flags = parse_flags(
        ["-namespace", "k8s", "-address", "/run/c.sock", "-publish-binary", "/usr/bin/containerd",
         "-id", "abc", "-debug", "start"]
    )  # fmt: skip
    assert (flags.namespace, flags.id, flags.address) == ("k8s", "abc", "/run/c.sock")
    assert flags.publish_binary == "/usr/bin/containerd"
    assert flags.debug and flags.action == "start"


def test_go_flag_spellings() -> None:
    flags = parse_flags(["--namespace=ns", "-id=x", "-debug=false", "--bundle", "/b", "delete"])
    assert (flags.namespace, flags.id, flags.bundle, flags.debug) == ("ns", "x", "/b", False)
    assert flags.action == "delete"
    assert parse_flags(["-namespace", "ns"]).action == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-nope", "x"], "not defined"),
        (["-id"], "needs an argument"),
        (["-debug=maybe"], "boolean"),
    ],
)
def test_bad_flags_are_invalid_arguments(argv: list[str], message: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match=message):
        parse_flags(argv)


def test_flags_round_trip_for_the_spawned_shim() -> None:
    flags = ShimFlags(namespace="ns", id="c", address="/a", debug=True, listen_fd="3")
    assert parse_flags(flags.to_argv()) == flags


def _any(type_url: str, message) -> any_pb2.Any:  # type: ignore[no-untyped-def]
    return any_pb2.Any(type_url=type_url, value=message.SerializeToString())


def test_runc_options_are_decoded() -> None:
    message = oci_pb2.Options(
        binary_name="crun", root="/r", systemd_cgroup=True, no_pivot_root=True, io_uid=5
    )
    options = decode_options(_any(RUNC_OPTIONS_TYPE, message))
    assert options == RuntimeOptions(
        binary_name="crun", root="/r", systemd_cgroup=True, no_pivot_root=True, io_uid=5
    )
    # A "type.googleapis.com/" style URL names the same type.
    assert decode_options(_any("type.googleapis.com/" + RUNC_OPTIONS_TYPE, message)) == options


def test_legacy_runctypes_options_are_decoded() -> None:
    legacy = legacy_options_class()(
        runtime="/usr/bin/runc", runtime_root="/rr", systemd_cgroup=True
    )
    options = decode_options(_any(LEGACY_OPTIONS_TYPE, legacy))
    assert (options.binary_name, options.root, options.systemd_cgroup) == (
        "/usr/bin/runc", "/rr", True
    )  # fmt: skip


def test_no_options_means_runc_with_a_namespaced_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    options = decode_options(None)
    assert options.binary == "runc"
    assert options.runtime_root("ns1") == "/run/containerd/runc/ns1"
    monkeypatch.setenv(ROOT_ENV, "/tmp/elsewhere")
    assert decode_options(any_pb2.Any()).runtime_root("ns1") == "/tmp/elsewhere/ns1"
    assert RuntimeOptions(root="/given").runtime_root("ns1") == "/given/ns1"


def test_unknown_or_corrupt_options_are_invalid() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="unsupported runtime options"):
        decode_options(_any("some.Other", descriptor_pb2.FileDescriptorProto()))
    with pytest.raises(errdefs.InvalidArgument, match="not a valid"):
        decode_options(any_pb2.Any(type_url=RUNC_OPTIONS_TYPE, value=b"\xff\xff\xff"))


def test_options_survive_in_the_bundle(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert read_options(str(tmp_path)) == RuntimeOptions()
    options = RuntimeOptions(binary_name="crun", root="/r")
    write_options(str(tmp_path), options)
    assert read_options(str(tmp_path)) == options
    assert (tmp_path / "runtime").read_text() == "crun"
