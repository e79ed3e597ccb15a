"""The SDK's name for :mod:`pycontainerd.distribution.archive` (the machinery lives below the SDK)."""

from pycontainerd.distribution.archive import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    DEFAULT_SNAPSHOTTER,
    OCI_LAYOUT,
    READ_SIZE,
    SPOOL_LIMIT,
    export_archive,
    image_name,
    import_archive,
)

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "DEFAULT_SNAPSHOTTER",
    "OCI_LAYOUT",
    "READ_SIZE",
    "SPOOL_LIMIT",
    "export_archive",
    "image_name",
    "import_archive",
]
