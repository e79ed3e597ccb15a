"""The monitor's round over a real metadata store and a recording task manager."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from pycontainerd import errdefs
from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.containers import AnyValue, Container, RuntimeInfo
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.restart import policy
from pycontainerd.restart.monitor import RestartMonitor
from pycontainerd.runtime.manager import CreateOptions, TaskManager
from pycontainerd.runtime.task import Exit, ProcessState, Status
from pycontainerd.stdio_paths import StdioPaths

NS = "default"
SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"


@dataclass
class FakeTask:
    status: Status
    exit_status: int = 0
    events: list[str] = field(default_factory=list)

    async def state(self, *, timeout: float | None = None) -> ProcessState:
        return ProcessState("c", 1, self.status, StdioPaths(), self.exit_status)

    async def kill(self, signal: int, *, all: bool = False) -> None:
        self.events.append(f"kill {signal} all={all}")
        self.status = Status.STOPPED

    async def wait(self) -> Exit:
        return Exit(1, 137)

    async def start(self) -> int:
        self.events.append("start")
        self.status = Status.RUNNING
        return 2


class FakeTasks:
    def __init__(self) -> None:
        self.tasks: dict[str, FakeTask] = {}
        self.created: list[CreateOptions] = []
        self.events: list[str] = []

    def get(self, namespace: str, task_id: str) -> FakeTask:
        if task_id not in self.tasks:
            raise errdefs.NotFound(f"task {task_id} not found")
        return self.tasks[task_id]

    async def delete(self, namespace: str, task_id: str) -> Exit:
        self.events.append(f"delete {task_id}")
        del self.tasks[task_id]
        return Exit(1, 0)

    async def create(self, namespace: str, task_id: str, opts: CreateOptions) -> tuple[Any, int]:
        self.events.append(f"create {task_id}")
        self.created.append(opts)
        task = FakeTask(Status.CREATED, events=self.events)
        self.tasks[task_id] = task
        return task, 2


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(Database(tmp_path / "meta.db"), LocalContentStore(tmp_path / "c"))
    yield store
    store.close()


def _add(metadata: MetadataStore, cid: str, labels: dict[str, str], terminal: bool = False) -> None:
    spec = json.dumps({"ociVersion": "1.0.2", "process": {"terminal": terminal}}).encode()
    metadata.containers.create(
        NS,
        Container(
            id=cid,
            runtime=RuntimeInfo(
                "io.containerd.runc.v2", AnyValue("containerd.runc.v1.Options", b"")
            ),
            spec=AnyValue(SPEC_TYPE, spec),
            labels=labels,
        ),
    )


def _round(metadata: MetadataStore, tasks: FakeTasks) -> None:
    monitor = RestartMonitor(metadata, cast(TaskManager, tasks), interval=1.0)
    asyncio.run(monitor.reconcile())


def test_a_stopped_task_is_replaced_and_counted(metadata: MetadataStore) -> None:
    uri = "binary:///usr/bin/logger?x=1"
    _add(metadata, "web", {policy.STATUS_LABEL: "running", policy.LOG_URI_LABEL: uri}, True)
    tasks = FakeTasks()
    tasks.tasks["web"] = FakeTask(Status.STOPPED, 137, tasks.events)
    _round(metadata, tasks)
    assert tasks.events == ["delete web", "create web", "start"]
    opts = tasks.created[0]
    assert (opts.stdout, opts.stderr, opts.stdin, opts.terminal) == (uri, uri, "", True)
    assert opts.runtime == "io.containerd.runc.v2"
    assert opts.options is not None and opts.options.type_url == "containerd.runc.v1.Options"
    assert metadata.containers.get(NS, "web").labels[policy.COUNT_LABEL] == "1"
    _round(metadata, tasks)  # running now: nothing more
    assert tasks.events == ["delete web", "create web", "start"]


def test_a_container_without_a_task_gets_one_with_no_io(metadata: MetadataStore) -> None:
    _add(metadata, "new", {policy.STATUS_LABEL: "running"})
    tasks = FakeTasks()
    _round(metadata, tasks)
    assert tasks.events == ["create new", "start"]
    opts = tasks.created[0]
    assert (opts.stdin, opts.stdout, opts.stderr, opts.terminal) == ("", "", "", False)


def test_a_created_task_is_killed_and_replaced(metadata: MetadataStore) -> None:
    _add(metadata, "c", {policy.STATUS_LABEL: "running"})
    tasks = FakeTasks()
    tasks.tasks["c"] = FakeTask(Status.CREATED, events=tasks.events)
    _round(metadata, tasks)
    assert tasks.events == ["kill 9 all=True", "delete c", "create c", "start"]


@pytest.mark.parametrize(
    ("labels", "task"),
    [
        ({policy.STATUS_LABEL: "stopped"}, None),  # meant to stop, and has no task
        ({policy.STATUS_LABEL: "stopped"}, Status.STOPPED),
        ({policy.STATUS_LABEL: "running"}, Status.RUNNING),
        ({policy.STATUS_LABEL: "running"}, Status.PAUSED),
        ({policy.STATUS_LABEL: "running", policy.POLICY_LABEL: "no"}, Status.STOPPED),
        ({policy.STATUS_LABEL: "created"}, Status.STOPPED),  # not a status it acts on
        ({"other": "label"}, Status.STOPPED),  # not monitored at all
    ],
)
def test_left_alone(metadata: MetadataStore, labels: dict[str, str], task: Status | None) -> None:
    _add(metadata, "c", labels)
    tasks = FakeTasks()
    if task is not None:
        tasks.tasks["c"] = FakeTask(task, events=tasks.events)
    _round(metadata, tasks)
    assert tasks.events == []
    assert policy.COUNT_LABEL not in metadata.containers.get(NS, "c").labels


def test_status_stopped_kills_and_deletes(metadata: MetadataStore) -> None:
    _add(metadata, "c", {policy.STATUS_LABEL: "stopped"})
    tasks = FakeTasks()
    tasks.tasks["c"] = FakeTask(Status.RUNNING, events=tasks.events)
    _round(metadata, tasks)
    assert tasks.events == ["kill 9 all=True", "delete c"]
    assert "c" not in tasks.tasks
