"""containerd filter language: matching table, quoting, errors, adaptors."""

from __future__ import annotations

import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.filters import ALWAYS, FilterParseError, adapt, parse, parse_all

# A small corpus of objects, each described the way a store would describe it.
CORPUS = [
    {"name": "foo", "labels": {"foo": "true"}},
    {"name": "bar", "labels": {}},
    {"name": "foo", "labels": {"foo": "present", "more complex label": "present"}},
    {"name": "bar", "labels": {"bar": "true"}},
    {"name": "fooer", "labels": {'more complex label with \\ and "': "present"}},
    {"name": "fooer", "labels": {'more complex label with \\ and ".post': "present"}},
    {"name": "baz", "other": "too complex, yo", "labels": {}},
    {"name": "bazo", "other": "abc", "labels": {}},
    {"name": "compound", "labels": {"foo": "omg_asdf.asdf-qwer", "a.b": "dotted"}},
]


def _adaptor(obj: dict):
    fields = {k: v for k, v in obj.items() if k != "labels"}
    return adapt(fields, obj["labels"])


def _matching(filter_strs: list[str]) -> list[int]:
    flt = parse_all(filter_strs)
    return [i for i, obj in enumerate(CORPUS) if flt.match(_adaptor(obj))]


ALL = list(range(len(CORPUS)))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([], ALL),
        ([""], ALL),
        (["name"], ALL),
        (["labels.foo"], [0, 2, 8]),
        (["labels.foo,name"], [0, 2, 8]),
        (["labels.foo==true"], [0]),
        (["labels.foo==omg_asdf.asdf-qwer"], [8]),
        (["name==bar"], [1, 3]),
        (["name!=bar"], [0, 2, 4, 5, 6, 7, 8]),
        (["name==bar,labels.bar"], [3]),
        (['other=="too complex, yo"'], [6]),
        (["other~=[abc]+,name!=foo"], [6, 7]),
        (["other~=/[abc]+/,name!=foo"], [6, 7]),
        (["other~=/[abc]{1,2}/,name!=foo"], [6, 7]),
        (["other~=|b{1}c|"], [7]),
        (['other~=/[abc]{0,1}"\\//,name!=foo'], []),
        (["name==bar,labels.bar==true"], [3]),
        (["name==bar,labels.bar==wrong"], []),
        (['name==foo,labels."more complex label"'], [2]),
        (['labels."more complex label with \\\\ and \\""==present'], [4]),
        (['labels."more complex label with \\\\ and \\"".post==present'], [5]),
        # a label key with dots, written bare or quoted
        (["labels.a.b==dotted"], [8]),
        (['labels."a.b"'], [8]),
        # != and ~= also see absent fields (as ""), == does not
        (["other!=abc"], [0, 1, 2, 3, 4, 5, 6, 8]),
        (["other~=^$"], [0, 1, 2, 3, 4, 5, 8]),
        (['other==""'], []),
        # "|" is not an OR inside one string: it is part of a bare value, or a regex quote
        (["name==foo|bar"], []),
        (["name~=^(foo|bar)$"], [0, 1, 2, 3]),
        # several strings are OR-ed
        (["name==bar", "labels.foo==true"], [0, 1, 3]),
        (["name==nothing", "name==nothing-either"], []),
        # spaces around operators and separators are tolerated
        ([" name == bar , labels.bar "], [3]),
        # regex is a search, not anchored
        (["name~=oo"], [0, 2, 4, 5]),
        (["name~=^foo$"], [0, 2]),
        # value with = and other punctuation is one bare value
        (["other~=a=b|abc"], [7]),
        # \u escapes in a quoted value
        (['name=="\\u0066oo"'], [0, 2]),
        (['name=="\\x66\\157o"'], [0, 2]),
    ],
)
def test_match_table(filters: list[str], expected: list[int]) -> None:
    assert _matching(filters) == expected


