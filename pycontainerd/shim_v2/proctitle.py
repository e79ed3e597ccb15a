"""Give a forked process the command line and environment an exec would have shown.

A shim forked from the zygote would otherwise show the zygote's command line in
``ps`` and ``/proc/<pid>/cmdline``, and operators and tools find shims by theirs
(``-namespace``, ``-id``, ``-address``). ``prctl(PR_SET_MM, PR_SET_MM_MAP)``
points the kernel's view of argv and environ at new buffers; it needs no
capability as long as the executable is left alone. The buffers must live as long
as the process, so they are kept here.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pycontainerd.shim_v2.libc import libc

_PR_SET_MM = 35
_PR_SET_MM_MAP = 14
_KEEP_EXE_FILE = 0xFFFFFFFF

# Field numbers (1-based, as in proc(5)) of /proc/self/stat.
_START_CODE, _END_CODE, _START_STACK = 26, 27, 28
_START_DATA, _END_DATA, _START_BRK = 45, 46, 47


class _MmMap(ctypes.Structure):
    """struct prctl_mm_map from <linux/prctl.h>."""

    _fields_ = [
        ("start_code", ctypes.c_uint64),
        ("end_code", ctypes.c_uint64),
        ("start_data", ctypes.c_uint64),
        ("end_data", ctypes.c_uint64),
        ("start_brk", ctypes.c_uint64),
        ("brk", ctypes.c_uint64),
        ("start_stack", ctypes.c_uint64),
        ("arg_start", ctypes.c_uint64),
        ("arg_end", ctypes.c_uint64),
        ("env_start", ctypes.c_uint64),
        ("env_end", ctypes.c_uint64),
        ("auxv", ctypes.c_uint64),
        ("auxv_size", ctypes.c_uint32),
        ("exe_fd", ctypes.c_uint32),
    ]


_kept: list[ctypes.Array[ctypes.c_char]] = []


def _nul_joined(items: Sequence[str]) -> ctypes.Array[ctypes.c_char]:
    data = b"".join(os.fsencode(item) + b"\0" for item in items) or b"\0"
    return ctypes.create_string_buffer(data, len(data))


def _stat_field(numbers: Sequence[int]) -> list[int]:
    """Numeric fields of /proc/self/stat by their proc(5) numbers."""
    with open("/proc/self/stat", encoding="ascii", errors="replace") as f:
        after_name = f.read().rsplit(")", 1)[1].split()  # starts at field 3
    return [int(after_name[n - 3]) for n in numbers]


@functools.cache
def _prctl_and_sbrk() -> tuple[Any, Any]:
    """libc's prctl and sbrk with their signatures (set once: the zygote's serve its shims)."""
    prctl, sbrk = libc().prctl, libc().sbrk
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]  # fmt: skip
    sbrk.restype = ctypes.c_void_p
    sbrk.argtypes = [ctypes.c_long]
    return prctl, sbrk


def set_command_line(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Show `argv` and `env` as this process's cmdline and environ; False if the kernel refuses."""
    prctl, sbrk = _prctl_and_sbrk()
    args = _nul_joined(argv)
    environ = _nul_joined([f"{k}={v}" for k, v in env.items()])
    start_code, end_code, start_stack, start_data, end_data, start_brk = _stat_field(
        (_START_CODE, _END_CODE, _START_STACK, _START_DATA, _END_DATA, _START_BRK)
    )
    mm = _MmMap(
        start_code=start_code,
        end_code=end_code,
        start_data=start_data,
        end_data=end_data,
        start_brk=start_brk,
        brk=sbrk(0) or 0,
        start_stack=start_stack,
        arg_start=ctypes.addressof(args),
        arg_end=ctypes.addressof(args) + ctypes.sizeof(args),
        env_start=ctypes.addressof(environ),
        env_end=ctypes.addressof(environ) + ctypes.sizeof(environ),
        auxv=0,
        auxv_size=0,
        exe_fd=_KEEP_EXE_FILE,
    )
    if prctl(_PR_SET_MM, _PR_SET_MM_MAP, ctypes.addressof(mm), ctypes.sizeof(mm), 0) != 0:
        return False
    _kept[:] = [args, environ]
    return True
