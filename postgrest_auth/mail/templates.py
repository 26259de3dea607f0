"""Subject and body of each mail kind: plain text shipped here, overridable from a directory.

A template file starts with a `Subject:` line and a blank line; `$name` placeholders are filled
with `string.Template`, so a template can never run code. `<kind>.html`, when present in the
override directory, adds an HTML part.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from string import Template

SHIPPED = Path(__file__).with_name("templates")
KINDS = (
    "welcome",
    "reset_password",
    "forgot_username",
    "email_changed",
    "password_changed",
    # mails carrying a link and a 6-digit code (accounts.one_time_tokens)
    "confirm_signup",
    "magic_link",
    "recovery",
    "confirm_email_change",
    "email_change_requested",
    "account_deleted",
    "invite",
)


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


class MailTemplates:
    """Read once at start-up: a broken override fails then, not at the first mail, and no
    request reads a file."""

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self._refuse_strangers()
        self._templates = {
            kind: (*self._text_template(kind), self._read(f"{kind}.html")) for kind in KINDS
        }

    def _refuse_strangers(self) -> None:
        """A misspelt file name would silently send the shipped mail instead."""
        if self.override_dir is None:
            return
        for path in sorted(self.override_dir.glob("*")):
            if path.suffix in (".txt", ".html") and path.stem not in KINDS:
                raise ValueError(
                    f"email.templates_dir: {path.name} is not a mail kind; name it after one"
                    f" of {', '.join(KINDS)}"
                )

    def _read(self, name: str) -> str | None:
        if self.override_dir is not None and (self.override_dir / name).is_file():
            return (self.override_dir / name).read_text(encoding="utf-8")
        shipped = SHIPPED / name
        return shipped.read_text(encoding="utf-8") if shipped.is_file() else None

    def _text_template(self, kind: str) -> tuple[str, str]:
        text = self._read(f"{kind}.txt")
        if text is None:
            raise ValueError(f"email.templates_dir: no template for {kind}")
        first, _, rest = text.partition("\n")
        if not first.lower().startswith("subject:"):
            raise ValueError(f"email.templates_dir: {kind}.txt must start with 'Subject: '")
        return first.split(":", 1)[1].strip(), rest.lstrip("\n")

    def render(self, kind: str, context: dict[str, str]) -> RenderedMail:
        subject, body, html_template = self._templates[kind]
        escaped = {key: html.escape(value) for key, value in context.items()}
        return RenderedMail(
            # One line whatever the values hold: no header injection, no broken message.
            subject=" ".join(Template(subject).safe_substitute(context).split()),
            text=Template(body).safe_substitute(context),
            html=Template(html_template).safe_substitute(escaped) if html_template else None,
        )
