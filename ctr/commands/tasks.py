"""pyctr tasks: start, ls, ps, exec, kill, pause, resume, metrics, rm, attach."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from google.protobuf import json_format

from ctr.attached import run_in_foreground
from ctr.commands import add_command, add_group
from ctr.output import add_format_option, binary_size, print_json, print_table, when
from pycontainerd import errdefs
from pycontainerd.client import Client, ExecProcess, Stdio, Task, TaskStatus


def add_io_flags(parser: argparse.ArgumentParser) -> None:
    """Where a detached process's output goes (ctr's --null-io, --log-uri, --fifo-dir)."""
    parser.add_argument("--null-io", action="store_true", help="send stdio to /dev/null")
    parser.add_argument("--log-uri", help="append output to file:///path instead")
    parser.add_argument("--fifo-dir", help="directory for the stdio FIFOs")


def stdio_for(args: argparse.Namespace, *, detach: bool, tty: bool) -> Stdio:
    if args.null_io:
        return Stdio.null()
    if args.log_uri:
        return Stdio.log(args.log_uri)
    if detach:
        return Stdio.detached(terminal=tty, fifo_dir=args.fifo_dir)
    if tty:
        return Stdio.terminal(fifo_dir=args.fifo_dir)
    return Stdio.inherit(fifo_dir=args.fifo_dir)


def parse_signal(text: str) -> int:
    """``SIGKILL``, ``KILL`` or ``9``."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise errdefs.InvalidArgument(
            f"unknown signal {text!r}: use e.g. SIGTERM, KILL or 9"
        ) from None


async def start(client: Client, args: argparse.Namespace) -> int:
    container = await client.load_container(args.id)
    tty = bool(container.spec.get("process", {}).get("terminal"))
    task = await container.new_task(stdio_for(args, detach=args.detach, tty=tty))
    if args.detach:
        await task.start()
        return 0
    try:
        return await run_in_foreground(task, tty=tty)
    finally:
        await task.delete(force=True)


async def list_tasks(client: Client, args: argparse.Namespace) -> None:
    tasks = await client.tasks.list()
    if args.quiet:
        for state in tasks:
            print(state.id)
        return
    if args.format == "json":
        print_json(
            [
                {"ID": t.id, "PID": t.pid, "Status": t.status.value, "ExitStatus": t.exit_status}
                for t in tasks
            ]
        )
        return
    rows = [[t.id, str(t.pid), t.status.value] for t in tasks]
    print_table(["TASK", "PID", "STATUS"], rows, padding=4)


async def ps(client: Client, args: argparse.Namespace) -> None:
    task = await (await client.load_container(args.id)).task()
    processes = await task.pids()
    if args.format == "json":
        print_json([{"PID": p.pid, "Info": p.info.type_url if p.info else None} for p in processes])
        return
    print_table(["PID", "INFO"], [[str(p.pid), "-"] for p in processes], padding=4)


async def exec_process(client: Client, args: argparse.Namespace) -> int:
    if not args.command:
        raise errdefs.InvalidArgument(
            "give the command to run: pyctr tasks exec --exec-id ID CONTAINER CMD..."
        )
    task = await (await client.load_container(args.id)).task()
    stdio = stdio_for(args, detach=args.detach, tty=args.tty)
    process = await task.exec(args.exec_id, args.command, stdio=stdio, env=args.env, cwd=args.cwd)
    if args.detach:
        await process.start()
        return 0
    try:
        return await run_in_foreground(process, tty=args.tty)
    finally:
        await process.delete(force=True)


async def kill(client: Client, args: argparse.Namespace) -> None:
    number = parse_signal(args.signal)
    if args.exec_id:
        await (await _exec_of(client, args.id, args.exec_id)).kill(number)
        return
    task = await (await client.load_container(args.id)).task()
    await task.kill(number, all=args.all)


async def _exec_of(client: Client, container_id: str, exec_id: str) -> ExecProcess:
    task = await (await client.load_container(container_id)).task()
    return await task.load_process(exec_id)


async def pause(client: Client, args: argparse.Namespace) -> None:
    await (await (await client.load_container(args.id)).task()).pause()


async def resume(client: Client, args: argparse.Namespace) -> None:
    await (await (await client.load_container(args.id)).task()).resume()


