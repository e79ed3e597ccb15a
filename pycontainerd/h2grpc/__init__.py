"""A gRPC server over HTTP/2 written for the daemon's Unix socket.

grpc.aio costs about 330 us of CPU per call before any handler runs (measured
with a trivial handler on this package's benchmark); containerd's whole call
costs about 150 us. This server speaks the same wire protocol (HTTP/2 framing,
HPACK, gRPC's length-prefixed messages, status in trailers) with the work per
call cut to what a local daemon needs: no TLS, no proxies, no compression of
responses. It takes the same ``grpc.RpcMethodHandler`` objects that generated
``add_*Servicer_to_server`` functions register, so services do not change.
"""

from pycontainerd.h2grpc.server import Server

__all__ = ["Server"]
