"""What an operation knows of the client that asked: recorded with sessions and audit events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientInfo:
    address: str | None = None
    user_agent: str | None = None
