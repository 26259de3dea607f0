"""Queues mail in the caller's transaction: a rolled-back change sends nothing."""

from __future__ import annotations

from ..config import Settings
from ..store import Connection, Store
from .templates import MailTemplates


class Outbox:
    def __init__(self, settings: Settings, store: Store, templates: MailTemplates) -> None:
        self.app_name = settings.app_name
        self.store = store
        self.templates = templates

    async def enqueue(
        self, conn: Connection, kind: str, recipient: str, **context: str | None
    ) -> None:
        values = {key: value for key, value in context.items() if value is not None}
        # Accounts made from an address alone have no username: greet them by the address.
        values.setdefault("username", recipient)
        mail = self.templates.render(kind, {"app_name": self.app_name, **values})
        await self.store.enqueue_mail(conn, kind, recipient, mail.subject, mail.text, mail.html)
