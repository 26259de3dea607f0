"""Mail: written to the outbox inside the causing transaction, sent later by the worker."""

from .outbox import Outbox
from .senders import Sender, make_sender
from .templates import MailTemplates, RenderedMail
from .worker import MailWorker

__all__ = ["MailTemplates", "MailWorker", "Outbox", "RenderedMail", "Sender", "make_sender"]
