"""containerd's v1 API (plus shim v2 and ttrpc framing) as Python modules.

Everything below this package is generated from the .proto files in protos/ by
`make protos` (scripts/gen_protos.py); edit the .proto files, never the *_pb2 modules.
"""
