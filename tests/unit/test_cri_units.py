"""Units of the CRI plugin: config, CRI log lines, CNI config loading, state, metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib

import pytest

from pycontainerd import errdefs
from pycontainerd.api.cgroups.v1 import metrics_pb2
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri import cni, config, logs, metrics
from pycontainerd.cri.images import chain_id
from pycontainerd.cri.state import Container, Index, Sandbox


def test_config_defaults_and_bad_keys():
    settings = config.parse({})
    assert settings.default_runtime == "runc"
    assert settings.runtime("").runtime_type == "io.containerd.runc.v2"
    assert settings.runtime("crun").binary_name == "crun"
    assert settings.restrict_oom_score_adj is True
    with pytest.raises(errdefs.NotFound, match="known: crun, runc, runsc"):
        settings.runtime("kata")
    with pytest.raises(errdefs.InvalidArgument, match="max_container_log_line_size"):
        config.parse({"max_container_log_line_size": 0})
    with pytest.raises(errdefs.InvalidArgument, match="default_runtime_name"):
        config.parse({"containerd": {"default_runtime_name": "nope"}})
    with pytest.raises(errdefs.InvalidArgument, match="sandbox_image"):
        config.parse({"sandbox_image": 3})
    mirrored = config.parse(
        {
            "registry": {
                "mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000"]}},
                "configs": {"r.example": {"auth": {"username": "u", "password": "p"}}},
            }
        }
    )
    assert mirrored.mirrors["docker.io"].endpoints == ("http://127.0.0.1:5000",)
    assert mirrored.registries["r.example"].username == "u"


LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) (.*)$")


def test_cri_log_lines_split_long_lines_and_reopen(tmp_path):
    path = tmp_path / "c.log"
    writer = logs.LogWriter(str(path))
    read_fd, write_fd = os.pipe()
    forwarder = logs.LogForwarder(writer, [("stdout", read_fd)], max_line_size=4)
    forwarder.start()
    os.write(write_fd, b"ab\nabcdefghij\nend")
    os.close(write_fd)
    assert forwarder.wait(5)
    parsed = [LINE.match(line) for line in path.read_bytes().splitlines()]
    assert all(parsed)
    assert [(m.group(2), m.group(3)) for m in parsed] == [
        (b"F", b"ab"),
        (b"P", b"abcd"),
        (b"P", b"efgh"),
        (b"F", b"ij"),
        (b"F", b"end"),
    ]
    path.rename(tmp_path / "c.log.1")
    writer.reopen()
    writer.write(b"stderr", b"F", b"after")
    assert LINE.match(path.read_bytes().strip()).group(1) == b"stderr"
    writer.close()


def test_cni_loads_the_first_valid_network(tmp_path):
    assert cni.load_network(str(tmp_path / "missing")) is None
    (tmp_path / "00-broken.conflist").write_text("{not json")
    (tmp_path / "10-net.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]})
    )
    (tmp_path / "20-other.conf").write_text(json.dumps({"name": "o", "type": "ptp"}))
    network = cni.load_network(str(tmp_path))
    assert network is not None and network.name == "n"
    assert [p["type"] for p in network.plugins] == ["bridge"]
    assert cni.pod_ips(
        {"result": {"ips": [{"address": "fd00::2/64"}, {"address": "10.0.0.2/24"}]}}
    ) == [
        "10.0.0.2",
        "fd00::2",
    ]


def test_state_round_trips_and_names_are_unique():
    config_ = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="p", uid="u", namespace="n")
    )
    sandbox = Sandbox("a" * 64, "k8s_POD_p_n_u_0", config_, "", 1, ip="10.0.0.2")
    assert Sandbox.from_json(sandbox.to_json()) == sandbox
    container = Container("b" * 64, "n", sandbox.id, cri.ContainerConfig(), "sha256:x", "i", "", 2)
    assert Container.from_json(container.to_json()) == container
    index = Index()
    index.reserve("name", "one")
    with pytest.raises(errdefs.AlreadyExists):
        index.reserve("name", "two")
    index.sandboxes[sandbox.id] = sandbox
    assert index.sandbox("aaaa") is sandbox
    with pytest.raises(errdefs.NotFound):
        index.sandbox("ffff")


def test_chain_id():
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    assert chain_id([a]) == a
    assert chain_id([a, b]).startswith("sha256:") and chain_id([a, b]) != b


def test_every_metric_has_the_labels_of_its_descriptor():
    builder = metrics.Builder({k: k for k in metrics.LABELS}, 1)
    stats = metrics_pb2.Metrics()
    stats.blkio.io_service_bytes_recursive.add(op="Read", device="/dev/x", value=1)
    metrics.container_metrics(
        builder,
        stats,
        cri.LinuxContainerResources(cpu_period=100000),
        metrics.ProcessCounts(1, 1, 3, 0),
        1,
        (10, 2),
        "/",
        os.statvfs("/"),
        0,
    )
    metrics.pod_network_metrics(builder, os.getpid())
    keys = {d.name: list(d.label_keys) for d in metrics.descriptors()}
    for metric in builder.out:
        assert len(metric.label_values) == len(keys[metric.name]), metric.name
        assert all(metric.label_values[: len(metrics.LABELS)])
    produced = {m.name for m in builder.out}
    assert produced >= {"container_cpu_usage_seconds_total", "container_fs_limit_bytes"}


def test_process_counts_of_this_process():
    counts = metrics.process_counts([os.getpid()])
    assert counts.processes == 1 and counts.threads >= threading.active_count()
    assert counts.fds > 0


def test_config_default_shows_the_cri_section():
    out = subprocess.run(
        [sys.executable, "-m", "pycontainerd.cmd.daemon", "config", "default"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    section = out.split('[plugins."io.containerd.grpc.v1.cri"]', 1)[1].split("[plugins.", 1)[0]
    for key in (
        "sandbox_image",
        "restrict_oom_score_adj = true",
        "enable_unprivileged_ports",
        "max_container_log_line_size",
        "stats_collect_period",
        "cni = {bin_dir",
        'default_runtime_name = "runc"',
        "registry = {mirrors",
    ):
        assert key in section, key
    # What it shows parses back to the same settings.
    rendered = tomllib.loads(out)["plugins"]["io.containerd.grpc.v1.cri"]
    assert config.parse(rendered) == config.parse({})
