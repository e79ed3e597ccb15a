"""The daemon's command line: config, flags, the root lock, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import tomllib

import pytest

from pycontainerd.distribution.coordination import DEFAULT_MAX_CONCURRENT_UNPACKS
from tests.support.daemon import Ctr, DaemonProcess

pytestmark = pytest.mark.e2e
DAEMON = [sys.executable, "-m", "pycontainerd.cmd.daemon"]


def test_config_default_is_valid_toml_in_containerds_shape():
    out = subprocess.run([*DAEMON, "config", "default"], capture_output=True, check=True).stdout
    config = tomllib.loads(out.decode())
    assert config["version"] == 2
    assert config["root"] == "/var/lib/pycontainerd"
    assert config["state"] == "/run/pycontainerd"
    assert config["grpc"]["address"] == "/run/pycontainerd/pycontainerd.sock"
    assert "io.containerd.gc.v1.scheduler" in config["plugins"]
    transfer = config["plugins"]["io.containerd.transfer.v1.local"]
    assert transfer["max_concurrent_unpacks"] == DEFAULT_MAX_CONCURRENT_UNPACKS


def test_second_daemon_on_the_same_root_refuses(daemon):
    other = subprocess.run(
        [
            *DAEMON,
            "--root",
            str(daemon.root),
            "--state",
            str(daemon.base / "state2"),
            "-a",
            str(daemon.base / "other.sock"),
        ],
        capture_output=True,
        timeout=60,
    )
    assert other.returncode != 0
    message = other.stderr.decode()
    assert "already using root" in message and str(daemon.root) in message
    assert Ctr(daemon.address).ok("version")  # the first one is unharmed


def test_flags_override_the_config_file(daemon):
    # The fixture's config names pcd.sock; the flag moves the socket.
    daemon.stop()
    moved = daemon.base / "moved.sock"
    proc = subprocess.Popen(
        [*DAEMON, "-c", str(daemon.config_path), "-a", str(moved), "-l", "info"],
        stderr=subprocess.PIPE,
    )
    try:
        from tests.support.wait import wait_for

        wait_for(moved.exists, "the socket named by --address", 20)
        assert "Server:" in Ctr(moved).ok("version")
        assert not daemon.address.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_shut_down_cleanly(daemon, sig):
    daemon.proc.send_signal(sig)
    assert daemon.proc.wait(20) == 0
    assert not daemon.address.exists()
    assert "pycontainerd stopped" in daemon.log()
    daemon.start()  # the root lock was released
    assert "Server:" in Ctr(daemon.address).ok("version")


def test_config_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("version = [\n")
    result = subprocess.run([*DAEMON, "-c", str(bad)], capture_output=True, timeout=30)
    assert result.returncode == 1
    assert "not valid TOML" in result.stderr.decode()
    missing = subprocess.run([*DAEMON, "-c", str(tmp_path / "nope.toml")], capture_output=True)
    assert missing.returncode == 1 and "does not exist" in missing.stderr.decode()


def test_socket_in_use_is_refused(daemon):
    other = DaemonProcess()
    try:
        other.config_path.write_text(
            other.config_path.read_text().replace(str(other.address), str(daemon.address))
        )
        with pytest.raises(RuntimeError, match="in use|already listening"):
            other.start()
    finally:
        other.cleanup()
    assert "Server:" in Ctr(daemon.address).ok("version")
