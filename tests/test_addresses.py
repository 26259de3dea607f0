"""Email addresses on special-use domains (`.local`, `.test`, …): accepted, lowercased, mailed.

The first half tests `postgrest_auth.addresses` alone; the second signs up, changes email and
asks for a forgotten username against the real service, whose mail must reach the address."""

from __future__ import annotations

import socket

import email_validator
import pytest
from pydantic import BaseModel, ValidationError

from postgrest_auth.addresses import MAX_LENGTH, EmailAddress, normalize_email

from .support import body_text, run_sql, sign_up

PASSWORD = "correct horse"

# What intranets and test setups use, and what pydantic's EmailStr refused (or might).
SPECIAL_USE = [
    "alice@corp.local",
    "bob@example.test",
    "ops@intranet.lan",
    "x@host.internal",
    "y@foo.example",
    "dev@app.localhost",
    "root@localhost",
    "q@test",
    "m@mailhost",
    "z@10.in-addr.arpa",
    "w@site.invalid",
    "v@hidden.onion",
]


class Form(BaseModel):
    email: EmailAddress


class MaybeForm(BaseModel):
    email: EmailAddress | None = None


# -- the rule alone -----------------------------------------------------------------------------


@pytest.mark.parametrize("address", [*SPECIAL_USE, "alice@example.com", "a.b+tag@sub.corp.lan"])
def test_syntactically_valid_addresses_are_accepted(address):
    assert normalize_email(address) == address
    assert Form(email=address).email == address


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Alice.Smith@Corp.LOCAL", "alice.smith@corp.local"),
        ("BOB@EXAMPLE.TEST", "bob@example.test"),
        ("  Ops@Intranet.Lan\n", "ops@intranet.lan"),  # form fields keep stray whitespace
        ("Root@LocalHost", "root@localhost"),
        ("Ünï@Bücher.local", "ünï@bücher.local"),
        ("x@xn--bcher-kva.local", "x@bücher.local"),  # IDNA still decoded under a reserved name
    ],
)
def test_the_whole_address_is_normalized_and_lowercased(given, stored):
    assert normalize_email(given) == stored
    assert Form(email=given).email == stored


def _of_length(size: int) -> str:
    local = "a" * 64
    domain = "b" * 63 + "." + "c" * 63 + "."
    domain += "d" * (size - len(local) - 1 - len(domain) - len(".local")) + ".local"
    address = f"{local}@{domain}"
    assert len(address) == size
    return address


def test_the_length_is_bounded():
    assert MAX_LENGTH == 254
    assert normalize_email(_of_length(254)) == _of_length(254)
    with pytest.raises(ValueError, match="too long"):
        normalize_email(_of_length(255))
    with pytest.raises(ValueError, match="too long"):
        normalize_email("a@" + "b" * 10_000 + ".local")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "nope",
        "corp.local",
        "a@",
        "@corp.local",
        "a b@corp.local",
        "a@corp local",
        "a@b@corp.local",
        "a@corp..local",
        "a@corp.local.",
        "a@-corp.local",
        "a@corp_x.local",
        ".a@corp.local",
        "Alice <alice@corp.local>",
        '"a b"@corp.local',
        "a@[10.0.0.1]",
        "a@10.0.0.1",
        "a@123",
        "a@" + "b" * 64 + ".local",  # a label longer than DNS allows
    ],
)
def test_garbage_is_refused_with_a_reason(garbage):
    with pytest.raises(ValueError) as raised:
        normalize_email(garbage)
    assert str(raised.value).strip()
    with pytest.raises(ValidationError) as invalid:
        Form(email=garbage)
    [error] = invalid.value.errors()
    assert error["loc"] == ("email",)
    assert error["msg"].startswith("value is not a valid email address: ")
    assert error["msg"] != "value is not a valid email address: "


def test_pydantic_type_refuses_non_strings_and_allows_none_when_optional():
    with pytest.raises(ValidationError):
        Form(email=123)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Form.model_validate({})
    assert MaybeForm().email is None
    assert MaybeForm(email="A@Corp.Local").email == "a@corp.local"


def test_openapi_schema_still_says_email():
    schema = Form.model_json_schema()["properties"]["email"]
    assert schema["type"] == "string"
    assert schema["format"] == "email"
    assert schema["maxLength"] == MAX_LENGTH


def test_no_dns_look_up(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("address validation must not touch the network")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, no_network)
    import dns.resolver

    monkeypatch.setattr(dns.resolver.Resolver, "resolve", no_network)
    monkeypatch.setattr(dns.resolver, "resolve", no_network)
    for address in [*SPECIAL_USE, "someone@example.com", "nobody@no-such-domain-xyz.com"]:
        assert normalize_email(address) == address
        assert Form(email=address).email == address


def test_email_validator_module_settings_are_left_alone():
    """Others in the process (pydantic's EmailStr) keep the library's defaults."""
    before = list(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    normalize_email("alice@corp.local")
    assert email_validator.SPECIAL_USE_DOMAIN_NAMES == before
    assert "local" in before and "test" in before
    with pytest.raises(email_validator.EmailSyntaxError, match="special-use"):
        email_validator.validate_email("alice@corp.local", check_deliverability=False)


# -- the service --------------------------------------------------------------------------------


def test_sign_up_with_special_use_addresses_mails_each(client, smtp, dsn):
    given = ["Alice@Corp.LOCAL", "bob@example.test", "ops@intranet.lan", "x@host.internal"]
    given += ["y@foo.example"]
    for i, address in enumerate(given):
        sign_up(client, f"user{i}", address, PASSWORD)
    stored = [address.lower() for address in given]
    for i, address in enumerate(stored):
        [mail] = smtp.mailbox.wait_for(address)
        assert f"user{i}" in body_text(mail)
    rows = run_sql(dsn, "select email from auth.users order by id")
    assert [row["email"] for row in rows] == stored


def test_sign_up_still_refuses_garbage(client):
    r = client.post(
        "/users", json={"username": "alice", "password": PASSWORD, "email": "a b@corp.local"}
    )
    assert r.status_code == 400, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "email"
    assert error["messages"][0].startswith("value is not a valid email address: ")


def test_change_email_to_and_from_special_use_addresses(client, smtp, dsn):
    sign_up(client, "alice", "alice@corp.local", PASSWORD)
    smtp.mailbox.wait_for("alice@corp.local")  # the welcome mail
    r = client.post(
        "/change_email",
        json={"username": "alice", "password": PASSWORD, "email": "Alice@Host.Internal"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Email changed"}
    assert run_sql(dsn, "select email from auth.users")[0][0] == "alice@host.internal"
    told = body_text(smtp.mailbox.wait_for("alice@corp.local", count=2)[-1])
    assert "alice@host.internal" in told
    # The new address is the account's: mail for it arrives there.
    r = client.post("/forgot_username", json={"email": "alice@host.internal"})
    assert r.status_code == 200, r.text
    [mail] = smtp.mailbox.wait_for("alice@host.internal")
    assert "alice" in body_text(mail)


def test_forgot_username_with_a_special_use_address(client, smtp):
    sign_up(client, "Bob", "bob@example.test", PASSWORD)
    smtp.mailbox.wait_for("bob@example.test")  # the welcome mail
    r = client.post("/forgot_username", data={"email": "BOB@Example.TEST"})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Username Email sent"}
    mails = smtp.mailbox.wait_for("bob@example.test", count=2)
    assert "Bob" in body_text(mails[-1])
