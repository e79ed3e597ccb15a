"""The OCI runtime wrapper against a fake runtime script: arguments and error mapping."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.oci.runtime import OciRuntime, Stdio, SubprocessRunner, last_log_error
from pycontainerd.shim_v2.metrics import METRICS_TYPE_URL, metrics_from_stats, pack_metrics
from pycontainerd.shim_v2.reaper import Reaper

# Records its arguments; answers like runc would, failing on demand with a JSON log line.
FAKE_RUNTIME = r"""#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
log=""
while [ $# -gt 0 ]; do
  case "$1" in
    --log) log="$2"; shift 2;;
    --root|--log-format) shift 2;;
    --systemd-cgroup) shift;;
    *) break;;
  esac
done
command="$1"
case " $* " in
  *" missing "*) echo '{"level":"error","msg":"container does not exist","time":"t"}' >> "$log"; exit 1;;
  *" dead "*) echo '{"level":"error","msg":"container not running","time":"t"}' >> "$log"; exit 1;;
  *" noisy "*) echo "plain complaint" >&2; exit 2;;
esac
case "$command" in
  ps) echo '[1,2,3]';;
  state) echo '{"id":"c","status":"running"}';;
  events) echo '{"type":"stats","id":"c","data":{"pids":{"current":2}}}';;
  update) cat > "$(dirname "$0")/update-input";;
esac
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    script = tmp_path / "fake-runc"
    script.write_text(FAKE_RUNTIME)
    script.chmod(0o755)
    return script


def _runtime(fake: Path, runner=None) -> OciRuntime:  # type: ignore[no-untyped-def]
    return OciRuntime(
        runner or SubprocessRunner(),
        binary=str(fake),
        root="/state/root",
        log_path=str(fake.parent / "log.json"),
        systemd_cgroup=True,
    )


def _calls(fake: Path) -> list[str]:
    return (fake.parent / "calls").read_text().splitlines()


def test_command_lines(fake: Path) -> None:
    runtime = _runtime(fake)

    async def main() -> None:
        await runtime.create("c", "/bundle", pid_file="/bundle/init.pid", no_pivot=True)
        await runtime.start("c")
        await runtime.exec("c", "/p.json", pid_file="/x.pid", console_socket="/cs")
        await runtime.kill("c", 9, all_processes=True)
        await runtime.delete("c", force=True)
        await runtime.update("c", {"memory": {"limit": 1}})
        assert await runtime.ps("c") == [1, 2, 3]
        assert (await runtime.state("c"))["status"] == "running"
        assert await runtime.stats("c") == {"pids": {"current": 2}}

    asyncio.run(main())
    prefix = (
        f"--root /state/root --log {fake.parent / 'log.json'} --log-format json --systemd-cgroup"
    )
    assert _calls(fake)[:6] == [
        f"{prefix} create --bundle /bundle --pid-file /bundle/init.pid --no-pivot c",
        f"{prefix} start c",
        f"{prefix} exec --process /p.json --pid-file /x.pid --detach --console-socket /cs c",
        f"{prefix} kill --all c 9",
        f"{prefix} delete --force c",
        f"{prefix} update --resources - c",
    ]
    assert json.loads((fake.parent / "update-input").read_text()) == {"memory": {"limit": 1}}


def test_errors_come_from_the_runtime_log(fake: Path) -> None:
    runtime = _runtime(fake)
    with pytest.raises(errdefs.NotFound, match="container does not exist"):
        asyncio.run(runtime.start("missing"))
    with pytest.raises(errdefs.NotFound, match="process already finished"):
        asyncio.run(runtime.kill("dead", 15))
    with pytest.raises(errdefs.FailedPrecondition, match="exit 2.*plain complaint"):
        asyncio.run(runtime.pause("noisy"))


def test_reaper_is_a_command_runner(fake: Path) -> None:
    async def main() -> list[int]:
        reaper = Reaper()
        reaper.install()
        try:
            return await _runtime(fake, reaper).ps("c")
        finally:
            reaper.uninstall()

    assert asyncio.run(main()) == [1, 2, 3]


