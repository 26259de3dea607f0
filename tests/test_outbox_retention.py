"""Outbox retention and expiring links, with the real service, PostgreSQL and aiosmtpd.

Failed mail is erased after `email.failed_retention` days and sent mail deleted after
`email.sent_retention` days (timestamps set back with SQL, the janitor's sweep run once); a mail
whose link died in the queue goes out with a new link (the old one stays dead), or not at all
when a newer mail replaced it; a mail whose link lives goes out as written.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from postgrest_auth.config import Settings
from postgrest_auth.database import open_pool
from postgrest_auth.janitor import sweep_once
from postgrest_auth.passwords import PasswordHasher
from postgrest_auth.services import Services

from .email_flows import assert_session, read_secret
from .support import (
    SECRET,
    Service,
    SmtpServer,
    body_text,
    free_port,
    make_settings,
    run_sql,
    wait_until,
)
from .support import sign_up as sign_up_ok

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse"
NEW = "brand new password"
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
TOKEN_HASH = re.compile(r"token_hash=([\w-]+)")


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def running() -> Iterator[list[Any]]:
    """Services and SMTP servers a test starts itself; all stopped afterwards."""
    started: list[Any] = []
    yield started
    for thing in reversed(started):
        if isinstance(thing, Service):
            if thing.thread.is_alive():
                thing.stop()
        else:
            thing.stop()


def start(running: list[Any], settings: Settings) -> Service:
    service = Service(settings).start()
    running.append(service)
    return service


def start_smtp(running: list[Any], port: int) -> SmtpServer:
    server = SmtpServer(port=port).start()
    running.append(server)
    return server


def rows(dsn: str) -> list[Any]:
    return run_sql(
        dsn,
        "select id, kind, recipient, subject, body_text, body_html, link::text as link,"
        " attempts, sent_at, failed_at, last_error from auth.outbox order by id",
    )


def row_of(dsn: str, kind: str, recipient: str) -> Any:
    [row] = [r for r in rows(dsn) if r["kind"] == kind and r["recipient"] == recipient]
    return row


def all_failed(dsn: str, count: int) -> bool:
    done = [r for r in rows(dsn) if r["failed_at"] is not None]
    return len(done) == count == len(rows(dsn))


def sweep(settings: Settings) -> None:
    """The janitor's sweep, once, over a pool of its own (as the lifespan builds it)."""

    async def go() -> None:
        pool = await open_pool(settings)
        hasher = PasswordHasher(settings.passwords)
        try:
            await sweep_once(Services.build(settings, pool, hasher))
        finally:
            await pool.close()
            hasher.close()

    asyncio.run(go())


