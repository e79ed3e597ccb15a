"""Each spec option on its own."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.oci import (
    DEFAULT_PATH_ENV,
    current_capabilities,
    default_spec,
    generate_spec,
    host_devices,
    merge_env,
    with_added_capabilities,
    with_all_devices_allowed,
    with_ambient_capabilities,
    with_annotations,
    with_capabilities,
    with_cgroup_path,
    with_cpu_cfs,
    with_cpu_shares,
    with_cpus,
    with_default_unix_devices,
    with_dropped_capabilities,
    with_env,
    with_host_namespace,
    with_host_network,
    with_hostname,
    with_linux_device,
    with_linux_namespace,
    with_memory_limit,
    with_mounts,
    with_no_new_privileges,
    with_pids_limit,
    with_privileged,
    with_process_args,
    with_process_cwd,
    with_readonly_rootfs,
    with_rlimit,
    with_rootfs_path,
    with_seccomp_default,
    with_tty,
    with_tty_size,
    with_uid_gid,
    without_mounts,
)
from pycontainerd.oci.capabilities import capabilities_from_mask


def _spec(*opts) -> dict:
    return generate_spec("default", "c1", *opts)


class TestProcess:
    def test_args_replace(self) -> None:
        spec = _spec(with_process_args("a", "b"), with_process_args("c"))
        assert spec["process"]["args"] == ["c"]

    def test_cwd(self) -> None:
        assert _spec(with_process_cwd("/srv"))["process"]["cwd"] == "/srv"
        with pytest.raises(InvalidArgument, match="absolute"):
            with_process_cwd("srv")

    def test_env_merges_by_key(self) -> None:
        spec = _spec(with_env(["A=1", "B=2"]), with_env(["A=3", "PATH=/bin", "C=x=y"]))
        assert spec["process"]["env"] == ["PATH=/bin", "A=3", "B=2", "C=x=y"]

    def test_env_key_without_value_unsets(self) -> None:
        spec = _spec(with_env(["A=1", "B=2"]), with_env(["A"]))
        assert spec["process"]["env"] == [DEFAULT_PATH_ENV, "B=2"]

    @pytest.mark.parametrize(
        ("base", "overrides", "expected"),
        [
            ([], [], []),
            (["A=1"], ["A"], []),
            (["A=1"], ["A", "A=2"], ["A=2"]),
            (["A=1", "B=2"], ["MISSING"], ["A=1", "B=2"]),
            (["A=1"], ["A=", "B=b"], ["A=", "B=b"]),
        ],
    )
    def test_merge_env_table(self, base: list, overrides: list, expected: list) -> None:
        assert merge_env(base, overrides) == expected

    def test_tty(self) -> None:
        spec = _spec(with_tty, with_tty, with_tty_size(80, 24))
        assert spec["process"]["terminal"] is True
        assert spec["process"]["env"].count("TERM=xterm") == 1
        assert spec["process"]["consoleSize"] == {"width": 80, "height": 24}

    def test_uid_gid_lists_primary_group(self) -> None:
        user = _spec(with_uid_gid(1000, 100))["process"]["user"]
        assert user == {"uid": 1000, "gid": 100, "additionalGids": [100]}

    def test_no_new_privileges_off(self) -> None:
        assert _spec(with_no_new_privileges(False))["process"]["noNewPrivileges"] is False

    def test_rlimit_replaces_same_type(self) -> None:
        spec = _spec(with_rlimit("RLIMIT_NOFILE", 4096, 2048), with_rlimit("RLIMIT_NPROC", 10, 10))
        assert spec["process"]["rlimits"] == [
            {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048},
            {"type": "RLIMIT_NPROC", "hard": 10, "soft": 10},
        ]

    @pytest.mark.parametrize(("type_", "hard", "soft"), [("NOFILE", 1, 1), ("RLIMIT_NOFILE", 1, 2)])
    def test_rlimit_rejects(self, type_: str, hard: int, soft: int) -> None:
        with pytest.raises(InvalidArgument):
            with_rlimit(type_, hard, soft)


class TestCapabilities:
    def test_set(self) -> None:
        caps = _spec(with_capabilities(["CAP_KILL"]))["process"]["capabilities"]
        assert caps == {
            "bounding": ["CAP_KILL"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
        }

    def test_add_and_drop(self) -> None:
        spec = _spec(
            with_added_capabilities(["CAP_SYS_ADMIN", "CAP_KILL"]),
            with_dropped_capabilities(["CAP_NET_RAW", "CAP_MKNOD"]),
        )
        for name in ("bounding", "effective", "permitted"):
            caps = spec["process"]["capabilities"][name]
            assert caps.count("CAP_SYS_ADMIN") == 1 and caps.count("CAP_KILL") == 1
            assert "CAP_NET_RAW" not in caps and "CAP_MKNOD" not in caps
            assert caps[-1] == "CAP_SYS_ADMIN"

    def test_ambient(self) -> None:
        caps = _spec(with_ambient_capabilities(["CAP_NET_BIND_SERVICE"]))["process"]["capabilities"]
        assert caps["ambient"] == caps["inheritable"] == ["CAP_NET_BIND_SERVICE"]

    @pytest.mark.parametrize("bad", ["SYS_ADMIN", "CAP_", "cap_kill", "CAP_A B"])
    def test_names_need_cap_prefix(self, bad: str) -> None:
        with pytest.raises(InvalidArgument, match="CAP_NAME"):
            with_added_capabilities([bad])

    def test_mask_decoding(self) -> None:
        assert capabilities_from_mask(0b1) == ["CAP_CHOWN"]
        assert capabilities_from_mask(1 << 21 | 1 << 5) == ["CAP_KILL", "CAP_SYS_ADMIN"]
        assert capabilities_from_mask(1 << 63) == []

    def test_current_capabilities_reads_status(self, tmp_path: Path) -> None:
        status = tmp_path / "status"
        status.write_text("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000000003\n")
        assert current_capabilities(status) == ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]
        assert "CAP_CHOWN" in current_capabilities()  # tests run as root


class TestLinux:
    def test_hostname_annotations_cgroup(self) -> None:
        spec = _spec(
            with_hostname("box"),
            with_annotations({"a": "1"}),
            with_annotations({"b": "2", "a": "3"}),
            with_cgroup_path("/custom/x"),
        )
        assert spec["hostname"] == "box"
        assert spec["annotations"] == {"a": "3", "b": "2"}
        assert spec["linux"]["cgroupsPath"] == "/custom/x"

    def test_readonly_rootfs_and_path(self) -> None:
        spec = _spec(with_readonly_rootfs, with_rootfs_path("/abs/rootfs"))
        assert spec["root"] == {"path": "/abs/rootfs", "readonly": True}

    def test_mounts_append_and_remove(self) -> None:
        bind = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]}
        spec = _spec(with_mounts([bind]), without_mounts("/run", "/dev/shm"))
        destinations = [m["destination"] for m in spec["mounts"]]
        assert destinations[-1] == "/data"
        assert "/run" not in destinations and "/dev/shm" not in destinations
        with pytest.raises(InvalidArgument, match="absolute"):
            with_mounts([{"destination": "data"}])

    def test_namespaces(self) -> None:
        spec = _spec(
            with_host_namespace("pid"),
            with_linux_namespace("network", "/proc/1/ns/net"),
            with_linux_namespace("cgroup"),
        )
        assert spec["linux"]["namespaces"] == [
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "network", "path": "/proc/1/ns/net"},
            {"type": "cgroup"},
        ]
        with pytest.raises(InvalidArgument, match="namespace type"):
            with_host_namespace("net")

    def test_host_network(self) -> None:
        spec = _spec(with_host_network)
        assert "network" not in [n["type"] for n in spec["linux"]["namespaces"]]
        binds = {m["destination"]: m for m in spec["mounts"] if m["type"] == "bind"}
        assert binds["/etc/hosts"] == {
            "destination": "/etc/hosts",
            "type": "bind",
            "source": "/etc/hosts",
            "options": ["rbind", "ro"],
        }
        assert binds["/etc/resolv.conf"]["options"] == ["rbind", "ro"]
        assert f"HOSTNAME={socket.gethostname()}" in spec["process"]["env"]

    def test_resources(self) -> None:
        spec = _spec(with_memory_limit(64 << 20), with_cpus(1.5), with_cpu_shares(512))
        resources = spec["linux"]["resources"]
        assert resources["memory"] == {"limit": 64 << 20}
        assert resources["cpu"] == {"quota": 150000, "period": 100000, "shares": 512}
        assert resources["devices"] == [{"allow": False, "access": "rwm"}]
        spec = _spec(with_cpu_cfs(20000, 50000), with_pids_limit(64))
        assert spec["linux"]["resources"]["cpu"] == {"quota": 20000, "period": 50000}
        assert spec["linux"]["resources"]["pids"] == {"limit": 64}

    @pytest.mark.parametrize(
        "make", [lambda: with_memory_limit(0), lambda: with_cpus(0), lambda: with_cpu_cfs(-5, 100)]
    )
    def test_resources_reject_nonsense(self, make) -> None:
        with pytest.raises(InvalidArgument):
            make()


class TestDevices:
    def test_default_unix_devices(self) -> None:
        rules = _spec(with_default_unix_devices)["linux"]["resources"]["devices"]
        assert rules[0] == {"allow": False, "access": "rwm"}
        allowed = {(r["type"], r["major"], r.get("minor")) for r in rules[1:]}
        assert ("c", 1, 3) in allowed and ("c", 136, None) in allowed and ("c", 5, 2) in allowed
        assert all(r["allow"] and r["access"] == "rwm" for r in rules[1:])

    def test_all_devices_allowed(self) -> None:
        rules = _spec(with_all_devices_allowed)["linux"]["resources"]["devices"]
        assert rules == [{"allow": True, "access": "rwm"}]

    def test_linux_device(self) -> None:
        spec = _spec(with_linux_device("/dev/null", "rw"))
        device = spec["linux"]["devices"][0]
        assert (device["path"], device["type"], device["major"], device["minor"]) == (
            "/dev/null",
            "c",
            1,
            3,
        )
        assert spec["linux"]["resources"]["devices"][-1] == {
            "allow": True,
            "type": "c",
            "major": 1,
            "minor": 3,
            "access": "rw",
        }

    def test_linux_device_errors(self, tmp_path: Path) -> None:
        with pytest.raises(NotFound):
            _spec(with_linux_device(str(tmp_path / "nope")))
        (tmp_path / "file").write_text("")
        with pytest.raises(InvalidArgument, match="not a block or character device"):
            _spec(with_linux_device(str(tmp_path / "file")))
        with pytest.raises(InvalidArgument, match="rwm"):
            with_linux_device("/dev/null", "x")

    def test_host_devices_skip_per_container_dirs(self) -> None:
        paths = {d["path"] for d in host_devices()}
        assert "/dev/null" in paths
        assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in paths)
        assert "/dev/console" not in paths


class TestPrivileged:
    def test_privileged(self) -> None:
        spec = _spec(with_seccomp_default, with_privileged)
        linux = spec["linux"]
        assert "maskedPaths" not in linux and "readonlyPaths" not in linux
        assert "seccomp" not in linux
        assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
        assert any(d["path"] == "/dev/null" for d in linux["devices"])
        sysfs = next(m for m in spec["mounts"] if m["type"] == "sysfs")
        assert "ro" not in sysfs["options"] and "rw" in sysfs["options"]
        caps = spec["process"]["capabilities"]["bounding"]
        assert "CAP_SYS_ADMIN" in caps  # tests run as root with all capabilities
        assert default_spec("default", "c1")["mounts"][5]["options"][-1] == "ro"


def test_whole_spec_stays_json(tmp_path: Path) -> None:
    spec = _spec(with_privileged, with_host_network, with_tty, with_memory_limit(1 << 30))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(spec))
    assert json.loads(path.read_text()) == spec
    assert os.path.getsize(path) > 0
