"""Applying update field masks the way containerd's stores do."""

from __future__ import annotations

from collections.abc import Iterable

from pycontainerd import errdefs


def apply_map_paths(
    current: dict[str, str],
    requested: dict[str, str],
    paths: Iterable[str],
    prefix: str,
) -> tuple[dict[str, str], list[str]]:
    """Apply `<prefix>` and `<prefix>.<key>` paths to a map.

    Returns the new map and the paths that were not about this map, for the
    caller to handle or refuse.
    """
    result = dict(current)
    rest: list[str] = []
    for path in paths:
        if path == prefix:
            result = dict(requested)
        elif path.startswith(prefix + "."):
            key = path[len(prefix) + 1 :]
            result[key] = requested.get(key, "")
        else:
            rest.append(path)
    return result, rest


def refuse_unknown(paths: list[str], kind: str, name: str) -> None:
    if paths:
        raise errdefs.InvalidArgument(
            f"cannot update {', '.join(repr(p) for p in paths)} on {kind} {name!r}"
        )
