"""Pure functions: quoting, templates, validation, token claims, hashing policy, CLI flags."""

from __future__ import annotations

import asyncio
import string
import time
from email.message import EmailMessage

import bcrypt
import jwt
import pytest

from postgrest_auth.accounts.recovery import reset_link
from postgrest_auth.cli import build_parser, overrides_from
from postgrest_auth.config import Passwords, load_settings
from postgrest_auth.mail.senders import ConsoleSender, build_message
from postgrest_auth.migrate import render, template_values
from postgrest_auth.passwords import PasswordHasher
from postgrest_auth.sqltext import quote_ident, quote_literal
from postgrest_auth.tokens import ACCESS, RESET, InvalidToken, TokenIssuer, is_node_token
from postgrest_auth.validation import password_problems, username_problems

SECRET = "u" * 48


def settings(**overrides):  # type: ignore[no-untyped-def]
    return load_settings(None, {"secret": SECRET, **overrides}, environ=False)


USER = {
    "id": 7,
    "uid": "0b6f7c1e-4a51-4c44-9a7e-3c1d2f9e8a10",
    "username": "Alice",
    "username_lowercase": "alice",
    "email": None,
    "token_count": 2,
}


# -- SQL text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("auth", '"auth"'), ("my auth", '"my auth"'), ('Users"x', '"Users""x"'), ('"', '""""')],
)
def test_quote_ident(name, quoted):
    assert quote_ident(name) == quoted


def test_quote_literal():
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("") == "''"


def test_render_fills_every_placeholder_once():
    values = template_values(settings(db={"schema": "a'b", "table": 'T"'}))
    text = render("select {{ schema }}.{{table}} where r = {{user_role_literal}}", values)
    assert text == 'select "a\'b"."T""" where r = \'normal_user\''
    with pytest.raises(KeyError):
        render("{{nope}}", values)


def test_index_names_stay_distinct_within_postgres_limit():
    values = template_values(settings(db={"table": "t" * 63}))
    # PostgreSQL cuts identifiers to 63 bytes; the two index names must differ after that.
    cut = {values[k].strip('"')[:63] for k in ("username_index", "email_index")}
    assert len(cut) == 2


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "ABC123", "a" * 20])
def test_good_usernames(name):
    assert username_problems(settings(), name) == []


@pytest.mark.parametrize("name", ["ab", "a" * 21, "a b", "ä" * 5, "abc\n", "abc_d"])
def test_bad_usernames(name):
    [problem] = username_problems(settings(), name)
    assert problem["field"] == "username"


def test_username_pattern_is_configurable():
    custom = settings(usernames={"pattern": r"^[a-z_]{2,5}$"})
    assert username_problems(custom, "a_b") == []
    assert username_problems(custom, "abc123")


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("x" * 7, False),
        ("x" * 8, True),
        ("x" * 72, True),
        ("x" * 73, False),
        ("é" * 36, True),
        ("é" * 37, False),
        ("🔑" * 2, True),
        ("🔑" * 19, False),
    ],
)
def test_password_bounds_in_bytes(password, ok):
    problems = password_problems(settings(), "password", password)
    assert (problems == []) is ok


# -- links and tokens ---------------------------------------------------------------------------


def test_reset_link():
    assert reset_link(None, "tok", "bob") == "tok"
    assert reset_link("", "tok", "bob") == "tok"
    assert reset_link("https://x/#t={token}&u={username}", "tok", "bob") == "https://x/#t=tok&u=bob"


def test_access_token_adds_its_times_and_id_to_the_database_claims():
    """The claims come from SQL (access_claims); the issuer only adds iat, exp and jti."""
    issuer = TokenIssuer(settings(payload={"exp": 300, "iss": "me"}))
    given = {"sub": "u-1", "sid": "s-1", "count": 2, "typ": ACCESS, "role": "normal_user"}
    claims = issuer.decode(issuer.access_token(given), ACCESS)
    assert claims["exp"] == claims["iat"] + 300
    assert {k: claims[k] for k in given} == given
    assert claims["jti"] != issuer.decode(issuer.access_token(given), ACCESS)["jti"]


def test_reset_token_has_no_role_and_wrong_type_for_access():
    issuer = TokenIssuer(settings())
    token = issuer.reset_token(USER)
    claims = issuer.decode(token, RESET)
    assert "role" not in claims and claims["typ"] == RESET
    with pytest.raises(InvalidToken):
        issuer.decode(token, ACCESS)
    with pytest.raises(InvalidToken):
        issuer.decode(issuer.access_token({"sub": "u-1", "count": 0, "typ": ACCESS}), RESET)


def test_decode_accepts_node_tokens_as_access_only():
    issuer = TokenIssuer(settings())
    node = jwt.encode(
        {
            "aud": "alice",
            "sub": "access",
            "count": 0,
            "role": "alice",
            "exp": int(time.time()) + 60,
        },
        SECRET,
        "HS256",
    )
    claims = issuer.decode(node, ACCESS)
    assert is_node_token(claims)
    with pytest.raises(InvalidToken):
        issuer.decode(node, RESET)


def test_is_node_token():
    assert is_node_token({"sub": "access", "aud": "bob"})
    assert not is_node_token({"sub": "7", "aud": "bob"})
    assert not is_node_token({"sub": "access", "aud": ["bob"]})


