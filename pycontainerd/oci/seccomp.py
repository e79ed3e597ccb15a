"""Seccomp: containerd's default allow-list profile, or none at all.

The default spec carries no seccomp profile (as in containerd, where
``ctr run --seccomp`` opts in). ``with_seccomp_default`` installs an
allow-list profile whose default action is SCMP_ACT_ERRNO; it widens the list
for the capabilities in the bounding set, so apply it after capability options.
"""

from __future__ import annotations

import errno
import json
import os
import platform
from pathlib import Path
from typing import Any

from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.oci.seccomp_syscalls import ALWAYS_ALLOWED_SYSCALLS
from pycontainerd.oci.spec import Spec, SpecOpt, linux_of, process_of

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"

_ARCHITECTURES: dict[str, list[str]] = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"],
    "s390x": ["SCMP_ARCH_S390", "SCMP_ARCH_S390X"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}

_ARCH_SYSCALLS: dict[str, list[str]] = {
    "x86_64": ["arch_prctl", "modify_ldt"],
    "i686": ["modify_ldt"],
    "aarch64": [
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ],
    "ppc64le": ["sync_file_range2", "swapcontext"],
    "s390x": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
    "riscv64": ["riscv_flush_icache"],
}
_ARCH_SYSCALLS["armv7l"] = _ARCH_SYSCALLS["aarch64"]

_CAPABILITY_SYSCALLS: dict[str, list[str]] = {
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
    "CAP_SYS_ADMIN": [
        "bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "name_to_handle_at",
        "open_tree",
        "perf_event_open",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare",
    ],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": [
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
    ],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}

# personality(2) personas a container may switch to: PER_LINUX, UNAME26,
# PER_LINUX32, PER_LINUX32|UNAME26, and 0xffffffff (query only).
_ALLOWED_PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

# clone(2) flags that create namespaces: NEWNS, NEWUTS, NEWIPC, NEWUSER,
# NEWPID, NEWNET, NEWCGROUP. Without CAP_SYS_ADMIN, clone must not set any.
_CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000
_CLONE_NAMESPACE_FLAGS |= 0x20000000 | 0x40000000 | 0x02000000


def _rule(names: list[str], action: str = ALLOW, **extra: Any) -> dict[str, Any]:
    return {"names": list(names), "action": action, **extra}


def _arg_equals(index: int, value: int) -> dict[str, Any]:
    return {"index": index, "value": value, "op": "SCMP_CMP_EQ"}


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-", 1)[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (IndexError, ValueError):
        return False


def default_profile(spec: Spec, machine: str | None = None) -> dict[str, Any]:
    """The default profile for ``spec``'s bounding capabilities on ``machine``."""
    machine = machine or platform.machine()
    syscalls = [_rule(list(ALWAYS_ALLOWED_SYSCALLS))]
    syscalls += [_rule(["personality"], args=[_arg_equals(0, p)]) for p in _ALLOWED_PERSONAS]
    if _kernel_at_least(4, 8):
        # Before 4.8, ptrace could be used to bypass seccomp.
        syscalls.append(_rule(["ptrace"]))
    if machine in _ARCH_SYSCALLS:
        syscalls.append(_rule(_ARCH_SYSCALLS[machine]))

    bounding = process_of(spec).get("capabilities", {}).get("bounding", [])
    syscalls += [_rule(_CAPABILITY_SYSCALLS[c]) for c in bounding if c in _CAPABILITY_SYSCALLS]
    if "CAP_SYS_ADMIN" not in bounding:
        flags_arg = 1 if machine.startswith("s390") else 0
        clone_rule = {
            "index": flags_arg,
            "value": _CLONE_NAMESPACE_FLAGS,
            "valueTwo": 0,
            "op": "SCMP_CMP_MASKED_EQ",
        }
        syscalls.append(_rule(["clone"], args=[clone_rule]))
        # ENOSYS rather than EPERM makes libcs fall back from clone3 to clone.
        syscalls.append(_rule(["clone3"], ERRNO, errnoRet=errno.ENOSYS))
    return {
        "defaultAction": ERRNO,
        "architectures": list(_ARCHITECTURES.get(machine, [])),
        "syscalls": syscalls,
    }


def with_seccomp_default(spec: Spec) -> None:
    """Install the default profile (after capabilities are final)."""
    linux_of(spec)["seccomp"] = default_profile(spec)


def with_seccomp_unconfined(spec: Spec) -> None:
    """No seccomp filtering (the default spec's state)."""
    linux_of(spec).pop("seccomp", None)


def with_seccomp_profile(path: str | os.PathLike[str]) -> SpecOpt:
    """Install the JSON profile (an OCI ``linux.seccomp`` object) stored at ``path``."""

    def opt(spec: Spec) -> None:
        try:
            profile = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise NotFound(f"seccomp profile {path} does not exist") from exc
        except ValueError as exc:
            raise InvalidArgument(f"seccomp profile {path} is not valid JSON: {exc}") from exc
        if not isinstance(profile, dict):
            raise InvalidArgument(f"seccomp profile {path} must be a JSON object")
        linux_of(spec)["seccomp"] = profile

    return opt
