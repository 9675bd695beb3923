"""Errors of the asyncio gateway."""
from __future__ import annotations

from ..errors import IkeError


class GatewayError(IkeError):
    """An initiation failed (``connection`` is the IKE SA it concerned, if any)."""

    def __init__(self, message: str, connection=None, notify_type: int | None = None) -> None:
        super().__init__(message)
        self.connection = connection
        self.notify_type = notify_type


__all__ = ["GatewayError"]
