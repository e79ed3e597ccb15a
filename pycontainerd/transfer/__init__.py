"""containerd 2's Transfer and Streaming services, over the daemon's own stores.

:mod:`.streams` keeps the named streams clients open with the Streaming
service; :mod:`.transfer` runs a transfer (pull, push, import, export, tag)
with the distribution machinery over :class:`~pycontainerd.distribution.local.LocalStores`;
:mod:`.services` are the two gRPC adapters and their plugins.
"""