def cli(dsn: str, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "postgrest-auth.json"
    config.write_text(json.dumps({"secret": SECRET, "db": {"connection_string": dsn}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGREST_AUTH_")}
    done = subprocess.run(
        [sys.executable, "-m", "postgrest_auth", "mail", *args, "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def reset(http: httpx.Client, username: str, token: str) -> httpx.Response:
    return http.post(
        "/change_password",
        json={
            "username": username,
            "reset_token": token,
            "new_password": NEW,
            "new_password_confirm": NEW,
        },
    )


def verify_link(http: httpx.Client, kind: str, token_hash: str) -> httpx.Response:
    return http.post("/verify", json={"type": kind, "token_hash": token_hash})


def expire_link(dsn: str, outbox_id: int) -> None:
    """The mail's link has died in the queue (an SMTP outage longer than its lifetime)."""
    run_sql(
        dsn,
        "update auth.outbox set link_expires_at = now() - interval '1 second' where id = $1",
        outbox_id,
    )


def wait_settled(dsn: str) -> None:
    """Every mail in the outbox sent or given up."""
    wait_until(lambda: all(r["sent_at"] or r["failed_at"] for r in rows(dsn)))


def expire_recovery(dsn: str, recipient: str) -> None:
    """The recovery mail's secret and its outbox record die now, as an hour's wait would do
    (one statement: the worker never sees one without the other)."""
    run_sql(
        dsn,
        "with t as (update auth.one_time_tokens set expires_at = now() - interval '1 second'"
        " where sent_to = $1 and kind = 'recovery' returning id)"
        " update auth.outbox set link_expires_at = now() - interval '1 second'"
        " where kind = 'recovery' and recipient = $1 and sent_at is null",
        recipient,
    )


# -- retention: the janitor ---------------------------------------------------------------------


def test_janitor_erases_failed_mail_and_deletes_sent_mail_after_their_retention(
    dsn, tmp_path, running
):
    port = free_port()
    smtp = start_smtp(running, port)
    settings = make_settings(dsn, port, email={"max_attempts": 1})
    service = start(running, settings)
    with service.client() as http:
        for name in ("alice", "bob"):
            sign_up_ok(http, name, f"{name}@example.com")
        wait_until(lambda: sum(r["sent_at"] is not None for r in rows(dsn)) == 2)
        smtp.stop()  # SMTP away: the reset mails fail for good at their first attempt
        running.remove(smtp)
        for name in ("alice", "bob"):
            assert http.post("/forgot_password", json={"username": name}).status_code == 200
        wait_until(lambda: sum(r["failed_at"] is not None for r in rows(dsn)) == 2)
    service.stop()
    run_sql(
        dsn,
        "insert into auth.outbox (kind, recipient, subject, body_text, created_at,"
        " next_attempt_at) values ('welcome', 'carol@example.com', 'Welcome', 'Hello carol',"
        " now() - interval '60 days', now() + interval '1 day')",
    )
    [alice_token] = JWT.findall(row_of(dsn, "reset_password", "alice@example.com")["body_text"])
    run_sql(
        dsn,
        "update auth.outbox set"
        " sent_at = case when kind = 'welcome' and recipient = 'alice@example.com'"
        "   then now() - interval '31 days' when kind = 'welcome' and recipient ="
        "   'bob@example.com' then now() - interval '29 days' else sent_at end,"
        " failed_at = case when recipient = 'alice@example.com' and failed_at is not null"
        "   then now() - interval '8 days' when failed_at is not null"
        "   then now() - interval '6 days' end",
    )

    sweep(settings)

    kept = {(r["kind"], r["recipient"]): r for r in rows(dsn)}
    assert set(kept) == {
        ("welcome", "bob@example.com"),  # sent 29 days ago
        ("reset_password", "alice@example.com"),  # failed 8 days ago: erased, kept
        ("reset_password", "bob@example.com"),  # failed 6 days ago: as it was
        ("welcome", "carol@example.com"),  # pending, however old: never touched
    }, set(kept)
    erased = kept[("reset_password", "alice@example.com")]
    assert (erased["subject"], erased["body_text"], erased["body_html"], erased["link"]) == (
        "",
        None,
        None,
        None,
    )
    assert erased["attempts"] == 1 and erased["failed_at"] and erased["last_error"], erased
    everything = "\n".join(r[0] for r in run_sql(dsn, "select o::text from auth.outbox o"))
    assert alice_token not in everything
    assert "alice" not in everything.replace("alice@example.com", "")  # no name, no link
    recent = kept[("reset_password", "bob@example.com")]
    assert JWT.search(recent["body_text"]) and recent["link"] is not None
    assert kept[("welcome", "carol@example.com")]["body_text"] == "Hello carol"

    status = cli(dsn, tmp_path, "status")
    assert (
        "pending: 1\nsent: 1\nfailed: 2 (1 erased after email.failed_retention days)\n" in status
    ), status
    retried = cli(dsn, tmp_path, "retry")
    assert retried.startswith("1 failed mail queued again (0 with an expired link"), retried
    assert "1 failed mail not queued: erased after email.failed_retention days" in retried
    assert row_of(dsn, "reset_password", "alice@example.com")["failed_at"] is not None
    assert row_of(dsn, "reset_password", "bob@example.com")["failed_at"] is None


# -- expiring links: `mail retry` -----------------------------------------------------------------


def test_retry_sends_expired_links_anew_and_live_ones_as_written(dsn, tmp_path, running):
    """The original API's reset token (a JWT: its own `exp`, waited out for real, 60 s) and a
    recovery link (its expiry set back in the database) both failed for good; `mail retry`
    sends each with a new link that works, the old ones stay dead, and a sign-in link still
    alive goes out as written."""
    port = free_port()  # nothing listens: every mail fails for good at once
    settings = make_settings(dsn, port, email={"max_attempts": 1, "reset_token_exp": 60})
    service = start(running, settings)
    with service.client() as http:
        for name in ("alice", "bob", "carol"):
            sign_up_ok(http, name, f"{name}@example.com")
        assert http.post("/forgot_password", json={"username": "alice"}).status_code == 200
        assert http.post("/recover", json={"email": "bob@example.com"}).status_code == 200
        assert http.post("/otp", json={"email": "carol@example.com"}).status_code == 200
        wait_until(lambda: all_failed(dsn, 6), timeout=15)
        [old_reset] = JWT.findall(row_of(dsn, "reset_password", "alice@example.com")["body_text"])
        [old_recovery] = TOKEN_HASH.findall(row_of(dsn, "recovery", "bob@example.com")["body_text"])
        [carol_link] = TOKEN_HASH.findall(
            row_of(dsn, "magic_link", "carol@example.com")["body_text"]
        )
        expire_recovery(dsn, "bob@example.com")
        assert verify_link(http, "recovery", old_recovery).status_code >= 400  # dead already
    service.stop()
    # The reset token's own expiry, for real: no clock is faked.
    expires = jwt.decode(old_reset, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires + 1 - time.time()))

    retried = cli(dsn, tmp_path, "retry")
    assert retried.startswith("6 failed mail queued again (2 with an expired link"), retried
    smtp = start_smtp(running, port)
    service = start(running, settings)
    with service.client() as http:
        reset_mail = [
            m for m in smtp.mailbox.wait_for("alice@example.com", count=2) if "eset" in m["Subject"]
        ]
        [new_reset] = JWT.findall(body_text(reset_mail[0]))
        assert new_reset != old_reset
        refused = reset(http, "alice", old_reset)
        assert refused.status_code == 401 and "expired" in refused.text.lower(), refused.text
        assert reset(http, "alice", new_reset).status_code == 200
        assert http.post("/login", json={"username": "alice", "password": NEW}).is_success

        [bob] = [
            m for m in smtp.mailbox.wait_for("bob@example.com", count=2) if "ecover" in m["Subject"]
        ]
        new_recovery = read_secret(bob)
        assert new_recovery.token_hash != old_recovery
        assert verify_link(http, "recovery", old_recovery).status_code >= 400
        assert_session(verify_link(http, "recovery", new_recovery.token_hash))

        [carol] = [
            m for m in smtp.mailbox.wait_for("carol@example.com", count=2) if "ign" in m["Subject"]
        ]
        assert read_secret(carol).token_hash == carol_link  # alive: sent as written
        assert_session(verify_link(http, "magiclink", carol_link))
    wait_until(lambda: all(r["sent_at"] is not None for r in rows(dsn)))
    assert all(r["body_text"] is None and r["link"] is None for r in rows(dsn))


# -- expiring links: the worker's own retries ---------------------------------------------------


def test_a_link_that_expires_during_an_smtp_outage_arrives_new(dsn, running):
    port = free_port()
    settings = make_settings(dsn, port, email={"max_attempts": 1000})
    service = start(running, settings)
    with service.client() as http:
        sign_up_ok(http, "bob", "bob@example.com")
        assert http.post("/recover", json={"email": "bob@example.com"}).status_code == 200
        wait_until(  # queued after the answer, then tried while SMTP is away
            lambda: any(r["kind"] == "recovery" and r["attempts"] >= 2 for r in rows(dsn))
        )
        [old] = TOKEN_HASH.findall(row_of(dsn, "recovery", "bob@example.com")["body_text"])
        expire_recovery(dsn, "bob@example.com")  # an hour of outage, in a moment
        smtp = start_smtp(running, port)
        [mail] = [
            m for m in smtp.mailbox.wait_for("bob@example.com", count=2) if "ecover" in m["Subject"]
        ]
        new = read_secret(mail)
        assert new.token_hash != old
        assert verify_link(http, "recovery", old).status_code >= 400
        assert_session(verify_link(http, "recovery", new.token_hash))


def test_an_expired_mail_a_newer_one_replaced_is_not_sent_and_ends_nothing(dsn, running):
    port = free_port()
    settings = make_settings(dsn, port, email={"max_attempts": 1000})
    service = start(running, settings)
    with service.client() as http:
        sign_up_ok(http, "bob", "bob@example.com")
        for _ in range(2):
            assert http.post("/recover", json={"email": "bob@example.com"}).status_code == 200
        wait_until(lambda: len([r for r in rows(dsn) if r["kind"] == "recovery"]) == 2)
        older, newer = [r for r in rows(dsn) if r["kind"] == "recovery"]
        expire_link(dsn, older["id"])
        smtp = start_smtp(running, port)
        mails = smtp.mailbox.wait_for("bob@example.com", count=2)  # welcome, then one recovery
        wait_settled(dsn)
        dropped = next(r for r in rows(dsn) if r["id"] == older["id"])
        assert dropped["failed_at"] is not None and dropped["body_text"] is None
        assert "a newer mail of its kind replaced it" in dropped["last_error"]
        assert len(smtp.mailbox.messages) == 2, [m["Subject"] for m in smtp.mailbox.messages]
        [recovery] = [m for m in mails if "ecover" in m["Subject"]]
        sent = read_secret(recovery)
        assert sent.token_hash in newer["body_text"]  # the newer mail, as written
        assert_session(verify_link(http, "recovery", sent.token_hash))


def test_a_mail_queued_before_links_were_recorded_is_not_sent_once_expired(dsn, running):
    """What the migration leaves of a reset mail queued before it: an expiry and nothing to
    issue the secret again from. The worker drops it; mail without a secret still goes."""
    port = free_port()
    smtp = start_smtp(running, port)
    settings = make_settings(dsn, port)
    start(running, settings).stop()  # the schema, migrated
    run_sql(
        dsn,
        "insert into auth.outbox (kind, recipient, subject, body_text, link_expires_at) values"
        " ('reset_password', 'dan@example.com', 'Reset', 'token eyJold.old.old',"
        "  now() - interval '1 second'),"
        " ('welcome', 'dan@example.com', 'Welcome', 'Hello dan', null)",
    )
    start(running, settings)
    [mail] = smtp.mailbox.wait_for("dan@example.com")
    assert mail["Subject"] == "Welcome"
    wait_settled(dsn)
    dropped = row_of(dsn, "reset_password", "dan@example.com")
    assert dropped["last_error"] == "not sent: its link expired", dropped
    assert dropped["body_text"] is None and dropped["sent_at"] is None
    assert len(smtp.mailbox.to("dan@example.com")) == 1


def test_a_failed_sign_in_mail_whose_secret_the_janitor_deleted_is_not_sent_anew(
    dsn, tmp_path, running
):
    """Sign-in mail A fails for good; the user asks again and signs in with B; a day later the
    janitor deletes B's row. `mail retry` must not send A with a new, working link: its
    secret is gone."""
    port = free_port()  # nothing listens yet: A fails for good at once
    settings = make_settings(dsn, port, email={"max_attempts": 1})
    service = start(running, settings)
    with service.client() as http:
        sign_up_ok(http, "carol", "carol@example.com")
        assert http.post("/otp", json={"email": "carol@example.com"}).status_code == 200
        wait_until(lambda: all_failed(dsn, 2), timeout=15)
        a = row_of(dsn, "magic_link", "carol@example.com")
        smtp = start_smtp(running, port)
        assert http.post("/otp", json={"email": "carol@example.com"}).status_code == 200
        [b] = smtp.mailbox.wait_for("carol@example.com")
        assert_session(verify_link(http, "magiclink", read_secret(b).token_hash))
    service.stop()
    # a day later: the janitor's delete; A's link long dead
    run_sql(dsn, "delete from auth.one_time_tokens where sent_to = $1", "carol@example.com")
    expire_link(dsn, a["id"])

    retried = cli(dsn, tmp_path, "retry")
    assert retried.startswith("2 failed mail queued again (1 with an expired link"), retried
    start(running, settings)
    wait_settled(dsn)
    dropped = next(r for r in rows(dsn) if r["id"] == a["id"])
    assert dropped["failed_at"] is not None and dropped["sent_at"] is None, dropped
    assert "its secret is gone" in dropped["last_error"], dropped["last_error"]
    assert dropped["body_text"] is None
    sign_ins = [m for m in smtp.mailbox.to("carol@example.com") if "ign" in m["Subject"]]
    assert sign_ins == [b], [m["Subject"] for m in smtp.mailbox.to("carol@example.com")]
    assert run_sql(dsn, "select count(*) from auth.one_time_tokens")[0][0] == 0  # none issued


def test_a_newer_secret_committed_while_a_mail_is_renewed_wins(dsn, running):
    """A request commits sign-in secret B for the account while the worker renews expired mail
    A: the renewal waits for it, sees B and drops A; B is never overwritten."""
    from postgrest_auth.mail.relink import renew

    port = free_port()  # nothing listens: A fails for good at once
    settings = make_settings(dsn, port, email={"max_attempts": 1})
    service = start(running, settings)
    with service.client() as http:
        sign_up_ok(http, "carol", "carol@example.com")
        assert http.post("/otp", json={"email": "carol@example.com"}).status_code == 200
        wait_until(lambda: all_failed(dsn, 2), timeout=15)
    service.stop()
    a = row_of(dsn, "magic_link", "carol@example.com")
    run_sql(  # due again, its link dead: the worker would renew it
        dsn,
        "update auth.outbox set failed_at = null, next_attempt_at = now(),"
        " link_expires_at = now() - interval '1 second' where id = $1",
        a["id"],
    )
    newer = os.urandom(32)

    async def race() -> Any:
        pool = await open_pool(settings)
        hasher = PasswordHasher(settings.passwords)
        request = await asyncpg.connect(dsn)
        watch = await asyncpg.connect(dsn)
        try:
            services = Services.build(settings, pool, hasher)
            async with pool.acquire() as conn:
                [mail] = await services.store.claim_mail(conn, 60, 10)
            assert mail["id"] == a["id"] and mail["link_expired"]
            tx = request.transaction()
            await tx.start()  # the request's issue(), not yet committed
            await request.execute(
                "update auth.one_time_tokens set token_hash = $1 where kind = 'magiclink'", newer
            )
            renewing = asyncio.create_task(renew(services, mail))
            for _ in range(100):  # until the renewal waits on the request's row lock
                waiting = await watch.fetchval(
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                    " and datname = current_database()"
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting, "the renewal never met the request's lock"
            await tx.commit()
            return await asyncio.wait_for(renewing, 10)
        finally:
            await request.close()
            await watch.close()
            await pool.close()
            hasher.close()

    assert asyncio.run(race()) is None  # not sent
    [token] = run_sql(dsn, "select token_hash from auth.one_time_tokens where kind = 'magiclink'")
    assert token["token_hash"] == newer
    dropped = next(r for r in rows(dsn) if r["id"] == a["id"])
    assert "a newer mail of its kind replaced it" in dropped["last_error"], dropped


def test_a_failed_invitation_to_a_confirmed_address_is_not_sent_anew(dsn, tmp_path, running):
    """An invitation mail failed; the address was confirmed since (here by SQL, as an operator
    or another link would): `mail retry` sends no new invitation, whose link would sign in."""
    service_key = subprocess.run(
        [sys.executable, "-m", "postgrest_auth", "keys", "service", "--days", "1"],
        env={"POSTGREST_AUTH_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()  # nothing listens: the invitation fails for good at once
    settings = make_settings(dsn, port, email={"max_attempts": 1})
    service = start(running, settings)
    with httpx.Client(base_url=service.base + "/v1", timeout=30) as api:
        r = api.post(
            "/invite",
            json={"email": "frank@example.com"},
            headers={"Authorization": f"Bearer {service_key}"},
        )
        assert r.status_code == 200, r.text
        wait_until(lambda: all_failed(dsn, 1), timeout=15)
    service.stop()
    invitation = row_of(dsn, "invite", "frank@example.com")
    confirm = "update auth.users set email_confirmed_at = now() where email = $1"
    run_sql(dsn, confirm, "frank@example.com")
    expire_link(dsn, invitation["id"])

    retried = cli(dsn, tmp_path, "retry")
    assert retried.startswith("1 failed mail queued again (1 with an expired link"), retried
    smtp = start_smtp(running, port)
    start(running, settings)
    wait_settled(dsn)
    dropped = row_of(dsn, "invite", "frank@example.com")
    assert dropped["sent_at"] is None and dropped["failed_at"] is not None, dropped
    assert "the address is confirmed already" in dropped["last_error"], dropped["last_error"]
    assert smtp.mailbox.to("frank@example.com") == []
