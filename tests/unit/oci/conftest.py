"""A fake container rootfs with users and groups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment, then a broken line
broken:x:notanumber:0::/:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
nogroup-user:x:1001:4242::/:/bin/sh
"""

GROUP = """\
root:x:0:
wheel:x:10:root,app
app:x:1000:app
audio:x:29:app
video:x:44:daemon
staff:x:50:
"""


def _write_user_db(root: Path) -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)


@pytest.fixture
def write_user_db() -> Callable[[Path], None]:
    """Writes the test /etc/passwd and /etc/group into a given rootfs."""
    return _write_user_db


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    _write_user_db(root)
    return root
