"""Who proves the mailbox owns the account: a password set by whoever signed up with an
unproven address goes when the address's owner first signs in by a mailed link or code; and an
old mail's secret can never spend the newer one that replaced it."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import httpx
import pytest

from postgrest_auth.store import Store

from .email_flows import PASSWORD, assert_session, login, secret_to, services_on, sign_up
from .support import make_settings, run_sql


@pytest.fixture
def start_service(dsn, smtp):  # type: ignore[no-untyped-def]
    yield from services_on(dsn, smtp)


def test_the_mailbox_owner_takes_an_account_a_squatter_signed_up(start_service, smtp, dsn):
    service = start_service(email={"confirm": True})
    with service.client() as client:
        assert sign_up(client, "squatter", "victim@corp.local").status_code == 201
        # The real owner signs in by a magic link: the address is proven by them, not by the
        # one who chose the password.
        assert client.post("/otp", json={"email": "victim@corp.local"}).status_code == 200
        mail = secret_to(smtp, "victim@corp.local", "sign-in link")
        owner = assert_session(httpx.get(service.url + mail.path()))
        assert login(client, "squatter", PASSWORD).status_code == 401
        assert login(client, "victim@corp.local", PASSWORD).status_code == 401
        me = client.get("/user", headers={"Authorization": f"Bearer {owner['access_token']}"})
        assert me.status_code == 200, me.text
    [row] = run_sql(dsn, "select password, token_count from auth.users")
    assert row["password"] is None and row["token_count"] == 1


def test_an_old_secret_cannot_spend_the_mail_that_replaced_it(start_service, smtp, dsn):
    service = start_service(email={"confirm": True})
    with service.client() as client:
        sign_up(client, "grace", None)
        body = {"username": "grace", "password": PASSWORD}
        assert client.post("/change_email", json={**body, "email": "a@own.test"}).is_success
        first = secret_to(smtp, "a@own.test", "Confirm")
        assert client.post("/change_email", json={**body, "email": "b@victim.test"}).is_success
    [token] = run_sql(dsn, "select id from auth.one_time_tokens where kind = 'email_change'")
    old_hash = hashlib.sha256(first.token_hash.encode()).digest()
    store = Store(make_settings(dsn))

    async def spend() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await store.spend_one_time_token(conn, token["id"], old_hash)
        finally:
            await conn.close()

    assert asyncio.run(spend()) is None  # the row now holds the second mail's secrets
    [user] = run_sql(dsn, "select email, new_email from auth.users")
    assert user["email"] is None and user["new_email"] == "b@victim.test"
