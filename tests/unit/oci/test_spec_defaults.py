"""The default spec matches containerd 1.6's populateDefaultUnixSpec."""

from __future__ import annotations

import json

import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.oci import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH_ENV,
    compose,
    copy_spec,
    default_spec,
    generate_spec,
    with_hostname,
    with_process_args,
)


@pytest.fixture
def spec() -> dict:
    return default_spec("default", "web")


def test_top_level(spec: dict) -> None:
    assert spec["ociVersion"] == "1.0.2-dev"
    assert spec["root"] == {"path": "rootfs"}
    assert "hostname" not in spec
    assert set(spec) == {"ociVersion", "process", "root", "mounts", "linux"}


def test_process(spec: dict) -> None:
    process = spec["process"]
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["cwd"] == "/"
    assert process["env"] == [DEFAULT_PATH_ENV]
    assert DEFAULT_PATH_ENV.startswith("PATH=/usr/local/sbin:")
    assert process["noNewPrivileges"] is True
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert "args" not in process and "terminal" not in process


def test_capabilities(spec: dict) -> None:
    caps = spec["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    expected = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    for name in caps:
        assert caps[name] == expected
    assert list(DEFAULT_CAPABILITIES) == expected
    # the three sets are independent lists
    caps["bounding"].append("CAP_SYS_ADMIN")
    assert "CAP_SYS_ADMIN" not in caps["effective"]


def test_mounts(spec: dict) -> None:
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert [m["destination"] for m in spec["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/run",
    ]
    assert by_dest["/proc"] == {
        "destination": "/proc",
        "type": "proc",
        "source": "proc",
        "options": ["nosuid", "noexec", "nodev"],
    }
    assert by_dest["/dev"]["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert by_dest["/dev/pts"]["type"] == "devpts"
    assert by_dest["/dev/pts"]["options"] == [
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
        "gid=5",
    ]
    assert (by_dest["/dev/shm"]["source"], by_dest["/dev/shm"]["options"]) == (
        "shm",
        ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    )
    assert by_dest["/dev/mqueue"]["type"] == "mqueue"
    assert by_dest["/sys"]["options"] == ["nosuid", "noexec", "nodev", "ro"]
    assert by_dest["/run"]["type"] == "tmpfs"
    # mount option lists are not shared between mounts or specs
    by_dest["/proc"]["options"].append("ro")
    assert default_spec("default", "x")["mounts"][0]["options"] == ["nosuid", "noexec", "nodev"]
    assert by_dest["/dev/mqueue"]["options"] == ["nosuid", "noexec", "nodev"]


def test_linux(spec: dict) -> None:
    linux = spec["linux"]
    assert linux["cgroupsPath"] == "/default/web"
    assert linux["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    assert linux["maskedPaths"] == [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
    ]
    assert linux["readonlyPaths"] == [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    assert "seccomp" not in linux


def test_json_round_trip() -> None:
    spec = generate_spec("ns", "c1", with_process_args("/bin/sh", "-c", "echo hi"))
    assert json.loads(json.dumps(spec)) == spec


@pytest.mark.parametrize(
    ("namespace", "container_id"), [("", "x"), ("ns", ""), ("ns", "a/b"), ("..", "x"), ("ns", "..")]
)
def test_names_that_would_escape_the_cgroup_are_refused(namespace: str, container_id: str) -> None:
    with pytest.raises(InvalidArgument):
        default_spec(namespace, container_id)


def test_compose_applies_in_order_and_copy_is_deep() -> None:
    spec = generate_spec("ns", "c", compose(with_hostname("a"), with_hostname("b")))
    assert spec["hostname"] == "b"
    copied = copy_spec(spec)
    copied["process"]["env"].append("X=1")
    assert spec["process"]["env"] == [DEFAULT_PATH_ENV]
