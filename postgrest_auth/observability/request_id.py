"""The request id: the trusted proxy's (nginx `$request_id`) so one id follows the request
through every log, else our own. Taken as is only when safe to print in a log line."""

from __future__ import annotations

import os
import re
from functools import lru_cache

from ..api.client import plain_address
from ..config import Http

HEADER = b"x-request-id"
# No spaces, quotes or control characters: the id is printed in logs and sent back as a header.
ACCEPTED = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,200}")


def new_request_id() -> str:
    """128 random bits in hex, the shape of nginx's `$request_id`."""
    return os.urandom(16).hex()


class RequestIds:
    """Chooses the id of each request; what a proxy says is believed only from a trusted peer."""

    def __init__(self, http: Http) -> None:
        # A peer address is checked once, not parsed against every network on each request.
        self._trusted = lru_cache(maxsize=1024)(
            lambda peer: http.is_trusted_proxy(plain_address(peer))
        )

    def choose(self, peer: str | None, headers: list[tuple[bytes, bytes]]) -> str:
        for name, value in headers:
            if name == HEADER:
                if ACCEPTED.fullmatch(value) and peer is not None and self._trusted(peer):
                    return value.decode("ascii")
                break
        return new_request_id()
