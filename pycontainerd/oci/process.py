"""Options for the container's process: args, env, cwd, tty, capabilities, rlimits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.oci.spec import Spec, SpecOpt, capabilities_of, process_of

_CAPABILITY_SETS = ("bounding", "effective", "permitted")

RLIMIT_TYPES = frozenset(
    "RLIMIT_" + name
    for name in [
        "AS",
        "CORE",
        "CPU",
        "DATA",
        "FSIZE",
        "LOCKS",
        "MEMLOCK",
        "MSGQUEUE",
        "NICE",
        "NOFILE",
        "NPROC",
        "RSS",
        "RTPRIO",
        "RTTIME",
        "SIGPENDING",
        "STACK",
    ]
)


def merge_env(base: Sequence[str], overrides: Iterable[str]) -> list[str]:
    """``base`` with each ``KEY=value`` of ``overrides`` replacing or appended by key.

    An override without ``=`` (just ``KEY``) removes that key, as in containerd.
    """
    result = list(base)
    index = {entry.split("=", 1)[0]: i for i, entry in enumerate(result)}
    removed: set[int] = set()
    for entry in overrides:
        key, has_value, _ = entry.partition("=")
        if not has_value:
            if key in index:
                removed.add(index[key])
            continue
        if key in index:
            result[index[key]] = entry
            removed.discard(index[key])
        else:
            index[key] = len(result)
            result.append(entry)
    return [entry for i, entry in enumerate(result) if i not in removed]


def with_process_args(*args: str) -> SpecOpt:
    """Replace the process arguments (argv; args[0] is the program)."""

    def opt(spec: Spec) -> None:
        process_of(spec)["args"] = list(args)

    return opt


def with_env(env: Iterable[str]) -> SpecOpt:
    """Set environment variables, replacing same-named ones (``KEY`` alone unsets)."""
    entries = list(env)

    def opt(spec: Spec) -> None:
        if entries:
            process = process_of(spec)
            process["env"] = merge_env(process.get("env", []), entries)

    return opt


def with_process_cwd(cwd: str) -> SpecOpt:
    if not cwd.startswith("/"):
        raise InvalidArgument(f"working directory {cwd!r} must be an absolute path")

    def opt(spec: Spec) -> None:
        process_of(spec)["cwd"] = cwd

    return opt


def with_tty(spec: Spec) -> None:
    """Give the process a terminal, and TERM=xterm like containerd does."""
    process_of(spec)["terminal"] = True
    with_env(["TERM=xterm"])(spec)


def with_tty_size(width: int, height: int) -> SpecOpt:
    def opt(spec: Spec) -> None:
        process_of(spec)["consoleSize"] = {"width": width, "height": height}

    return opt


def with_uid_gid(uid: int, gid: int) -> SpecOpt:
    """Run as ``uid``/``gid`` without consulting the rootfs."""

    def opt(spec: Spec) -> None:
        set_user(spec, uid, gid, [])

    return opt


def set_user(spec: Spec, uid: int, gid: int, additional_gids: Sequence[int]) -> None:
    """Write process.user; the primary gid is always listed first among the groups."""
    gids = [gid, *(g for g in additional_gids if g != gid)]
    process_of(spec)["user"] = {"uid": uid, "gid": gid, "additionalGids": gids}


def with_no_new_privileges(enabled: bool = True) -> SpecOpt:
    def opt(spec: Spec) -> None:
        process_of(spec)["noNewPrivileges"] = enabled

    return opt


def _check_capabilities(caps: Iterable[str]) -> list[str]:
    checked = list(caps)
    for cap in checked:
        if not cap.startswith("CAP_") or not cap[4:].replace("_", "").isalnum():
            raise InvalidArgument(f"invalid capability {cap!r}: write it as CAP_NAME")
    return checked


def with_capabilities(caps: Iterable[str]) -> SpecOpt:
    """Set the bounding, effective and permitted sets to exactly ``caps``."""
    checked = _check_capabilities(caps)

    def opt(spec: Spec) -> None:
        capabilities = capabilities_of(spec)
        for name in _CAPABILITY_SETS:
            capabilities[name] = list(checked)

    return opt


def with_added_capabilities(caps: Iterable[str]) -> SpecOpt:
    checked = _check_capabilities(caps)

    def opt(spec: Spec) -> None:
        capabilities = capabilities_of(spec)
        for name in _CAPABILITY_SETS:
            current = capabilities.setdefault(name, [])
            current.extend(c for c in checked if c not in current)

    return opt


def with_dropped_capabilities(caps: Iterable[str]) -> SpecOpt:
    dropped = set(_check_capabilities(caps))

    def opt(spec: Spec) -> None:
        capabilities = capabilities_of(spec)
        for name in _CAPABILITY_SETS:
            capabilities[name] = [c for c in capabilities.get(name, []) if c not in dropped]

    return opt


def with_ambient_capabilities(caps: Iterable[str]) -> SpecOpt:
    """Set inheritable and ambient sets (meant for non-root users)."""
    checked = _check_capabilities(caps)

    def opt(spec: Spec) -> None:
        capabilities = capabilities_of(spec)
        capabilities["inheritable"] = list(checked)
        capabilities["ambient"] = list(checked)

    return opt


def with_rlimit(type_: str, hard: int, soft: int) -> SpecOpt:
    """Set one resource limit (e.g. ``RLIMIT_NOFILE``), replacing one of the same type."""
    if type_ not in RLIMIT_TYPES:
        raise InvalidArgument(f"unknown rlimit {type_!r}; use one of {sorted(RLIMIT_TYPES)}")
    if not 0 <= soft <= hard:
        raise InvalidArgument(f"rlimit {type_}: need 0 <= soft ({soft}) <= hard ({hard})")

    def opt(spec: Spec) -> None:
        process = process_of(spec)
        limits = [r for r in process.get("rlimits", []) if r.get("type") != type_]
        limits.append({"type": type_, "hard": hard, "soft": soft})
        process["rlimits"] = limits

    return opt
