"""The body of `POST /verify`, the same in both APIs: a code with its address, or a link's
token."""

from __future__ import annotations

from pydantic import BaseModel, model_validator

from ..accounts import ClientInfo, Grant, verification
from ..accounts.verification import EmailOtpType
from ..addresses import EmailAddress
from ..services import Services
from .forms import Text


class Verify(BaseModel):
    type: EmailOtpType
    email: EmailAddress | None = None
    token: Text | None = None
    token_hash: Text | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> Verify:
        if self.token_hash is None and self.token is None:
            raise ValueError("give token_hash, or email and token (the code)")
        return self


async def verify(services: Services, client: ClientInfo, form: Verify) -> Grant:
    if form.token_hash is not None:
        granted = await verification.verify_link(services, client, form.type, form.token_hash)
    elif form.email is not None:
        assert form.token is not None
        granted = await verification.verify_code(
            services, client, form.type, form.email, form.token
        )
    else:  # GoTrue's older clients send a link's token as `token`, with no address
        assert form.token is not None
        granted = await verification.verify_link(services, client, form.type, form.token)
    assert isinstance(granted, Grant)  # only a link opened in a browser yields a PKCE code
    return granted
