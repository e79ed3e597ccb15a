"""Raw gRPC stubs on a daemon's socket, for checking exact status codes."""

from __future__ import annotations

from pathlib import Path

import grpc


class RawClient:
    def __init__(self, address: Path, namespace: str = "default") -> None:
        self.channel = grpc.insecure_channel(f"unix://{address}")
        self.metadata = (("containerd-namespace", namespace),)

    def close(self) -> None:
        self.channel.close()

    def code_of(self, call, *args, **kwargs) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
        """Call and return the status code (OK when it succeeds); drains streams."""
        try:
            result = call(*args, metadata=self.metadata, timeout=30, **kwargs)
            if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
                list(result)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK
