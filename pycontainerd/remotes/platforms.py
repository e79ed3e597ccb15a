"""Platforms (os/architecture/variant): parsing, normalizing and matching.

Matching follows containerd's ``platforms.Only``: a host also runs images built
for older variants of its architecture (arm v7 runs v6 and v5; arm64 runs arm
v8..v5; amd64 runs 386), and the matcher orders candidates best first.
"""

from __future__ import annotations

import platform as _host
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pycontainerd.errdefs import InvalidArgument

_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")
_KNOWN_OS = frozenset(
    [
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "windows",
        "zos",
    ]
)
_KNOWN_ARCH = frozenset(
    [
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "ppc64",
        "ppc64le",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    ]
)
# uname -m spellings that differ from the OCI/Go architecture names.
_MACHINE_TO_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
    "armv5tel": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform; ``os_version``/``os_features`` are carried but not matched."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The OCI JSON form (``os.version`` and ``os.features`` keys included when set)."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=str(data.get("variant", "") or ""),
            os_version=str(data.get("os.version", "") or ""),
            os_features=tuple(data.get("os.features") or ()),
        )

    def __str__(self) -> str:
        return format_platform(self)


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """Canonical architecture and variant names (``aarch64`` -> ``arm64``, ``armhf`` -> arm v7)."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize_os(os_name: str) -> str:
    os_name = (os_name or "linux").lower()
    return "darwin" if os_name == "macos" else os_name


def normalize(p: Platform) -> Platform:
    arch, variant = normalize_arch(p.architecture, p.variant)
    return Platform(normalize_os(p.os), arch, variant, p.os_version, p.os_features)


def _host_arch_variant() -> tuple[str, str]:
    machine = _host.machine().lower()
    arch = _MACHINE_TO_ARCH.get(machine, machine)
    variant = ""
    if arch == "arm":
        match = re.match(r"armv(\d)", machine)
        variant = f"v{match.group(1)}" if match else "v7"
    return normalize_arch(arch, variant)


def default_platform() -> Platform:
    """The platform of this host, normalized (e.g. ``linux/amd64``)."""
    arch, variant = _host_arch_variant()
    return Platform(normalize_os(_host.system()), arch, variant)


def parse_platform(spec: str) -> Platform:
    """Parse ``os``, ``arch``, ``os/arch`` or ``os/arch/variant`` like containerd does."""
    parts = spec.split("/")
    if not spec or len(parts) > 3 or not all(_COMPONENT.match(part) for part in parts):
        raise InvalidArgument(
            f"invalid platform {spec!r}: expected <os>[/<arch>[/<variant>]], e.g. linux/arm64/v8"
        )
    if len(parts) == 1:
        os_name = normalize_os(parts[0])
        if os_name in _KNOWN_OS:
            arch, variant = _host_arch_variant()
            return Platform(os_name, arch, variant)
        arch, variant = normalize_arch(parts[0], "")
        if arch not in _KNOWN_ARCH:
            raise InvalidArgument(f"invalid platform {spec!r}: unknown operating system or arch")
        return Platform(default_platform().os, arch, variant)
    os_name = normalize_os(parts[0])
    arch, variant = normalize_arch(parts[1], parts[2] if len(parts) == 3 else "")
    return Platform(os_name, arch, variant)


def format_platform(p: Platform) -> str:
    text = f"{p.os or 'unknown'}/{p.architecture or 'unknown'}"
    return f"{text}/{p.variant}" if p.variant else text


def _compatible(p: Platform) -> list[Platform]:
    """``p`` followed by the older platforms a host of kind ``p`` can also run, best first."""
    out = [p]
    if p.architecture == "amd64":
        level = _variant_number(p.variant)
        if level is not None:
            out += [Platform(p.os, "amd64", f"v{n}") for n in range(level - 1, 0, -1)]
        out.append(Platform(p.os, "386"))
    elif p.architecture == "arm":
        level = _variant_number(p.variant)
        if level is not None:
            out += [Platform(p.os, "arm", f"v{n}") for n in range(level - 1, 4, -1)]
    elif p.architecture == "arm64":
        out += _compatible(Platform(p.os, "arm", p.variant or "v8"))
    return out


def _variant_number(variant: str) -> int | None:
    digits = variant.removeprefix("v")
    return int(digits) if digits.isdigit() else None


class PlatformMatcher:
    """Matches platforms against an ordered list; earlier entries are better matches."""

    def __init__(self, wanted: Iterable[Platform]) -> None:
        self._wanted = [normalize(p) for p in wanted]

    def _rank(self, p: Platform) -> int | None:
        candidate = normalize(p)
        for position, want in enumerate(self._wanted):
            if (candidate.os, candidate.architecture, candidate.variant) == (
                want.os,
                want.architecture,
                want.variant,
            ):
                return position
        return None

    def match(self, p: Platform) -> bool:
        return self._rank(p) is not None

    def less(self, a: Platform, b: Platform) -> bool:
        """True when ``a`` is a strictly better match than ``b``."""
        rank_a, rank_b = self._rank(a), self._rank(b)
        if rank_a is None:
            return False
        return rank_b is None or rank_a < rank_b

    def best(self, candidates: Iterable[Platform]) -> Platform | None:
        """The best matching platform among ``candidates``, or None when none matches."""
        ranked = [(rank, p) for p in candidates if (rank := self._rank(p)) is not None]
        return min(ranked, key=lambda item: item[0])[1] if ranked else None


def only(p: Platform) -> PlatformMatcher:
    """``p`` and what a host of kind ``p`` can also run (containerd's platforms.Only)."""
    return PlatformMatcher(_compatible(normalize(p)))


def only_strict(p: Platform) -> PlatformMatcher:
    return PlatformMatcher([p])


def any_of(*platforms: Platform) -> PlatformMatcher:
    return PlatformMatcher(platforms)


class _AllPlatforms(PlatformMatcher):
    def __init__(self) -> None:
        super().__init__([])

    def _rank(self, p: Platform) -> int | None:
        return 0


ALL = _AllPlatforms()


def default_matcher() -> PlatformMatcher:
    return only(default_platform())
