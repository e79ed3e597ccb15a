"""Filters are bounded: RE2 regexes (no catastrophic backtracking), limits on size and
nesting, parsing and matching off the event loop, error messages of bounded size."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pycontainerd import errdefs
from pycontainerd.filters import adapt, parse, parse_all, parse_all_off_loop, select
from pycontainerd.filters.parser import MAX_FILTERS_LENGTH
from pycontainerd.filters.regex import MAX_NESTING, compile_regex, nesting


def _labels(value: str):  # type: ignore[no-untyped-def]
    return adapt({}, {"a": value})


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("(a+)+$", "a" * 5000 + "!", False),  # exponential for a backtracking engine
        ("(a+)+$", "a" * 5000, True),
        ("(.?.?)*X", "/images/create" * 300, False),
        ("(x+x+)+y", "x" * 5000, False),
    ],
)
def test_catastrophic_patterns_match_like_any_other(
    pattern: str, value: str, matches: bool
) -> None:
    assert parse(f'labels."a"~="{pattern}"').match(_labels(value)) is matches


def test_regexes_search_unanchored_with_re2_syntax() -> None:
    assert parse("labels.a~=b.d").match(_labels("abcde"))
    assert parse("labels.a~=^b").match(_labels("abc")) is False
    assert parse(r"labels.a~=/[[:digit:]]+\\pL/").match(_labels("x12y"))
    assert parse("labels.a~=/(?i)ABC/").match(_labels("xabc"))


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\\1", "x(?=y)", "(?<=a)b", "a{1001}", "(", "[a-z]{1,1000}" * 16],
    ids=["backreference", "lookahead", "lookbehind", "repetition", "unclosed", "too large"],
)
def test_what_re2_refuses_is_an_invalid_argument(pattern: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="invalid regular expression"):
        parse(f"labels.a~=/{pattern}/")


def test_deep_nesting_is_refused_like_go() -> None:
    deep = "(" * 3000 + "a" + ")" * 3000
    with pytest.raises(errdefs.InvalidArgument, match="nests too deeply"):
        parse(f'labels.a~="{deep}"')
    ok = "(" * MAX_NESTING + "a" + ")" * MAX_NESTING
    assert parse(f'labels.a~="{ok}"').match(_labels("a"))
    assert nesting(r"\((a)[(]") == 1 and nesting("[]()]((b))") == 2
    assert compile_regex("(a)").search("a")


def test_filters_larger_than_the_limit_are_refused() -> None:
    fits = "name==" + "x" * (MAX_FILTERS_LENGTH - 10)
    assert parse_all([fits]).match(adapt({"name": fits[6:]}))
    for too_large in (["name==" + "x" * (3 << 20)], ["a==b"] * (MAX_FILTERS_LENGTH // 4)):
        with pytest.raises(errdefs.InvalidArgument, match="filters too large") as info:
            parse_all(too_large)
        assert len(str(info.value)) < 200


def test_parse_errors_quote_only_a_little_of_a_long_filter() -> None:
    with pytest.raises(errdefs.InvalidArgument) as info:
        parse("name==" + "x" * 10_000 + ",(" + "y" * 5000)
    assert ">|(|<" in str(info.value) and len(str(info.value)) < 400


def test_parsing_and_matching_run_off_the_event_loop() -> None:
    threads: list[threading.Thread] = []

    def adaptor(item: str):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return adapt({"name": item})

    async def run() -> tuple[list[str], object]:
        chosen = await select(["name~=^b"], ["a", "b1", "b2"], adaptor)
        assert await select([], ["a"], adaptor) == ["a"]
        return chosen, await parse_all_off_loop(["name==a" + ",name==a" * 100])

    chosen, parsed = asyncio.run(run())
    assert chosen == ["b1", "b2"]
    assert threads and threading.main_thread() not in threads
    assert parsed.match(adapt({"name": "a"}))  # type: ignore[attr-defined]
    with pytest.raises(errdefs.InvalidArgument):
        asyncio.run(parse_all_off_loop(["name~=/(/"]))
