"""Queues mail in the caller's transaction: a rolled-back change sends nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ..config import Settings
from ..store import Connection, Store
from .templates import MailTemplates, RenderedMail

# Template values that are the secret itself, or contain it: never kept beside the body, and
# made anew when the secret is issued again (mail.relink).
SECRET_VALUES = frozenset({"confirmation_url", "token", "token_hash", "reset_link", "reset_token"})


@dataclass(frozen=True)
class ExpiringLink:
    """The expiring secret a mail carries, and what it takes to issue it again.

    The outbox keeps this (as `link`) with the moment the secret dies (`link_expires_at`, from
    `lifetime`): the worker sends the mail as written until then, and after that only with a
    new secret (mail.relink), so no mail ever carries a dead link.
    """

    kind: str  # "reset" (the original API's reset token) or a one-time token kind
    user_id: int
    lifetime: int  # seconds, the secret's own lifetime
    # What shows the secret is still the account's latest: the one-time token's link digest
    # (hex), or the account's token_count a reset token is bound to.
    current: str | int
    # A one-time link's verify endpoint, redirect and PKCE challenge (accounts.links).
    path: str | None = None
    redirect_to: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def stored(self, context: dict[str, str]) -> str:
        """JSON for the outbox: this, and the template values but the secret ones."""
        values = {k: v for k, v in context.items() if k not in SECRET_VALUES}
        return json.dumps({**asdict(self), "context": values})

    @classmethod
    def load(cls, text: str) -> tuple[ExpiringLink, dict[str, str]]:
        data: dict[str, Any] = json.loads(text)
        context = data.pop("context")
        return cls(**data), context


class Outbox:
    def __init__(self, settings: Settings, store: Store, templates: MailTemplates) -> None:
        self.app_name = settings.app_name
        self.store = store
        self.templates = templates

    def render(self, kind: str, values: dict[str, str]) -> RenderedMail:
        return self.templates.render(kind, {"app_name": self.app_name, **values})

    async def enqueue(
        self,
        conn: Connection,
        kind: str,
        recipient: str,
        expiring: ExpiringLink | None = None,
        **context: str | None,
    ) -> None:
        """`expiring`: the secret the mail carries, when it carries one that dies."""
        values = {key: value for key, value in context.items() if value is not None}
        # Accounts made from an address alone have no username: greet them by the address.
        values.setdefault("username", recipient)
        mail = self.render(kind, values)
        await self.store.enqueue_mail(
            conn,
            kind,
            recipient,
            mail.subject,
            mail.text,
            mail.html,
            expiring and expiring.lifetime,
            expiring and expiring.stored(values),
        )