def test_missing_binary_is_named(tmp_path: Path) -> None:
    # Go's exec package's words, as containerd's shim reports them, then the hint.
    with pytest.raises(errdefs.FailedPrecondition) as missing:
        OciRuntime(SubprocessRunner(), binary="no-such-runc")
    assert '"no-such-runc": executable file not found in $PATH; install it' in str(missing.value)
    nope = tmp_path / "nope"
    with pytest.raises(errdefs.FailedPrecondition) as absent:
        OciRuntime(SubprocessRunner(), binary=str(nope))
    assert f'exec: "{nope}": stat {nope}: no such file or directory' in str(absent.value)
    nope.write_text("")
    with pytest.raises(errdefs.FailedPrecondition, match="permission denied"):
        OciRuntime(SubprocessRunner(), binary=str(nope))


def test_last_log_error_picks_the_last_error() -> None:
    log = b'{"level":"error","msg":"first"}\nnot json\n{"level":"warning","msg":"w"}\n' + (
        b'{"level":"error","msg":"second"}\n'
    )
    assert last_log_error(log) == "second"
    assert last_log_error(b"") == ""


def test_stats_become_cgroup_v1_metrics() -> None:
    stats = {
        "cpu": {"usage": {"total": 100, "percpu": [60, 40], "kernel": 30, "user": 70},
                "throttling": {"periods": 2, "throttledPeriods": 1, "throttledTime": 5}},
        "memory": {"cache": 11, "usage": {"usage": 4096, "limit": 8192, "failcnt": 1},
                   "raw": {"rss": 7, "pgfault": 9, "total_pgmajfault": 3}},
        "pids": {"current": 2, "limit": 10},
        "blkio": {"ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 5}]},
        "hugetlb": {"2MB": {"usage": 1, "max": 2, "failcnt": 0}},
        "network_interfaces": [{"name": "eth0", "rx_bytes": 10, "tx_packets": 3}],
    }  # fmt: skip
    m = metrics_from_stats(stats)
    assert (m.cpu.usage.total, list(m.cpu.usage.per_cpu), m.cpu.throttling.throttled_time) == (
        100, [60, 40], 5
    )  # fmt: skip
    assert (m.memory.cache, m.memory.rss, m.memory.pg_fault, m.memory.total_pg_maj_fault) == (
        11, 7, 9, 3
    )  # fmt: skip
    assert (m.memory.usage.usage, m.memory.usage.limit, m.memory.usage.failcnt) == (4096, 8192, 1)
    assert (m.pids.current, m.pids.limit) == (2, 10)
    entry = m.blkio.io_service_bytes_recursive[0]
    assert (entry.major, entry.op, entry.value) == (8, "Read", 5)
    assert (m.hugetlb[0].pagesize, m.hugetlb[0].max) == ("2MB", 2)
    assert (m.network[0].name, m.network[0].rx_bytes, m.network[0].tx_packets) == ("eth0", 10, 3)
    packed = pack_metrics(stats)
    assert packed.type_url == METRICS_TYPE_URL == "io.containerd.cgroups.v1.Metrics"
    assert metrics_from_stats({}).pids.current == 0  # missing sections are zeros


def test_metrics_of_an_idle_container_still_carry_every_subsystem() -> None:
    """Zero counters must not drop a message: nerdctl stats reads Blkio and Pids unchecked."""
    from pycontainerd.api.cgroups.v1 import metrics_pb2

    decoded = metrics_pb2.Metrics.FromString(pack_metrics({"pids": {"current": 0}}).value)
    for name in ("cpu", "memory", "pids", "blkio"):
        assert decoded.HasField(name), name
    assert decoded.cpu.HasField("usage") and decoded.cpu.HasField("throttling")
    assert decoded.memory.HasField("usage") and decoded.memory.HasField("kernel_tcp")


def test_stdio_default_is_dev_null() -> None:
    assert Stdio() == Stdio(None, None, None)
