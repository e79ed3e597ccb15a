"""A throwaway registry for tests: Debian's ``docker-registry`` (CNCF distribution 2.8).

Usage::

    with TestRegistry() as registry:            # anonymous
        ...registry.host, registry.url...
    with TestRegistry(users={"alice": "pw"}) as registry:   # htpasswd basic auth
        ...

The process listens on 127.0.0.1 at a free port, stores blobs in a temp dir,
and is always stopped and its directory removed on exit, even after errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from pycontainerd.remotes.auth import CredentialsFunc
from pycontainerd.remotes.resolver import Resolver
from tests.support.procs import stop_process

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3


class RegistryStartError(RuntimeError):
    """The registry process could not be started (missing binary, crashed, port race)."""


def find_registry_binary() -> str:
    path = shutil.which("docker-registry") or shutil.which("registry")
    if path is None:
        raise RegistryStartError(
            "docker-registry not found on PATH: install it with `apt-get install docker-registry`"
        )
    return path


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for an htpasswd file (distribution accepts only bcrypt).

    Uses libcrypt (libxcrypt on Debian supports ``$2b$``) through ctypes, which
    works on every Python version; falls back to the ``bcrypt`` package.
    """
    library = ctypes.util.find_library("crypt")
    if library:
        libcrypt = ctypes.CDLL(library)
        libcrypt.crypt_gensalt.restype = ctypes.c_char_p
        libcrypt.crypt_gensalt.argtypes = [
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        libcrypt.crypt.restype = ctypes.c_char_p
        libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        setting = libcrypt.crypt_gensalt(b"$2b$", 5, None, 0)
        if setting:
            hashed = libcrypt.crypt(password.encode(), setting)
            if hashed and hashed.startswith(b"$2b$"):
                return hashed.decode()
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RegistryStartError(
            "cannot make a bcrypt hash: libcrypt lacks bcrypt support; `pip install bcrypt`"
        ) from exc
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_yaml(
    root: Path, addr: str, htpasswd: Path | None = None, tls: tuple[Path, Path] | None = None
) -> str:
    """docker-registry's config: storage under ``root``/data; ``tls`` is (cert, key)."""
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'data'}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {addr}",
        f"  secret: {secrets.token_hex(16)}",
        *(["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"] if tls else []),
        "health:",
        "  storagedriver:",
        "    enabled: false",
    ]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: test-registry", f"    path: {htpasswd}"]
    return "\n".join(lines) + "\n"


class TestRegistry:
    """A running distribution registry on loopback; use as a context manager."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, users: Mapping[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.port = 0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage_dir(self) -> Path:
        assert self._dir is not None, "registry not started"
        return self._dir / "data"

    def credentials(self) -> CredentialsFunc:
        """A credentials callback answering with the first configured user."""
        user = next(iter(self.users.items()), None)
        return lambda host: user if host == self.host else None

    def resolver(self, credentials: CredentialsFunc | None = None) -> Resolver:
        """A plain-HTTP resolver for this registry (pass ``credentials`` for auth)."""
        return Resolver(plain_http=True, credentials=credentials)

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.host}/{repo}:{tag}"

    def start(self) -> TestRegistry:
        binary = find_registry_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="pycontainerd-registry-"))
        try:
            htpasswd = self._write_htpasswd() if self.users else None
            for attempt in range(_PORT_ATTEMPTS):
                self.port = free_port()
                if self._launch(binary, htpasswd, last=attempt == _PORT_ATTEMPTS - 1):
                    return self
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def _write_htpasswd(self) -> Path:
        assert self._dir is not None
        path = self._dir / "htpasswd"
        path.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in self.users.items()))
        return path

    def _launch(self, binary: str, htpasswd: Path | None, *, last: bool) -> bool:
        """Start the process; False when it lost a port race and should be retried."""
        assert self._dir is not None
        config = self._dir / "config.yml"
        config.write_text(config_yaml(self._dir, self.host, htpasswd))
        log_path = self._dir / "registry.log"
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = log_path.read_text(errors="replace")
                self._process = None
                if "address already in use" in output and not last:
                    return False
                raise RegistryStartError(f"docker-registry exited at start:\n{output}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return True
            time.sleep(0.05)
        raise RegistryStartError(
            f"docker-registry did not answer on {self.url} within {START_TIMEOUT}s:\n"
            + log_path.read_text(errors="replace")
        )

    def stop(self) -> None:
        """Stop the process (TERM, then KILL) and remove the temp dir; safe to repeat."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            stop_process(process, STOP_TIMEOUT)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> TestRegistry:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort if a caller forgot the context manager: never leave it running.
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()
