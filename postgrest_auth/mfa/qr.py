"""The QR code of a TOTP enrolment as SVG, the form GoTrue answers (auth-js turns it into a
data: URL for an <img>)."""

from __future__ import annotations

import io


def svg(text: str) -> str:
    import segno  # at the first enrolment: a megabyte in every worker otherwise

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue().decode()
