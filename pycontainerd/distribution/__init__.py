"""Image distribution below both the SDK and the daemon: pull, unpack, push, import, export.

The machinery is written against the small protocols of
:mod:`pycontainerd.distribution.stores`. The SDK's client satisfies them over
gRPC; :class:`pycontainerd.distribution.local.LocalStores` satisfies them over
the daemon's own stores, for the transfer service and the CRI plugin. Nothing
here imports the SDK (tests/unit/test_layering.py checks).
"""
