"""Templates and message building: pure functions, no I/O beyond reading template files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from postgrest_auth.accounts.recovery import reset_link
from postgrest_auth.config import Email
from postgrest_auth.mail.senders import build_message
from postgrest_auth.mail.templates import KINDS, MailTemplates

CONTEXT = {
    "app_name": "Theories",
    "username": "alice",
    "old_email": "old@example.com",
    "new_email": "new@example.com",
    "reset_link": "https://app.example.com/#reset=TOKEN",
    "reset_token": "TOKEN",
    "reset_minutes": "60",
    "email": "alice@example.com",
    "type": "signup",
    "confirmation_url": "https://auth.example.com/auth/verify?token_hash=LINK&type=signup",
    "token": "123456",
    "token_hash": "LINK",
    "minutes": "60",
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_shipped_template_renders_completely(kind):
    mail = MailTemplates().render(kind, CONTEXT)
    assert mail.subject and "\n" not in mail.subject
    assert "Theories" in mail.subject + mail.text
    assert not re.search(r"\$\w", mail.subject + mail.text), "a placeholder was left unfilled"
    assert mail.html is None  # plain text unless an override adds HTML


def test_reset_mail_carries_the_link():
    mail = MailTemplates().render("reset_password", CONTEXT)
    assert "https://app.example.com/#reset=TOKEN" in mail.text
    assert "60 minutes" in mail.text


def test_reset_link_fills_token_and_username_or_gives_the_raw_token():
    assert reset_link(None, "tok", "bob") == "tok"
    assert reset_link("", "tok", "bob") == "tok"
    assert reset_link("https://x.example/r?t={token}&u={username}", "tok", "bob") == (
        "https://x.example/r?t=tok&u=bob"
    )


def test_subject_stays_one_line_whatever_the_values(tmp_path: Path):
    (tmp_path / "welcome.txt").write_text("Subject: Hi $username\n\nBody\n")
    mail = MailTemplates(tmp_path).render("welcome", {"username": "a\r\nBcc: evil@example.com"})
    assert mail.subject == "Hi a Bcc: evil@example.com"
    build_message(Email(), "to@example.com", mail.subject, mail.text, None)  # a valid header


def test_values_are_html_escaped_in_the_html_part_only(tmp_path: Path):
    (tmp_path / "welcome.txt").write_text("Subject: Hi\n\nHello $username\n")
    (tmp_path / "welcome.html").write_text("<p>Hello $username</p>")
    mail = MailTemplates(tmp_path).render("welcome", {"username": "<b>x</b>&"})
    assert mail.text == "Hello <b>x</b>&\n"
    assert mail.html == "<p>Hello &lt;b&gt;x&lt;/b&gt;&amp;</p>"


def test_templates_cannot_run_code_and_unknown_names_stay(tmp_path: Path):
    (tmp_path / "welcome.txt").write_text(
        "Subject: $app_name\n\n${username.__class__} {username} $unknown $$\n"
    )
    mail = MailTemplates(tmp_path).render("welcome", {"app_name": "A", "username": "u"})
    assert mail.text == "${username.__class__} {username} $unknown $\n"


def test_override_falls_back_to_shipped_templates(tmp_path: Path):
    (tmp_path / "welcome.txt").write_text("subject:   Custom  \n\n\nBody\n")
    templates = MailTemplates(tmp_path)
    assert templates.render("welcome", {}).subject == "Custom"
    assert templates.render("welcome", {}).text == "Body\n"
    shipped = MailTemplates().render("forgot_username", CONTEXT)
    assert templates.render("forgot_username", CONTEXT) == shipped


def test_a_broken_override_fails_at_start_up(tmp_path: Path):
    (tmp_path / "password_changed.txt").write_text("No subject line here\n")
    with pytest.raises(ValueError, match=r"password_changed\.txt must start with 'Subject: '"):
        MailTemplates(tmp_path)


def test_message_is_multipart_only_with_html():
    settings = Email.model_validate({"from": "Auth <auth@example.com>"})
    plain = build_message(settings, "to@example.com", "S", "text\n", None)
    assert plain.get_content_type() == "text/plain"
    both = build_message(settings, "to@example.com", "S", "text\n", "<p>html</p>")
    assert both.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in both.iter_parts()] == ["text/plain", "text/html"]
    assert both["Message-ID"].endswith("@example.com>")
    assert both["From"] == "Auth <auth@example.com>" and both["Date"]


def test_serve_refuses_a_broken_override_in_one_line(tmp_path):
    import json
    import subprocess
    import sys

    from .support import SECRET

    (tmp_path / "welcome.txt").write_text("no subject line here\n")
    config = tmp_path / "postgrest-auth.json"
    config.write_text(
        json.dumps(
            {
                "secret": SECRET,
                "db": {"connection_string": "postgresql://nobody@127.0.0.1:1/none"},
                "email": {"templates_dir": str(tmp_path)},
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "postgrest_auth", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "email.templates_dir" in lines[0] and "welcome.txt" in lines[0]