async def metrics(client: Client, args: argparse.Namespace) -> None:
    task = await (await client.load_container(args.id)).task()
    found = await task.metrics()
    if args.format == "json":
        as_dict = (
            json_format.MessageToDict(found.data, preserving_proto_field_name=True)
            if found.data
            else None
        )
        print_json(
            {
                "ID": found.id,
                "Timestamp": when(found.timestamp),
                "Type": found.type_url,
                "Data": as_dict,
            }
        )
        return
    data: Any = found.data
    print_table(["ID", "TIMESTAMP"], [[found.id, when(found.timestamp)]])
    if data is None:
        print(f"\n(metrics of type {found.type_url} cannot be shown)")
        return
    print()
    rows = [
        ["memory.usage_in_bytes", binary_size(data.memory.usage.usage)],
        ["memory.limit_in_bytes", binary_size(data.memory.usage.limit)],
        ["cpuacct.usage", f"{data.cpu.usage.total}"],
        ["pids.current", f"{data.pids.current}"],
        ["pids.limit", f"{data.pids.limit}"],
    ]
    print_table(["METRIC", "VALUE"], rows)


async def remove(client: Client, args: argparse.Namespace) -> int:
    failed = 0
    for container_id in args.ids:
        process: ExecProcess | Task
        try:
            if args.exec_id:
                process = await _exec_of(client, container_id, args.exec_id)
            else:
                process = await (await client.load_container(container_id)).task()
                if not args.force and await process.status() not in (
                    TaskStatus.STOPPED,
                    TaskStatus.CREATED,
                ):
                    raise errdefs.FailedPrecondition(
                        f"task {container_id!r} is running: stop it (pyctr tasks kill {container_id}) "
                        "or pass -f"
                    )
            status = await process.delete(force=args.force)
        except errdefs.ContainerdError as exc:
            print(f"pyctr: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{container_id}: exit status {status.code}")
    return 1 if failed else 0


async def attach(client: Client, args: argparse.Namespace) -> int:
    container = await client.load_container(args.id)
    tty = bool(container.spec.get("process", {}).get("terminal"))
    stdio = Stdio.terminal() if tty else Stdio.inherit()
    task = await container.task(attach=stdio)
    try:
        return await run_in_foreground(task, tty=tty, start=False)
    finally:
        if task.io is not None:
            task.io.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "tasks", "manage tasks (a container's running processes)", aliases=("task", "t"))  # fmt: skip
    cmd = add_command(group, "start", start, "start a container's task and wait for it (or -d)")
    cmd.add_argument("id", metavar="CONTAINER")
    cmd.add_argument("-d", "--detach", action="store_true", help="start and return at once")
    add_io_flags(cmd)
    cmd = add_command(group, "ls", list_tasks, "list tasks", aliases=("list",))
    cmd.add_argument("-q", "--quiet", action="store_true", help="print only ids")
    add_format_option(cmd)
    cmd = add_command(group, "ps", ps, "list the processes of a task")
    cmd.add_argument("id", metavar="CONTAINER")
    add_format_option(cmd)
    cmd = add_command(group, "exec", exec_process, "run another process in a task")
    cmd.add_argument("--exec-id", required=True, help="a unique id for the new process")
    cmd.add_argument("-t", "--tty", action="store_true", help="give the process a terminal")
    cmd.add_argument("-d", "--detach", action="store_true", help="start and return at once")
    cmd.add_argument("--cwd", help="working directory of the process")
    cmd.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    add_io_flags(cmd)
    cmd.add_argument("id", metavar="CONTAINER")
    cmd.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    cmd = add_command(group, "kill", kill, "signal a task (default SIGTERM)")
    cmd.add_argument("id", metavar="CONTAINER")
    cmd.add_argument("-s", "--signal", default="SIGTERM", help="signal name or number")
    cmd.add_argument("-a", "--all", action="store_true", help="signal every process of the task")
    cmd.add_argument("--exec-id", help="signal this exec'd process instead")
    cmd = add_command(group, "pause", pause, "freeze a task")
    cmd.add_argument("id", metavar="CONTAINER")
    cmd = add_command(group, "resume", resume, "thaw a paused task")
    cmd.add_argument("id", metavar="CONTAINER")
    cmd = add_command(group, "metrics", metrics, "show a task's resource use", aliases=("metric",))
    cmd.add_argument("id", metavar="CONTAINER")
    add_format_option(cmd)
    cmd = add_command(
        group, "rm", remove, "delete stopped tasks", aliases=("delete", "del", "remove")
    )
    cmd.add_argument("ids", nargs="+", metavar="CONTAINER")
    cmd.add_argument("-f", "--force", action="store_true", help="kill a running task first")
    cmd.add_argument("--exec-id", help="delete this exec'd process instead")
    cmd = add_command(group, "attach", attach, "join a running task's stdio")
    cmd.add_argument("id", metavar="CONTAINER")
