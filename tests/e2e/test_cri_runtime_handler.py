"""A pod's runtime_handler picks its runtime from the CRI runtime table: here a runc behind
a wrapper that records each call, beside the default runc."""

from __future__ import annotations

import shutil

import pytest

from tests.support.cri import cri_env
from tests.support.runsc import write_wrapper

pytestmark = pytest.mark.e2e


@pytest.fixture
def wrapped(tmp_path):
    calls = tmp_path / "calls"
    runc = shutil.which("runc")
    assert runc is not None
    wrapper = write_wrapper(
        tmp_path / "runc-wrapper",
        ["sh", "-c", f'echo "$*" >> {calls}; exec {runc} "$@"', "runc-wrapper"],
    )
    return wrapper, calls


def test_runtime_handler_selects_the_runtime(registry, busybox_pushed, wrapped):
    wrapper, calls = wrapped
    extra = (
        '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wrapped]\n'
        '    runtime_type = "io.containerd.runc.v2"\n'
        f'    options = {{ BinaryName = "{wrapper}" }}\n'
    )
    with cri_env(registry, extra) as env:
        crictl = env.crictl
        handlers = {h.get("name", "") for h in crictl.json("info")["runtimeHandlers"]}
        assert {"runc", "wrapped"} <= handlers
        crictl.ok("pull", busybox_pushed.ref)
        plain = crictl.ok("runp", str(env.pod_config("plain"))).strip()
        assert not calls.exists()
        pod_config = str(env.pod_config("wrapped"))
        pod = crictl.ok("runp", "--runtime", "wrapped", pod_config).strip()
        assert crictl.json("inspectp", pod)["status"]["runtimeHandler"] == "wrapped"
        config = str(env.container_config("c", busybox_pushed.ref, ["sleep", "100"]))
        container = crictl.ok("create", pod, config, pod_config).strip()
        crictl.ok("start", container)
        used = calls.read_text()
        assert "create --bundle" in used and container in used and pod in used
        unknown = crictl.run("runp", "--runtime", "kata", str(env.pod_config("kata")))
        assert unknown.returncode != 0 and b"no runtime for handler 'kata'" in unknown.stderr
        crictl.ok("rmp", "-f", pod, plain)
