"""The signed-in user and their sessions (one per device)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from ...accounts import sessions
from ..caller import CallerDep
from ..deps import ClientDep, ServicesDep
from .profile import user_body

router = APIRouter(tags=["sessions"])


@router.get("/user", summary="The current user's public fields, metadata included")
async def current_user(caller: CallerDep) -> dict[str, Any]:
    return user_body(caller.user, caller.session_id)


@router.get("/sessions", summary="The current user's live sessions")
async def list_sessions(services: ServicesDep, caller: CallerDep) -> list[dict[str, Any]]:
    rows = await sessions.list_sessions(services, caller)
    return [
        {
            "id": row["id"],
            "current": row["id"] == caller.session_id,
            "created_at": row["created_at"].isoformat(),
            "refreshed_at": row["refreshed_at"].isoformat(),
            "expires_at": row["expires_at"].isoformat(),
            "user_agent": row["user_agent"],
            "address": row["address"],
        }
        for row in rows
    ]


@router.delete("/sessions/{session_id}", status_code=204, summary="End one of one's sessions")
async def end_session(
    services: ServicesDep, client: ClientDep, caller: CallerDep, session_id: uuid.UUID
) -> Response:
    await sessions.end_session(services, client, caller, str(session_id))
    return Response(status_code=204)
