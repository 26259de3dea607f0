"""What the GoTrue API's mails link to: `{prefix}/v1/verify`, with the allowed `redirect_to`
and the PKCE challenge the client sent."""

from __future__ import annotations

from pydantic import BaseModel

from ...accounts.links import Challenge, VerifyLink
from ...accounts.pkce import challenge_of
from ...config import Settings
from .redirects import redirect_target

VERIFY_PATH = "/v1/verify"


class Challenged(BaseModel):
    """A request that may bind its mailed link to a PKCE challenge (auth-js flowType pkce)."""

    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def challenge(self) -> Challenge | None:
        return challenge_of(self.code_challenge, self.code_challenge_method)


def verify_link(
    settings: Settings, redirect_to: str | None, challenge: Challenge | None
) -> VerifyLink:
    return VerifyLink(
        path=VERIFY_PATH,
        redirect_to=redirect_target(settings, redirect_to),
        challenge=challenge,
    )
