"""OCI whiteout names and their overlayfs equivalents.

In a layer tar ``dir/.wh.name`` deletes ``dir/name`` of the lower layers and
``dir/.wh..wh..opq`` hides all of ``dir``'s lower content. In an overlayfs
upper directory the same facts are a 0/0 character device named ``name`` and
the xattr ``trusted.overlay.opaque=y`` on ``dir``.
"""

from __future__ import annotations

import enum

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = WHITEOUT_PREFIX + WHITEOUT_PREFIX
OPAQUE_MARKER = WHITEOUT_META_PREFIX + ".opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."


class WhiteoutKind(enum.Enum):
    NONE = "none"  # an ordinary entry
    DELETE = "delete"  # .wh.<name>
    OPAQUE = "opaque"  # .wh..wh..opq
    META = "meta"  # other .wh..wh.* names (aufs bookkeeping): ignored


def classify(base: str) -> WhiteoutKind:
    """What an entry's last path component means as a whiteout."""
    if not base.startswith(WHITEOUT_PREFIX):
        return WhiteoutKind.NONE
    if base == OPAQUE_MARKER:
        return WhiteoutKind.OPAQUE
    if base.startswith(WHITEOUT_META_PREFIX):
        return WhiteoutKind.META
    return WhiteoutKind.DELETE


def whiteout_name(base: str) -> str:
    """The tar name component that deletes ``base``."""
    return WHITEOUT_PREFIX + base
