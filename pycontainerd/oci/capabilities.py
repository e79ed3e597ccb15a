"""Linux capability names by number, and the capabilities this process holds."""

from __future__ import annotations

from pathlib import Path

# Index = capability number (linux/capability.h).
KNOWN_CAPABILITIES: tuple[str, ...] = tuple(
    "CAP_" + name
    for name in [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
)


def capabilities_from_mask(mask: int) -> list[str]:
    """Names of the known capabilities whose bits are set in ``mask``."""
    return [name for bit, name in enumerate(KNOWN_CAPABILITIES) if mask >> bit & 1]


def current_capabilities(status_path: Path = Path("/proc/self/status")) -> list[str]:
    """The effective capabilities of this process (what a privileged container gets).

    Like containerd's ``WithAllCurrentCapabilities``: inside a restricted
    environment this is less than every known capability, and asking the
    runtime for more would fail.
    """
    for line in status_path.read_text().splitlines():
        if line.startswith("CapEff:"):
            return capabilities_from_mask(int(line.split(":", 1)[1].strip(), 16))
    return []
