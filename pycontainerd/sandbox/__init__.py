"""containerd 2's sandboxes: the Store of sandbox records and the Controller API.

:mod:`.store` keeps the records in the metadata database (its own table);
:mod:`.services` are the gRPC Store and Controller. No sandboxer (sandbox
controller) is configured yet, so every Controller call answers Unimplemented.
"""
