"""The C library, loaded once per process.

Loaded in the zygote, its handle and function objects are inherited by every
shim forked from it, instead of being built again (and their pages copied) in each.
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