def test_decode_refuses_expired_and_typeless():
    issuer = TokenIssuer(settings())
    now = int(time.time())
    expired = jwt.encode({"sub": "1", "count": 0, "typ": "access", "exp": now - 1}, SECRET)
    with pytest.raises(InvalidToken, match="expired"):
        issuer.decode(expired, ACCESS)
    typeless = jwt.encode({"sub": "1", "count": 0, "exp": now + 60}, SECRET)
    with pytest.raises(InvalidToken):
        issuer.decode(typeless, ACCESS)


# -- hashing ------------------------------------------------------------------------------------


def test_hasher_policy():
    async def go() -> None:
        hasher = PasswordHasher(Passwords(bcrypt_rounds=4))
        try:
            hashed = await hasher.hash("correct horse")
            assert hashed.startswith("$2b$04$")
            assert await hasher.verify("correct horse", hashed) == (True, None)
            assert await hasher.verify("wrong horse", hashed) == (False, None)
            assert await hasher.verify("correct horse", None) == (False, None)
            assert await hasher.verify("correct horse", "not a hash") == (False, None)
            assert await hasher.verify("x" * 73, hashed) == (False, None)
            old = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(5, prefix=b"2a")).decode()
            ok, new = await hasher.verify("correct horse", old)
            assert ok and new is not None and new.startswith("$2b$04$")
        finally:
            hasher.close()

    asyncio.run(go())


# -- command line -------------------------------------------------------------------------------


def test_original_flags_map_to_settings():
    args = build_parser("serve").parse_args(
        [
            "-c",
            "x.json",
            "-A",
            "App",
            "-C",
            "postgres://db",
            "-s",
            "sch",
            "-t",
            "tbl",
            "-e",
            "60",
            "-i",
            "iss",
            "-S",
            "sec",
            "-p",
            "8080",
        ]
    )
    assert str(args.config) == "x.json"
    assert overrides_from(args) == {
        "app_name": "App",
        "secret": "sec",
        "port": 8080,
        "db": {"connection_string": "postgres://db", "schema": "sch", "table": "tbl"},
        "payload": {"exp": 60, "iss": "iss"},
    }
    assert overrides_from(build_parser("serve").parse_args([])) == {}


# -- console mail (--dev) -----------------------------------------------------------------------


def console_output(capsys, message: EmailMessage) -> str:  # type: ignore[no-untyped-def]
    asyncio.run(ConsoleSender().send(message))
    return capsys.readouterr().out


def test_console_mail_prints_the_decoded_text_not_quoted_printable(capsys):
    token = ((string.ascii_letters + string.digits + "-_.") * 5)[:300]
    text = f"Hello alice,   \nYour reset token:\n{token}\nbye\n"
    html = f'<p><a href="https://app.test/reset?token={token}">Reset</a></p>'
    message = build_message(
        settings().email, "alice@corp.local", "Reset your password, café", text, html
    )
    wire = message.as_string()
    assert "=20" in wire and token not in wire  # what the console used to show
    out = console_output(capsys, message)
    lines = out.splitlines()
    assert lines[0] == "----- mail -----" and lines[-1] == "----- end of mail -----"
    assert token in lines  # whole, on a line of its own, ready to copy
    assert "Hello alice,   " in lines  # trailing spaces kept as they are
    assert "=20" not in out and not [line for line in lines if line.endswith("=")]
    assert "To: alice@corp.local" in lines
    assert "Subject: Reset your password, café" in lines
    assert [line for line in lines if line.startswith("From: ")]
    assert [line for line in lines if line.startswith("Date: ")]
    assert "href" not in out  # the plain part is enough
    assert "Content-Transfer-Encoding" not in out and "boundary" not in out


def test_console_mail_without_a_plain_part_prints_the_html_decoded(capsys):
    token = "t" * 300
    message = EmailMessage()
    message["From"] = "auth@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = "Reset"
    message.set_content(f'<p><a href="https://app.test/reset?token={token}">Reset</a></p>', "html")
    out = console_output(capsys, message)
    assert f'href="https://app.test/reset?token={token}"' in out
    assert "=3D" not in out and "To: bob@example.test" in out.splitlines()


def test_access_log_drops_query_strings():
    """A mailed link's secret rides in its query string; the access log never shows it."""
    import logging

    from postgrest_auth.api.access_log import DropQueryStrings

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/auth/verify?token_hash=SECRET&type=signup", "1.1", 303),
        None,
    )
    assert DropQueryStrings().filter(record)
    assert "SECRET" not in record.getMessage() and "/auth/verify" in record.getMessage()


@pytest.mark.parametrize(
    ("redirect_to", "allowed"),
    [
        ("http://app.test:5173/anywhere?x=1", True),  # the site URL's origin
        ("https://a.example.com/callback", True),
        ("https://a.example.com/deep/path", True),
        ("https://evil.test/x.example.com/callback", False),
        ("https://evil?.example.com/callback", False),
        ("https://b.example.com@evil.test/callback", False),
        ("https://other.test/one", True),
        ("https://other.test/one/two", False),  # * stays within a segment
        ("javascript:alert(1)", False),
        ("https://app.test:5173\\@evil.test", False),
    ],
)
def test_redirect_allow_list(redirect_to: str, allowed: bool) -> None:
    from postgrest_auth.api.gotrue.redirects import allowed as is_allowed

    settings = load_settings(
        None,
        {
            "secret": "s" * 40,
            "gotrue": {
                "site_url": "http://app.test:5173",
                "redirect_urls": ["https://*.example.com/**", "https://other.test/*"],
            },
        },
        environ=False,
    )
    assert is_allowed(settings, redirect_to) is allowed
