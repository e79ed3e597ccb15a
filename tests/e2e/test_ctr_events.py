"""`ctr events` sees what the other ctr commands change."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e


def test_ctr_events_sees_mutations(ctr, daemon, busybox_pushed):
    watcher = subprocess.Popen(
        [ctr.binary, "-a", str(daemon.address), "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)  # let the subscription reach the daemon
        ctr.ok("namespaces", "create", "watched")
        ctr.ok("namespaces", "label", "watched", "a=b")
        data = os.urandom(1000)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        ctr.ok("content", "ingest", "r1", input=data, namespace="watched")
        ctr.ok("content", "rm", digest, namespace="watched")
        ctr.ok("namespaces", "rm", "watched")
        ctr.ok("content", "fetch", "--plain-http", busybox_pushed.ref)
        ctr.ok("images", "label", busybox_pushed.ref, "x=y")
        ctr.ok("images", "rm", busybox_pushed.ref)
        time.sleep(0.5)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    text = out.decode()
    expected = [
        ("default", "/namespaces/create"),  # in the caller's namespace, as containerd 1.6
        ("default", "/namespaces/update"),
        ("watched", "/content/delete"),
        ("watched", "/namespaces/delete"),
        ("default", "/images/create"),
        ("default", "/images/update"),
        ("default", "/images/delete"),
    ]
    lines = text.splitlines()
    positions = []
    for namespace, topic in expected:
        found = [i for i, ln in enumerate(lines) if f" {namespace} {topic} " in f"{ln} "]
        assert found, f"no {topic} event in namespace {namespace} in:\n{text}"
        positions.append(found[0])
    assert digest in text and busybox_pushed.ref in text
    assert positions[:4] == sorted(positions[:4])  # delivered in order


def test_events_filters(ctr, daemon):
    watcher = subprocess.Popen(
        [ctr.binary, "-a", str(daemon.address), "events", 'topic=="/namespaces/create"'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)
        ctr.ok("namespaces", "create", "f1")
        ctr.ok("namespaces", "rm", "f1")
        time.sleep(0.5)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    text = out.decode()
    assert "/namespaces/create" in text and "/namespaces/delete" not in text
