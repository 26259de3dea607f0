"""Email addresses checked for syntax only.

pydantic's `EmailStr` (email-validator's defaults) assumes every address must be deliverable on
the public internet and refuses special-use names such as `corp.local` or `example.test`, which
intranets and test setups rely on. This service hands its mail to the operator's own SMTP server,
which is the one that knows what it can deliver; so the syntax is checked, never DNS.
"""

from __future__ import annotations

import re
from typing import Annotated

import email_validator
from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# RFC 5321's limit on a forward path, which email-validator also enforces after normalizing.
MAX_LENGTH = 254


# email-validator has no option that skips its special-use list (`globally_deliverable=False`
# skips only the dot and top-level-domain checks, `test_environment=True` lets only `test`
# through), and editing its module-wide list would change it for everyone in the process. So a
# reserved last label is swapped for a neutral one of the same length while the library checks
# the rest, and put back afterwards.
def _special_use_suffix(domain: str) -> str | None:
    """The special-use name `domain` is or ends with (ASCII, in any case), lowercased."""
    for name in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        tail = domain[-len(name) :]
        if (
            tail.isascii()
            and tail.lower() == name
            and (len(domain) == len(name) or domain[-len(name) - 1] == ".")
        ):
            return name
    return None


def normalize_email(value: str) -> str:
    """The address normalized and lowercased, or ValueError saying what is wrong with it."""
    address = value.strip()
    if not address:
        raise ValueError("The email address is empty.")
    if len(address) > MAX_LENGTH:
        raise ValueError(f"The email address is too long (at most {MAX_LENGTH} characters).")
    local, at, domain = address.rpartition("@")
    reserved = _special_use_suffix(domain) if at else None
    stand_in = re.sub(r"[^.]", "x", reserved) if reserved else ""
    probe = f"{local}@{domain[: -len(reserved)]}{stand_in}" if reserved else address
    try:
        checked = email_validator.validate_email(
            probe,
            # Every option spelled out: nothing module-wide that someone else sets applies here.
            check_deliverability=False,
            globally_deliverable=False,
            test_environment=False,
            allow_smtputf8=True,
            allow_empty_local=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=False,
        )
    except email_validator.EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    # Skipping the global checks also skipped this syntax rule (RFC 3696, section 2): no
    # all-numeric top-level label, else `a@10.0.0.1` would pass for an IP address.
    if (checked.ascii_domain or "").rpartition(".")[2].isdigit():
        raise ValueError("The part after the @-sign cannot end with a number.")
    normalized = checked.normalized
    if reserved:
        if not normalized.endswith(stand_in):  # pragma: no cover - the library keeps ASCII labels
            raise ValueError("The part after the @-sign is not valid.")
        normalized = normalized[: -len(stand_in)] + reserved
    return normalized.lower()


def _validate(value: str) -> str:
    try:
        return normalize_email(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None


# A request field holding an email address; the validated value is normalize_email's.
EmailAddress = Annotated[
    str,
    AfterValidator(_validate),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_LENGTH}),
]
