"""The default seccomp profile and its alternatives."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.oci import (
    default_profile,
    generate_spec,
    with_added_capabilities,
    with_seccomp_default,
    with_seccomp_profile,
    with_seccomp_unconfined,
)


def _names_allowed(profile: dict) -> set[str]:
    return {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
        for name in rule["names"]
    }


def test_default_profile_shape() -> None:
    spec = generate_spec("default", "c1", with_seccomp_default)
    profile = spec["linux"]["seccomp"]
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = _names_allowed(profile)
    assert {"read", "write", "execve", "exit_group", "openat", "futex"} <= allowed
    assert not {"mount", "unshare", "reboot", "kexec_load", "init_module"} & allowed
    assert json.loads(json.dumps(profile)) == profile


def test_x86_64_architectures_and_extras() -> None:
    profile = default_profile(generate_spec("default", "c1"), machine="x86_64")
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert {"arch_prctl", "modify_ldt"} <= _names_allowed(profile)
    arm = default_profile(generate_spec("default", "c1"), machine="aarch64")
    assert arm["architectures"] == ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]
    assert "arch_prctl" not in _names_allowed(arm)


def test_without_sys_admin_clone_is_restricted() -> None:
    profile = default_profile(generate_spec("default", "c1"), machine="x86_64")
    clone = [r for r in profile["syscalls"] if r["names"] == ["clone"]]
    assert clone == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    clone3 = [r for r in profile["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]
    s390 = default_profile(generate_spec("default", "c1"), machine="s390x")
    assert next(r for r in s390["syscalls"] if r["names"] == ["clone"])["args"][0]["index"] == 1


def test_capabilities_widen_the_profile() -> None:
    spec = generate_spec(
        "default", "c1", with_added_capabilities(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"])
    )
    profile = default_profile(spec)
    allowed = _names_allowed(profile)
    assert {"mount", "unshare", "setns", "clone", "clone3", "process_vm_readv"} <= allowed
    assert not any(r["action"] == "SCMP_ACT_ERRNO" for r in profile["syscalls"])


def test_personality_rules() -> None:
    profile = default_profile(generate_spec("default", "c1"))
    values = [r["args"][0]["value"] for r in profile["syscalls"] if r["names"] == ["personality"]]
    assert values == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]


def test_unconfined_and_custom_profile(tmp_path: Path) -> None:
    spec = generate_spec("default", "c1", with_seccomp_default, with_seccomp_unconfined)
    assert "seccomp" not in spec["linux"]
    custom = {"defaultAction": "SCMP_ACT_ALLOW"}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(custom))
    assert generate_spec("d", "c", with_seccomp_profile(path))["linux"]["seccomp"] == custom
    with pytest.raises(NotFound):
        generate_spec("d", "c", with_seccomp_profile(tmp_path / "missing.json"))
    path.write_text("{")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        generate_spec("d", "c", with_seccomp_profile(path))
