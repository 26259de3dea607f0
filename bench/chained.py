"""Refreshes at full speed where each request depends on the last answer: a refresh token is
good once (every refresh rotates it), so a fixed list of bodies (bench/load.py, wrk) cannot
drive them. One keep-alive connection per session, raw HTTP/1.1 over asyncio: far lighter than
httpx, so the service, not the generator, is what the figures measure."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["refresh_token", "bearer"]


@dataclass
class Session:
    """One signed-in device: its latest refresh token and an access token of its session."""

    refresh_token: str
    access_token: str


def _request(host: str, path: str, kind: Kind, session: Session) -> bytes:
    if kind == "refresh_token":
        body = json.dumps({"refresh_token": session.refresh_token}).encode()
        headers = "Content-Type: application/json\r\n"
    else:  # the session is extended, nothing rotates
        body = b""
        headers = f"Authorization: Bearer {session.access_token}\r\n"
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _drive(url: str, kind: Kind, session: Session, deadline: float) -> int:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    done = 0
    try:
        while time.monotonic() < deadline:
            target = f"{parts.path}?{parts.query}" if parts.query else parts.path
            writer.write(_request(parts.netloc, target, kind, session))
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"{status} from {url}: {payload[:200]!r}")
            if kind == "refresh_token":
                session.refresh_token = json.loads(payload)["refresh_token"]
            done += 1
    finally:
        writer.close()
    return done


async def _rate(url: str, kind: Kind, sessions: list[Session], seconds: float) -> float:
    started = time.monotonic()
    deadline = started + seconds
    counts = await asyncio.gather(*(_drive(url, kind, s, deadline) for s in sessions))
    return sum(counts) / (time.monotonic() - started)


def rate(url: str, kind: Kind, sessions: list[Session], seconds: float) -> float:
    """Successful refreshes per second, one connection per session; `sessions` keep their
    latest refresh token for the next call. Any other answer than 200 stops the run."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_rate(url, kind, sessions, seconds))
    return uvloop.run(_rate(url, kind, sessions, seconds))


def signed_in_sessions(auth_url: str, username: str, count: int) -> list[Session]:
    """`count` sessions of one new user: a sign-up, then sign-ins."""
    import httpx

    body = {"username": username, "password": "bench password"}
    with httpx.Client(timeout=30) as client:
        answers = [client.post(auth_url + "/users", json=body)]
        answers += [client.post(auth_url + "/login", json=body) for _ in range(count - 1)]
    sessions = []
    for answer in answers:
        answer.raise_for_status()
        sessions.append(Session(answer.json()["refresh_token"], answer.json()["access_token"]))
    return sessions
