from __future__ import annotations

import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes.platforms import (
    ALL,
    Platform,
    default_platform,
    format_platform,
    normalize,
    only,
    only_strict,
    parse_platform,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/7", Platform("linux", "arm", "v7")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("Linux/S390X", Platform("linux", "s390x")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_parse_and_normalize(spec: str, expected: Platform) -> None:
    assert parse_platform(spec) == expected


def test_parse_single_component_uses_host_defaults() -> None:
    host = default_platform()
    assert parse_platform("linux") == Platform("linux", host.architecture, host.variant)
    assert parse_platform("s390x") == Platform(host.os, "s390x")


@pytest.mark.parametrize("spec", ["", "linux/amd64/v2/extra", "linux/*", "lin ux/amd64", "zork"])
def test_parse_rejects_bad_specifiers(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_platform(spec)


def test_default_platform_is_normalized_host() -> None:
    host = default_platform()
    assert host.os == "linux"
    assert host == normalize(host)
    assert format_platform(host).startswith("linux/")


@pytest.mark.parametrize(
    ("host", "candidate", "matches"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/amd64", "linux/386", True),
        ("linux/amd64", "linux/arm64", False),
        ("linux/amd64", "windows/amd64", False),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64", "linux/arm/v7", True),
        ("linux/arm64", "linux/arm/v5", True),
        ("linux/arm/v7", "linux/arm/v6", True),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm/v7", "linux/arm64", False),
    ],
)
def test_only_matches_compatible_platforms(host: str, candidate: str, matches: bool) -> None:
    assert only(parse_platform(host)).match(parse_platform(candidate)) is matches


def test_only_orders_best_first() -> None:
    matcher = only(parse_platform("linux/arm64"))
    candidates = [parse_platform(p) for p in ("linux/arm/v6", "linux/s390x", "linux/arm64")]
    assert matcher.best(candidates) == Platform("linux", "arm64")
    assert matcher.less(candidates[2], candidates[0])
    assert not matcher.less(candidates[1], candidates[0])
    assert matcher.best([parse_platform("linux/s390x")]) is None


def test_strict_and_all() -> None:
    assert not only_strict(parse_platform("linux/amd64")).match(parse_platform("linux/386"))
    assert ALL.match(Platform("plan9", "mips"))


def test_dict_round_trip() -> None:
    platform = Platform("windows", "amd64", "", "10.0.17763", ("win32k",))
    data = platform.to_dict()
    assert data["os.version"] == "10.0.17763"
    assert Platform.from_dict(data) == platform
