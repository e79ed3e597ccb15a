"""ttrpc (containerd's lightweight RPC over Unix sockets) for asyncio.

Client and server speak the wire format of containerd/ttrpc 1.1, so they talk to
Go shims and to containerd itself. Import cost is kept small (no grpc import):
the shim loads this package on every start.
"""

from pycontainerd.ttrpc.client import TtrpcClient
from pycontainerd.ttrpc.dispatch import Handler, Method, RequestContext
from pycontainerd.ttrpc.framing import MESSAGE_LENGTH_MAX
from pycontainerd.ttrpc.server import TtrpcServer
from pycontainerd.ttrpc.services import ServiceStub, UnaryMethod, register_service

__all__ = [
    "MESSAGE_LENGTH_MAX",
    "Handler",
    "Method",
    "RequestContext",
    "ServiceStub",
    "TtrpcClient",
    "TtrpcServer",
    "UnaryMethod",
    "register_service",
]
