"""Build filter adaptors from plain dicts, the way every store describes its objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pycontainerd.filters.matchers import Adaptor

FieldValue = str | int | bool | Sequence[str] | None
"""A field's value: None is absent; sequences are joined with "," (any order kept)."""

_ABSENT = ("", False)


def adapt(
    fields: Mapping[str, FieldValue],
    labels: Mapping[str, str] | None = None,
    *,
    maps: Mapping[str, Mapping[str, str]] | None = None,
    empty_is_absent: bool = True,
) -> Adaptor:
    """An adaptor over ``fields`` (keyed by dotted path) and map-valued fields.

    ``fields`` keys are dotted paths as filters write them: ``{"name": ...,
    "target.digest": ..., "runtime.name": ...}``. ``labels`` answers
    ``labels.<key>`` (a key may itself contain dots: ``labels.a.b`` looks up
    "a.b"); ``maps`` does the same for other map fields (e.g. "annotations").
    A map entry is present when its key exists, even with an empty value.

    With ``empty_is_absent`` (containerd's usual rule) an empty string or empty
    sequence counts as absent; snapshots, whose ``parent`` is present even when
    empty, pass False.
    """
    all_maps: dict[str, Mapping[str, str]] = dict(maps or {})
    if labels is not None:
        all_maps["labels"] = labels

    def field(fieldpath: Sequence[str]) -> tuple[str, bool]:
        if not fieldpath:
            return _ABSENT
        mapping = all_maps.get(fieldpath[0])
        if mapping is not None and len(fieldpath) > 1:
            key = ".".join(fieldpath[1:])
            if key in mapping:
                return str(mapping[key]), True
            return _ABSENT
        return _render(fields.get(".".join(fieldpath)), empty_is_absent)

    return field


def _render(value: FieldValue, empty_is_absent: bool) -> tuple[str, bool]:
    if value is None:
        return _ABSENT
    if isinstance(value, bool):
        return ("true" if value else "false"), True
    if isinstance(value, int):
        return str(value), True
    text = value if isinstance(value, str) else ",".join(value)
    return text, bool(text) or not empty_is_absent
