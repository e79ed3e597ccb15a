"""A Python CRI client over the generated runtime.v1 stubs, for cases crictl cannot send."""

from __future__ import annotations

from pathlib import Path

import grpc

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.api.cri.runtime.v1 import api_pb2_grpc

__all__ = ["CRIClient", "cri"]

MAX_MESSAGE = 32 << 20


class CRIClient:
    def __init__(self, address: Path) -> None:
        self.channel = grpc.insecure_channel(
            f"unix://{address}",
            options=[("grpc.max_receive_message_length", MAX_MESSAGE)],
        )
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.images = api_pb2_grpc.ImageServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CRIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
