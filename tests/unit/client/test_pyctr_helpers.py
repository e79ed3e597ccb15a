"""pyctr's formatting and argument helpers, and its progress display."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from ctr.args import parse_duration, parse_labels
from ctr.main import build_parser
from ctr.output import binary_size, human_duration, human_size, labels_text, print_table
from ctr.progress import ProgressView
from pycontainerd.client.progress import ProgressEvent, Status
from pycontainerd.errdefs import InvalidArgument


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (506, "506B"), (1032742, "1.033MB"), (3 << 20, "3.146MB"), (5 * 10**9, "5GB")],
)
def test_human_size_uses_decimal_units(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0.0 B"), (1034042, "1009.8 KiB"), (3 << 30, "3.0 GiB")]
)
def test_binary_size_uses_binary_units(size, text):
    assert binary_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "Less than a second"),
        (1, "1 second"),
        (42, "42 seconds"),
        (61, "About a minute"),
        (600, "10 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (30 * 86400, "4 weeks"),
        (200 * 86400, "6 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_labels_and_durations_parse_like_ctr():
    assert parse_labels(["a=b", "c=", "d=e=f"]) == {"a": "b", "c": "", "d": "e=f"}
    with pytest.raises(InvalidArgument):
        parse_labels(["=x"])
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("1h30m10s") == timedelta(hours=1, minutes=30, seconds=10)
    assert parse_duration("1.5s") == timedelta(seconds=1.5)
    for bad in ("", "10", "1d", "h1"):
        with pytest.raises(InvalidArgument):
            parse_duration(bad)


def test_labels_text_and_table():
    assert labels_text({}) == "-"
    assert labels_text({"b": "2", "a": "1"}) == "a=1,b=2"
    out = io.StringIO()
    print_table(["NAME", "LABELS"], [["default", "-"], ["a", "x=y"]], out=out)
    assert out.getvalue().splitlines() == ["NAME    LABELS", "default -", "a       x=y"]


def test_plain_progress_prints_state_changes():
    out = io.StringIO()
    view = ProgressView(out, tty=False)
    view(ProgressEvent("layer-sha256:aa", "sha256:aa", Status.WAITING, 0, 2048))
    view(ProgressEvent("layer-sha256:aa", "sha256:aa", Status.DOWNLOADING, 1024, 2048))
    view(ProgressEvent("layer-sha256:aa", "sha256:aa", Status.DOWNLOADING, 1500, 2048))
    view(ProgressEvent("layer-sha256:aa", "sha256:aa", Status.DONE, 2048, 2048))
    view.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("layer-sha256:aa: waiting")
    assert "1.0 KiB/2.0 KiB" in lines[1] and "/s)" in lines[1]
    assert len(lines) == 4  # the second download event came too soon for a new line
    assert lines[2].startswith("layer-sha256:aa: done") and "2.0 KiB/2.0 KiB" in lines[2]
    assert lines[3].startswith("elapsed:") and "total: 2.0 KiB" in lines[3]


def test_tty_progress_redraws_in_place():
    out = io.StringIO()
    view = ProgressView(out, tty=True)
    view(ProgressEvent("config-sha256:bb", "sha256:bb", Status.DOWNLOADING, 1, 2))
    view.finish()
    text = out.getvalue()
    assert "\x1b[2F" in text  # the second draw moved up over the first one's two lines
    assert text.count("config-sha256:bb") == 2


def test_global_options_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONTAINERD_ADDRESS", "")
    monkeypatch.setenv("PYCONTAINERD_ADDRESS", "pcd-test.sock")
    monkeypatch.setenv("CONTAINERD_NAMESPACE", "team")
    args = build_parser().parse_args(["images", "ls"])
    assert (args.address, args.namespace, args.timeout) == ("pcd-test.sock", "team", 0)
    pull = build_parser().parse_args(["images", "pull", "--no-unpack", "busybox"])
    assert pull.no_unpack and pull.platform is None and not pull.all_platforms
