"""Every pyctr command against a private daemon and registry, checked with the real ctr.

One daemon serves the module; each test works in a namespace of its own (a
:class:`CtrRunEnv`), whose tasks, containers and shims are removed afterwards
even when the test fails.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ctr_env import CtrRunEnv
from tests.support.daemon import DaemonProcess
from tests.support.pyctr import Pyctr

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared_daemon() -> Iterator[DaemonProcess]:
    daemon = DaemonProcess()
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@pytest.fixture
def env(shared_daemon: DaemonProcess) -> Iterator[CtrRunEnv]:
    with CtrRunEnv(shared_daemon) as ctr_env:
        yield ctr_env


@pytest.fixture
def pyctr(env: CtrRunEnv) -> Pyctr:
    return Pyctr(env.daemon.address, env.namespace)


@pytest.fixture
def image(env: CtrRunEnv, pyctr: Pyctr, busybox_pushed) -> str:  # type: ignore[no-untyped-def]
    pyctr.ok("images", "pull", "--plain-http", busybox_pushed.ref)
    return busybox_pushed.ref


def test_run_output_exit_status_and_flags(pyctr: Pyctr, env: CtrRunEnv, image: str, tmp_path: Path):
    out = pyctr.run("run", "--rm", image, "r1", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "note").write_text("from the host\n")
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=yes\n")
    script = "id -u; id -g; pwd; hostname; echo $A $FROM_FILE; cat /mnt/note; touch /x || echo ro"
    result = pyctr.ok(
        "run", "--rm", "--user", "app", "--cwd", "/tmp", "--hostname", "box", "--env", "A=1",
        "--env-file", str(env_file), "--mount", f"type=bind,src={host_dir},dst=/mnt,options=rbind:ro",
        "--read-only", "--memory-limit", "64m", "--cpus", "0.5", "--label", "team=a",
        image, "r2", "sh", "-c", script,
    )  # fmt: skip
    lines = result.splitlines()
    assert lines[:6] == ["1000", "1000", "/tmp", "box", "1 yes", "from the host"]
    assert lines[-1] == "ro"
    # --net-host: the host's interfaces; otherwise a namespace with loopback only.
    host_interfaces = _interfaces(Path("/proc/net/dev").read_text())
    shared = pyctr.ok("run", "--rm", "--net-host", image, "r3", "cat", "/proc/net/dev")
    assert _interfaces(shared) == host_interfaces
    isolated = pyctr.ok("run", "--rm", image, "r4", "cat", "/proc/net/dev")
    assert _interfaces(isolated) == {"lo"}
    assert env.containers() == []


def _interfaces(proc_net_dev: str) -> set[str]:
    return {line.split(":")[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line}


def test_run_with_runtime_options_and_privileged(pyctr: Pyctr, image: str):
    out = pyctr.ok(
        "run", "--rm", "--privileged", "--runc-binary", "runc", "--runtime",
        "io.containerd.runc.v2", image, "p1", "sh", "-c", "grep CapEff /proc/self/status",
    )  # fmt: skip
    assert out.split()[-1] == "000001ffffffffff" or int(out.split()[-1], 16) > 0xFFFFFFFF
    created = pyctr.ok("containers", "create", "--runc-binary", "crun", image, "p2", "true")
    assert created == ""
    record = pyctr.ok("containers", "info", "p2")
    assert json.loads(record)["Runtime"]["Options"] == {"binary_name": "crun"}
    pyctr.ok("containers", "rm", "p2")


def test_detached_task_lifecycle(pyctr: Pyctr, env: CtrRunEnv, image: str):
    assert pyctr.ok("run", "-d", image, "web", "sleep", "1000") == ""
    [task] = pyctr.json("tasks", "ls")  # type: ignore[misc]
    assert (task["ID"], task["Status"]) == ("web", "RUNNING")
    assert "web" in pyctr.ok("tasks", "ls")
    assert str(task["PID"]) in pyctr.ok("tasks", "ps", "web")
    assert pyctr.ok("tasks", "exec", "--exec-id", "e1", "web", "echo", "in") == "in\n"
    exec_status = pyctr.run("tasks", "exec", "--exec-id", "e2", "web", "sh", "-c", "exit 5")
    assert exec_status.returncode == 5
    pyctr.ok("tasks", "pause", "web")
    assert env.tasks()["web"][1] == "PAUSED"
    pyctr.ok("tasks", "resume", "web")
    metrics = pyctr.json("tasks", "metrics", "web")
    assert metrics["ID"] == "web" and metrics["Data"] is not None  # type: ignore[index]
    assert "memory.usage_in_bytes" in pyctr.ok("tasks", "metrics", "web")
    assert "running" in pyctr.fails("tasks", "rm", "web")
    pyctr.ok("tasks", "kill", "-s", "KILL", "web")
    env.ctr.ok("tasks", "ls")  # ctr sees the same task
    assert "exit status 137" in pyctr.ok("tasks", "rm", "-f", "web")
    assert pyctr.ok("tasks", "ls", "-q") == ""
    pyctr.ok("containers", "label", "web", "k=v")
    assert pyctr.json("containers", "ls")[0]["Labels"] == {"k": "v"}  # type: ignore[index]
    pyctr.ok("containers", "rm", "web")
    env.assert_clean("web")


def test_tasks_start_and_attach(pyctr: Pyctr, image: str):
    pyctr.ok("containers", "create", image, "s1", "sh", "-c", "read line; echo got $line; exit 2")
    started = pyctr.run("tasks", "start", "s1", input="hello\n")
    assert (started.returncode, started.stdout) == (2, "got hello\n")
    pyctr.ok("containers", "create", image, "s2", "sh", "-c", "sleep 3; echo late; exit 6")
    pyctr.ok("tasks", "start", "-d", "s2")
    attached = pyctr.run("tasks", "attach", "s2")
    assert (attached.returncode, attached.stdout) == (6, "late\n")
    pyctr.ok("tasks", "rm", "s2")
    pyctr.ok("containers", "rm", "s1", "s2")


def test_pyctr_and_ctr_see_each_others_work(pyctr: Pyctr, env: CtrRunEnv, busybox_pushed):  # type: ignore[no-untyped-def]
    # An image pulled by ctr runs with pyctr; one pulled by pyctr runs with ctr.
    env.pull(busybox_pushed.ref)
    assert pyctr.ok("run", "--rm", busybox_pushed.ref, "a", "echo", "pyctr-ran") == "pyctr-ran\n"
    pyctr.ok("images", "tag", busybox_pushed.ref, "example.test/copy:1")
    ran = env.run("--rm", "example.test/copy:1", "b", "echo", "ctr-ran")
    assert ran.stdout == b"ctr-ran\n", ran.stderr
    # A container created by pyctr is listed, started and removed by ctr.
    pyctr.ok("containers", "create", busybox_pushed.ref, "mine", "sleep", "1000")
    assert env.containers() == ["mine"]
    env.ctr.ok("tasks", "start", "-d", "--fifo-dir", str(env.fifo_dir), "mine")
    assert env.tasks()["mine"][1] == "RUNNING"
    env.ctr.ok("tasks", "kill", "-s", "SIGKILL", "mine")
    env.ctr.ok("tasks", "rm", "-f", "mine")
    env.ctr.ok("containers", "rm", "mine")
    # And the other way round.
    env.ctr.ok("containers", "create", busybox_pushed.ref, "theirs", "sleep", "1000")
    assert pyctr.ok("containers", "ls", "-q").split() == ["theirs"]
    pyctr.ok("tasks", "start", "-d", "theirs")
    assert env.tasks()["theirs"][1] == "RUNNING"
    pyctr.ok("tasks", "rm", "-f", "theirs")
    pyctr.ok("containers", "rm", "theirs")
    assert env.containers() == []


def test_snapshots_commands(pyctr: Pyctr, image: str, tmp_path: Path):
    [base] = [s for s in pyctr.json("snapshots", "ls") if s["Kind"] == "Committed"]  # type: ignore[union-attr]
    root = "--label=containerd.io/gc.root=yes"  # unreferenced snapshots are collected
    printed = pyctr.ok("snapshots", "prepare", root, "--target", "/mnt/x", "work", base["Name"])
    assert printed.startswith("mount -t overlay overlay /mnt/x -o ")
    assert pyctr.ok("snapshots", "mounts", "/mnt/y", "work").startswith("mount -t overlay")
    upper = next(o for o in printed.split("-o ")[1].split(",") if o.startswith("upperdir="))
    Path(upper.split("=", 1)[1], "added").write_text("new file")
    digest = pyctr.ok("snapshots", "diff", "--keep", "work").strip()
    assert digest.startswith("sha256:") and digest in pyctr.ok("content", "ls", "-q")
    pyctr.ok("snapshots", "commit", root, "layer2", "work")
    pyctr.ok("snapshots", "view", root, "look", "layer2")
    info = json.loads(pyctr.ok("snapshots", "info", "layer2"))
    assert (info["Kind"], info["Parent"]) == ("Committed", base["Name"])
    assert "\\_ layer2" in pyctr.ok("snapshots", "tree")
    usage = pyctr.json("snapshots", "usage", "layer2")
    assert usage[0]["Size"] > 0  # type: ignore[index]
    assert "layer2" in pyctr.ok("snapshots", "usage")
    assert "k=v" in pyctr.ok("snapshots", "label", "layer2", "k=v")
    assert "look" in pyctr.ok("snapshots", "ls", "-q").split()
    pyctr.ok("snapshots", "rm", "look", "layer2")
    assert "does not exist" in pyctr.fails("snapshots", "info", "layer2")
    assert pyctr.ok("--namespace", "x", "snapshots", "--snapshotter", "native", "ls").startswith(
        "KEY"
    )


def test_images_export_import_mount_check(pyctr: Pyctr, env: CtrRunEnv, image: str, tmp_path: Path):
    archive = tmp_path / "out.tar"
    pyctr.ok("images", "export", str(archive), image)
    # ctr imports what pyctr exported, and the other way round.
    env.ctr.ok("images", "import", str(archive), namespace="from-pyctr")
    assert image in env.ctr.ok("images", "ls", "-q", namespace="from-pyctr").split()
    theirs = tmp_path / "theirs.tar"
    env.ctr.ok("images", "export", str(theirs), image)
    pyctr.ok("images", "rm", "--sync", image)
    assert f"imported {image}" in pyctr.ok("images", "import", str(theirs))
    [checked] = pyctr.json("images", "check")  # type: ignore[misc]
    assert (checked["status"], checked["unpacked"]) == ("complete", True)
    assert " complete " in pyctr.ok("images", "check")
    target = tmp_path / "mnt"
    target.mkdir()
    try:
        pyctr.ok("images", "mount", image, str(target))
        assert (target / "bin" / "busybox").exists()
    finally:
        pyctr.ok("images", "unmount", "--rm", str(target))
    assert not (target / "bin").exists()
    listing = pyctr.json("images", "ls")
    assert listing[0]["name"] == image  # type: ignore[index]
    env.ctr.ok("images", "rm", image, namespace="from-pyctr")


def test_info_namespaces_leases_content_plugins_version(pyctr: Pyctr, env: CtrRunEnv):
    pyctr.ok("namespaces", "create", "extra", "owner=me")
    assert {"name": "extra", "labels": {"owner": "me"}} in pyctr.json("namespaces", "ls")  # type: ignore[operator]
    info = pyctr.json("info")
    assert "overlayfs" in info["snapshotters"] and "extra" in info["namespaces"]  # type: ignore[index]
    assert "Snapshotters:" in pyctr.ok("info")
    pyctr.ok("namespaces", "label", "extra", "owner=")
    pyctr.ok("namespaces", "rm", "extra")
    pyctr.ok("leases", "create", "--id", "l1")
    assert [x["id"] for x in pyctr.json("leases", "ls")] == ["l1"]  # type: ignore[union-attr]
    pyctr.ok("leases", "rm", "l1")
    pyctr.ok("content", "ingest", "blob", input="data")
    [blob] = pyctr.json("content", "ls")  # type: ignore[misc]
    assert blob["size"] == 4
    assert pyctr.json("content", "active") == []
    assert pyctr.json("plugins", "ls")
    assert "Server:" in pyctr.ok("version")


def test_errors_are_one_line_with_a_hint(pyctr: Pyctr, tmp_path: Path):
    wrong = Pyctr(tmp_path / "no.sock", "default")
    assert "is the daemon running?" in wrong.fails("containers", "ls")
    missing = pyctr.fails("run", "--rm", "example.test/no/such:image", "x", "true")
    assert "pull it first" in missing and "pyctr images pull example.test/no/such:image" in missing
    unknown = pyctr.fails("tasks", "kill", "nosuch")
    assert "not found" in unknown
    assert "not found" in pyctr.fails("containers", "info", "nosuch")
    assert "not found" in pyctr.fails("tasks", "start", "nosuch")
    assert "unknown signal" in pyctr.fails("tasks", "kill", "-s", "NOPE", "nosuch")


def test_help_is_there_for_every_command(pyctr: Pyctr):
    top = pyctr.ok("--help")
    for group in ("images", "snapshots", "containers", "tasks", "run", "info", "completion"):
        assert group in top
    for command in (
        ["run"], ["tasks", "exec"], ["containers", "create"], ["snapshots", "diff"],
        ["images", "mount"], ["completion"],
    ):  # fmt: skip
        text = pyctr.ok(*command, "--help")
        assert text.startswith("usage: pyctr") and "options:" in text
    assert "--runc-binary" in pyctr.ok("run", "--help")


def test_completion_scripts(pyctr: Pyctr, tmp_path: Path):
    script = pyctr.ok("completion", "bash")
    assert "complete -o default -F _pyctr pyctr" in script
    probe = tmp_path / "probe.sh"
    probe.write_text(
        script + 'COMP_WORDS=(pyctr tasks ex); COMP_CWORD=2; _pyctr; echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(pyctr run --r); COMP_CWORD=2; _pyctr; echo "${COMPREPLY[@]}"\n'
    )
    words = subprocess.run(["bash", str(probe)], capture_output=True, text=True, check=True)
    assert words.stdout.splitlines() == [
        "exec",
        "--read-only --rlimit-nofile --rm --runc-binary --runtime",
    ]
    assert "bashcompinit" in pyctr.ok("completion", "zsh")
