"""The QR code of a TOTP enrolment as SVG, the form GoTrue answers (auth-js turns it into a
data: URL for an <img>)."""

from __future__ import annotations

import io

import segno


def svg(text: str) -> str:
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue().decode()
