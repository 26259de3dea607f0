"""Two instances on one database behind a real nginx upstream (DESIGN §12).

All state is in PostgreSQL, so either instance serves any client: tokens and refresh tokens from
one work at the other, rate limits count across both, the outbox is sent once by whichever mail
worker claims it, and when one instance dies (SIGKILL, mid-load) nginx sends everything to the
other."""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .instances_support import (
    Cluster,
    forwarded_for,
    instance_config,
    migrate,
    start_cluster,
    wait_quiet,
)
from .support import SmtpServer, dsn_for_database, run_sql

PASSWORD = "correct horse"
PER_ADDRESS = 10  # requests per address and endpoint family in a minute, across the instances

_addresses = itertools.count(1)
_addresses_lock = threading.Lock()


def fresh_address() -> str:
    """A client address no other request of this run used: no per-address limit is shared."""
    with _addresses_lock:
        n = next(_addresses)
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


@dataclass
class Stack:
    cluster: Cluster
    smtp: SmtpServer
    dsn: str


@pytest.fixture
def stack(admin_dsn: str, tmp_path: Path) -> Iterator[Stack]:
    """A database, an SMTP server, two instances (migrated once, beforehand) and nginx."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with contextlib.ExitStack() as cleanup:
        run_sql(admin_dsn, f'create database "{name}"')
        cleanup.callback(run_sql, admin_dsn, f'drop database if exists "{name}" with (force)')
        dsn = dsn_for_database(admin_dsn, name)
        smtp = SmtpServer().start()
        cleanup.callback(smtp.stop)
        config = instance_config(
            dsn,
            smtp.port,
            "http://127.0.0.1",  # mailed links are counted here, not followed
            rate_limit={
                "per_address": {"requests": PER_ADDRESS, "window": 60},
                "per_account": {"requests": 100000, "window": 60},
            },
        )
        migrate(tmp_path, config)
        cluster = start_cluster(tmp_path, config)
        cleanup.callback(cluster.stop)
        yield Stack(cluster, smtp, dsn)


def sign_up(client: httpx.Client, username: str, email: str | None = None) -> dict[str, str]:
    body = {"username": username, "password": PASSWORD}
    if email:
        body["email"] = email
    answer = client.post("/users", json=body, headers=forwarded_for(fresh_address()))
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_tokens_from_either_instance_work_at_both(stack: Stack) -> None:
    a, b = stack.cluster.instances
    with a.client() as at_a, b.client() as at_b:
        tokens = sign_up(at_a, "alice")
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert at_b.get("/user", headers=bearer).json()["username"] == "alice"
        # A's refresh token rotates at B, B's at A, and each access token works at the other.
        from_b = at_b.post("/refresh_token", json={"refresh_token": tokens["refresh_token"]})
        assert from_b.status_code == 200, from_b.text
        bearer_b = {"Authorization": f"Bearer {from_b.json()['access_token']}"}
        assert at_a.get("/user", headers=bearer_b).json()["username"] == "alice"
        from_a = at_a.post("/refresh_token", json={"refresh_token": from_b.json()["refresh_token"]})
        assert from_a.status_code == 200, from_a.text
        # Sessions are listed alike, and ending one at A ends it at B.
        sessions_a = at_a.get("/sessions", headers=bearer_b).json()
        assert sessions_a == at_b.get("/sessions", headers=bearer_b).json()
        bearer_a = {"Authorization": f"Bearer {from_a.json()['access_token']}"}
        assert at_a.post("/logout", headers=bearer_a).status_code == 200
        assert at_b.get("/user", headers=bearer_a).status_code == 401
        again = at_b.post("/refresh_token", json={"refresh_token": from_a.json()["refresh_token"]})
        assert again.status_code == 401, again.text


def test_rate_limits_count_across_instances(stack: Stack) -> None:
    a, b = stack.cluster.instances
    with a.client() as at_a, b.client() as at_b, stack.cluster.nginx.client() as through_nginx:
        sign_up(at_a, "bob")
        client = forwarded_for("192.0.2.7")
        body = {"username": "bob", "password": PASSWORD}
        statuses = [
            (at_a if i % 2 == 0 else at_b).post("/login", json=body, headers=client).status_code
            for i in range(PER_ADDRESS)
        ]
        assert statuses == [200] * PER_ADDRESS  # five at each: neither alone reached the limit
        assert at_a.post("/login", json=body, headers=client).status_code == 429
        assert at_b.post("/login", json=body, headers=client).status_code == 429
        # Through nginx the client's address still keys the limit (nginx appends its own,
        # a trusted proxy, which is skipped); another client is not held back.
        assert through_nginx.post("/login", json=body, headers=client).status_code == 429
        other = forwarded_for("192.0.2.8")
        assert through_nginx.post("/login", json=body, headers=other).status_code == 200


def test_mail_from_both_instances_is_sent_exactly_once(stack: Stack) -> None:
    a, b = stack.cluster.instances
    users = [(f"mailuser{i}", f"mailuser{i}@example.test") for i in range(20)]
    with a.client() as at_a, b.client() as at_b:
        clients = [at_a, at_b]

        def welcome(i: int) -> None:
            sign_up(clients[i % 2], *users[i])

        def recover(i: int) -> int:
            body = {"email": users[i][1]}
            headers = forwarded_for(fresh_address())
            return clients[(i + 1) % 2].post("/recover", json=body, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:  # both instances' mail workers race for the outbox
            list(pool.map(welcome, range(20)))
            assert list(pool.map(recover, range(20))) == [200] * 20

        def all_sent() -> bool:
            rows = run_sql(
                stack.dsn,
                "select count(*) filter (where sent_at is not null) as sent,"
                " count(*) as total from auth.outbox",
            )
            return rows[0]["total"] == 40 and rows[0]["sent"] == 40

        wait_quiet(all_sent, quiet=1.0, timeout=60)
        time.sleep(1.0)  # a second send of any of them would have reached SMTP by now
    per_recipient = Counter(message["To"] for message in stack.smtp.mailbox.messages)
    assert per_recipient == {address: 2 for _, address in users}, per_recipient
    # Each worker logs what it sent: every mail once, between them.
    sent_by = [re.findall(r"mail (\d+) \(\w+\) sent", i.output()) for i in (a, b)]
    every_send = [*sent_by[0], *sent_by[1]]
    assert len(every_send) == len(set(every_send)) == 40, sent_by
    rows = run_sql(stack.dsn, "select recipient, kind, attempts from auth.outbox")
    assert Counter(row["kind"] for row in rows) == {"welcome": 20, "recovery": 20}
    assert {row["attempts"] for row in rows} == {1}  # no mail was claimed twice
    print(
        f"\n40 mails (20 welcome, 20 recovery) from two instances: {len(per_recipient)} "
        f"recipients, {sum(per_recipient.values())} messages at SMTP, each sent once"
        f" (instance 1 sent {len(sent_by[0])}, instance 2 {len(sent_by[1])})"
    )


@dataclass
class Outcome:
    sent: float
    done: float
    kind: str
    status: int | str


def test_sigkill_one_instance_mid_load(stack: Stack) -> None:
    a, b = stack.cluster.instances
    clients = 6
    with a.client() as at_a:
        for i in range(clients):
            sign_up(at_a, f"loaduser{i}")
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()

    def record(sent: float, kind: str, status: int | str) -> None:
        with lock:
            outcomes.append(Outcome(sent, time.monotonic(), kind, status))

    def call(http: httpx.Client, kind: str, path: str, body: dict[str, str]) -> dict | None:
        sent = time.monotonic()
        try:
            answer = http.post(path, json=body, headers=forwarded_for(fresh_address()))
        except httpx.HTTPError as exc:
            record(sent, kind, type(exc).__name__)
            return None
        record(sent, kind, answer.status_code)
        return answer.json() if answer.status_code == 200 else None

    def user_loop(i: int) -> None:
        """Sign in, refresh three times (rotating), again; start over after any failure."""
        with stack.cluster.nginx.client() as http:
            while not stop.is_set():
                tokens = call(
                    http, "login", "/login", {"username": f"loaduser{i}", "password": PASSWORD}
                )
                for _ in range(3):
                    if tokens is None or stop.is_set():
                        break
                    tokens = call(
                        http,
                        "refresh",
                        "/refresh_token",
                        {"refresh_token": tokens["refresh_token"]},
                    )

    threads = [threading.Thread(target=user_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3.0)
        killed_at = time.monotonic()
        a.kill()
        time.sleep(6.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    settle = 1.0
    before = [o for o in outcomes if o.done < killed_at]
    around = [o for o in outcomes if o.done >= killed_at and o.sent < killed_at + settle]
    after = [o for o in outcomes if o.sent >= killed_at + settle]
    failed_before = [o for o in before if o.status != 200]
    failed_around = Counter(o.status for o in around if o.status != 200)
    failed_after = Counter(o.status for o in after if o.status != 200)
    print(
        f"\n{clients} clients: {len(before)} requests before the kill"
        f" ({len(failed_before)} failed),"
        f" {len(around)} in the {settle:.0f} s around it (failed: {dict(failed_around) or 0}),"
        f" {len(after)} after ({dict(failed_after) or 0} failed)"
    )
    assert not failed_before, failed_before[:5]
    assert len(before) >= 20, "too little load before the kill to mean anything"
    # After a short settle, the other instance answers every request.
    assert not failed_after, (failed_after, stack.cluster.nginx.error_log()[-2000:])
    assert len(after) >= 20, f"only {len(after)} requests after the kill"
    # At most the requests that were inside the killed process can be lost: one per client.
    assert sum(failed_around.values()) <= clients, failed_around
    assert b.process is not None and b.process.poll() is None
