"""What a provider tells us about the person who signed in there, whatever its protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExternalProfile:
    """`subject` names the account at the provider for good; `email` is a claim, trusted to
    find an existing account only when `email_verified`."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None = None
    avatar_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def identity_data(self) -> dict[str, Any]:
        """GoTrue's identity_data: the provider's claims, with the names its clients read."""
        return {
            **self.data,
            "sub": self.subject,
            "provider_id": self.subject,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
            "full_name": self.name,
            "avatar_url": self.avatar_url,
        }


class ProviderFailure(Exception):
    """The provider refused, could not be reached, or answered something we must not trust.
    The message is safe to show (it ends on the frontend's URL as error_description)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
