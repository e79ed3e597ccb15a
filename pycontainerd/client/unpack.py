"""The hook a pull calls to unpack layers into a snapshotter.

Unpacking (diff apply + snapshots) is provided by another module, which calls
:func:`register_unpacker` when imported. Until one is registered, asking a
pull to unpack fails before anything is downloaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pycontainerd import errdefs
from pycontainerd.remotes.platforms import PlatformMatcher

if TYPE_CHECKING:
    from pycontainerd.client.client import Client
    from pycontainerd.client.models import Image


class Unpacker(Protocol):
    async def __call__(
        self, client: Client, image: Image, *, snapshotter: str, matcher: PlatformMatcher
    ) -> None:
        """Apply the layers of ``image``'s manifest for ``matcher`` into ``snapshotter``."""
        ...


_unpacker: Unpacker | None = None


def register_unpacker(unpacker: Unpacker | None) -> None:
    """Install the function pulls use to unpack (None removes it)."""
    global _unpacker
    _unpacker = unpacker


def get_unpacker() -> Unpacker:
    if _unpacker is None:
        raise errdefs.NotImplemented_(
            "unpacking images is not available yet: pull without unpack "
            "(pyctr images pull --no-unpack) to fetch the content only"
        )
    return _unpacker