def test_empty_string_and_empty_list_match_everything() -> None:
    assert parse("") is ALWAYS
    assert parse_all([]) is ALWAYS


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("labels.|foo|==x", 7, "only allowed for ~= values"),
        ("name==/foo/", 6, "only allowed for ~= values"),
        ("name==foo,", 10, "expected a field name"),
        ("labels.", 7, "expected a field name"),
        ("image~=,id?=?fbaq", 7, "expected a value"),
        ("labels.ns/key==value", 9, "quoted literal not terminated"),
        ("labels.key==/value", 12, "quoted literal not terminated"),
        ('labels.?"x"==present', 7, "expected a field name"),
        ("labels.foo-bar==x", 10, "quote field names"),
        ("name===foo", 4, "unsupported operator"),
        ("name=!foo", 4, "unsupported operator"),
        ("name==foo bar", 10, "separate selectors with ','"),
        ("name~=(", 6, "invalid regular expression"),
        ("name~=/[a/", 6, "invalid regular expression"),
        ('name=="\\q"', 7, "illegal escape sequence"),
        ('name=="\\x6"', 7, "illegal \\x escape"),
        ('name=="\\400"', 7, "illegal octal escape"),
        ('name=="\\ud800"', 7, "not a valid code point"),
        ('name=="\\xff"', 6, "not valid UTF-8"),
        ('name=="a\nb"', 6, "not terminated"),
        ("na\x00me", 2, "unexpected null"),
        ("   ", 3, "expected a field name"),
        (",", 0, "expected a field name"),
    ],
)
def test_parse_errors_point_at_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterParseError) as info:
        parse(text)
    assert info.value.position == position
    assert fragment in str(info.value)
    assert isinstance(info.value, InvalidArgument)


def test_error_message_marks_the_character() -> None:
    with pytest.raises(InvalidArgument, match=r"\[labels\.ns >\|/\|< key==value\]"):
        parse("labels.ns/key==value")


def test_parse_all_reports_the_bad_string() -> None:
    with pytest.raises(InvalidArgument, match="name=="):
        parse_all(["name==ok", "name=="])


def test_quoted_multibyte_field_and_value() -> None:
    flt = parse('labels."clé"=="värde"')
    assert flt.match(adapt({}, {"clé": "värde"}))
    assert not flt.match(adapt({}, {"clé": "other"}))


class TestAdapt:
    def test_dotted_fields_and_maps(self) -> None:
        adaptor = adapt(
            {"name": "img", "target.digest": "sha256:abc", "target.mediatype": "m"},
            {"k": "v"},
            maps={"annotations": {"a.b": "c"}},
        )
        assert adaptor(["target", "digest"]) == ("sha256:abc", True)
        assert adaptor(["labels", "k"]) == ("v", True)
        assert adaptor(["labels", "missing"]) == ("", False)
        assert adaptor(["annotations", "a", "b"]) == ("c", True)
        assert adaptor(["target"]) == ("", False)
        assert adaptor([]) == ("", False)

    def test_empty_label_value_is_present(self) -> None:
        assert adapt({}, {"k": ""})(["labels", "k"]) == ("", True)
        assert parse("labels.k").match(adapt({}, {"k": ""}))

    def test_empty_string_absent_by_default(self) -> None:
        assert adapt({"image": ""})(["image"]) == ("", False)
        assert adapt({"parent": ""}, empty_is_absent=False)(["parent"]) == ("", True)
        assert not parse('image==""').match(adapt({"image": ""}))
        assert parse('parent==""').match(adapt({"parent": ""}, empty_is_absent=False))

    def test_scalars_and_sequences(self) -> None:
        adaptor = adapt({"size": 42, "flag": True, "capabilities": ["exportable", "remap-ids"]})
        assert adaptor(["size"]) == ("42", True)
        assert adaptor(["flag"]) == ("true", True)
        assert parse("size==42").match(adaptor)
        assert parse("capabilities~=/(^|,)remap-ids(,|$)/").match(adaptor)
        assert not parse("capabilities").match(adapt({"capabilities": []}))

    def test_labels_with_none_is_not_a_map(self) -> None:
        assert adapt({"labels.x": "y"})(["labels", "x"]) == ("y", True)
