"""Public registry names (ghcr.io, registry.k8s.io, ...) answered by the test registry.

Some peers' test suites name their images by public references fixed at
compile time (containerd's integration/client pulls
``ghcr.io/containerd/busybox:1.36``). They run inside a network namespace of
the test's own, with a private mount namespace whose /etc/hosts points those
names at 127.0.0.1 there; a second docker-registry process serves the test
registry's storage over TLS on that namespace's port 443, with a certificate
for the names that only the program's ``SSL_CERT_FILE`` trusts. Nothing
changes in the host's network or files, and no packet leaves the namespace.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.netns import NetNamespace
from tests.support.procs import stop_process
from tests.support.registry import TestRegistry, config_yaml, find_registry_binary

START_TIMEOUT = 20.0
HTTPS_PORT = 443


class PublicRegistryNames:
    """Use as a context manager; then run programs with :meth:`argv` and :attr:`env`."""

    def __init__(self, registry: TestRegistry, names: Sequence[str]) -> None:
        self.registry = registry
        self.names = tuple(names)
        self._dir: Path | None = None
        self._netns: NetNamespace | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def certificate(self) -> Path:
        assert self._dir is not None, "not started"
        return self._dir / "cert.pem"

    @property
    def env(self) -> dict[str, str]:
        """What a Go program needs to trust the registry's certificate."""
        return {"SSL_CERT_FILE": str(self.certificate)}

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the namespace, with /etc/hosts naming the registry (private mount)."""
        assert self._netns is not None and self._dir is not None, "not started"
        hosts = self._dir / "hosts"
        return self._netns.argv(
            [
                "unshare", "--mount", "--propagation", "slave", "--",
                "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *argv,
            ]
        )  # fmt: skip

    def __enter__(self) -> PublicRegistryNames:
        self._dir = Path(tempfile.mkdtemp(prefix="public-names-"))
        try:
            self._write_certificate()
            (self._dir / "hosts").write_text(
                "127.0.0.1 localhost\n::1 localhost\n" + f"127.0.0.1 {' '.join(self.names)}\n"
            )
            self._netns = NetNamespace(prefix="pcdpub").__enter__()
            self._serve()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_certificate(self) -> None:
        assert self._dir is not None
        names = ",".join(f"DNS:{name}" for name in self.names)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=pycontainerd test registry",
                "-addext", f"subjectAltName={names},IP:127.0.0.1",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-keyout", str(self._dir / "key.pem"), "-out", str(self.certificate),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def _serve(self) -> None:
        assert self._dir is not None and self._netns is not None
        storage = self.registry.storage_dir.parent  # config_yaml adds the "data" part
        config = self._dir / "config.yml"
        config.write_text(
            config_yaml(
                storage,
                f"127.0.0.1:{HTTPS_PORT}",
                tls=(self.certificate, self._dir / "key.pem"),
            )
        )
        log_path = self._dir / "registry.log"
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._netns.argv([find_registry_binary(), "serve", str(config)]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("docker-registry (TLS) exited:\n" + log_path.read_text())
            if self._listening():
                return
            time.sleep(0.05)
        raise RuntimeError("docker-registry (TLS) did not listen:\n" + log_path.read_text())

    def _listening(self) -> bool:
        assert self._netns is not None
        probe = self._netns.run("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{HTTPS_PORT}")
        return probe.returncode == 0

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            stop_process(process, 10)
        if self._netns is not None:
            self._netns.close()
            self._netns = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
