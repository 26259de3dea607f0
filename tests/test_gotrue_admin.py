"""GoTrue's admin API over HTTP with keys from `postgrest-auth keys`: who may call it, paging,
bans that reach PostgREST at once, and links for an operator's own mailer. (The real Python
admin client is driven in test_supabase_py.py.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from .email_flows import audit_events, outbox
from .support import SECRET, Service, SmtpServer, make_settings, wait_until

PASSWORD = "correct horse battery"


def key(role: str) -> str:
    """What an operator runs: `postgrest-auth keys anon|service`."""
    done = subprocess.run(
        [sys.executable, "-m", "postgrest_auth", "keys", role, "--days", "1"],
        env={"POSTGREST_AUTH_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def service_key() -> str:
    return key("service")


@pytest.fixture
def service(dsn: str, smtp: SmtpServer) -> Iterator[Service]:
    running = Service(make_settings(dsn, smtp.port)).start()
    yield running
    running.stop()


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base + "/v1", timeout=30) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_up(api: httpx.Client, email: str) -> dict[str, Any]:
    r = api.post("/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()


def test_only_a_service_key_opens_the_admin_api(api: httpx.Client, service_key: str) -> None:
    user = sign_up(api, "alice@example.com")
    r = api.get("/admin/users")
    assert r.status_code == 401 and r.json()["code"] == "no_authorization", r.text
    r = api.get("/admin/users", headers=auth(user["access_token"]))
    assert r.status_code == 403 and r.json()["code"] == "not_admin", r.text
    r = api.get("/admin/users", headers=auth(key("anon")))
    assert r.status_code == 403 and r.json()["code"] == "not_admin", r.text
    # a user's token with the service's role name (roles.per_user and a username like it)
    claims = jwt.decode(
        user["access_token"],
        SECRET,
        algorithms=["HS256"],
        audience="x",
        options={"verify_aud": False},
    )
    posing = jwt.encode({**claims, "role": "service_role"}, SECRET, algorithm="HS256")
    r = api.get("/admin/users", headers=auth(posing))
    assert r.status_code == 403 and r.json()["code"] == "not_admin", r.text
    forged = service_key[:-4] + ("AAAA" if not service_key.endswith("AAAA") else "BBBB")
    assert api.get("/admin/users", headers=auth(forged)).status_code == 403
    r = api.get("/admin/users", headers=auth(service_key))
    assert r.status_code == 200 and r.json()["users"][0]["email"] == "alice@example.com"


def test_paging_counts_every_user(api: httpx.Client, service_key: str) -> None:
    for n in range(3):
        sign_up(api, f"user{n}@example.com")
    r = api.get("/admin/users?page=2&per_page=2", headers=auth(service_key))
    assert r.status_code == 200, r.text
    assert [u["email"] for u in r.json()["users"]] == ["user2@example.com"]
    assert r.headers["X-Total-Count"] == "3" and 'rel="last"' in r.headers["Link"]
    r = api.get("/admin/users/not-a-uuid", headers=auth(service_key))
    assert r.status_code == 404 and r.json()["code"] == "user_not_found", r.text


def test_a_ban_ends_sessions_everywhere_until_lifted(
    service: Service, api: httpx.Client, service_key: str, load_todos, postgrest_factory
) -> None:  # type: ignore[no-untyped-def]
    load_todos()
    rest = postgrest_factory(service.settings, pre_request="check_token_count")
    session = sign_up(api, "bob@example.com")
    assert httpx.get(rest.url + "/todos", headers=auth(session["access_token"])).status_code == 200
    # the anon key is what supabase-js sends when signed out: PostgREST takes it as web_anon
    assert httpx.get(rest.url + "/todos", headers=auth(key("anon"))).status_code == 200

    uid = session["user"]["id"]
    r = api.put(f"/admin/users/{uid}", json={"ban_duration": "1h30m"}, headers=auth(service_key))
    assert r.status_code == 200 and r.json()["banned_until"], r.text
    r = httpx.get(rest.url + "/todos", headers=auth(session["access_token"]))
    assert r.status_code == 401, r.text
    refresh = {"refresh_token": session["refresh_token"]}
    assert api.post("/token?grant_type=refresh_token", json=refresh).status_code == 400
    credentials = {"email": "bob@example.com", "password": PASSWORD}
    r = api.post("/token?grant_type=password", json=credentials)
    assert r.status_code == 400 and r.json()["code"] == "user_banned", r.text
    r = api.put(f"/admin/users/{uid}", json={"ban_duration": "soon"}, headers=auth(service_key))
    assert r.status_code == 400 and r.json()["code"] == "validation_failed", r.text

    r = api.put(f"/admin/users/{uid}", json={"ban_duration": "none"}, headers=auth(service_key))
    assert r.status_code == 200 and "banned_until" not in r.json(), r.text
    assert api.post("/token?grant_type=password", json=credentials).status_code == 200
    # a ban that has run out refuses nothing (Go's units, down to the millisecond)
    r = api.put(f"/admin/users/{uid}", json={"ban_duration": "1ms"}, headers=auth(service_key))
    assert r.status_code == 200, r.text
    assert api.post("/token?grant_type=password", json=credentials).status_code == 200
    r = api.put(f"/admin/users/{uid}", json={"ban_duration": "0s"}, headers=auth(service_key))
    assert r.status_code == 200 and "banned_until" not in r.json(), r.text  # Ban(0) lifts


def test_create_change_and_delete(api: httpx.Client, service_key: str) -> None:
    admin = auth(service_key)
    r = api.post(
        "/admin/users",
        json={
            "email": "carol@example.com",
            "password": PASSWORD,
            "email_confirm": True,
            "app_metadata": {"plan": "free"},
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    carol = r.json()
    assert carol["email_confirmed_at"] and carol["app_metadata"]["provider"] == "email"
    again = api.post("/admin/users", json={"email": "carol@example.com"}, headers=admin)
    assert again.status_code == 422 and again.json()["code"] == "email_exists", again.text
    session = api.post(
        "/token?grant_type=password", json={"email": "carol@example.com", "password": PASSWORD}
    ).json()
    r = api.put(
        f"/admin/users/{carol['id']}", json={"password": "an operator's password"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert api.get("/user", headers=auth(session["access_token"])).status_code == 403
    assert api.delete(f"/admin/users/{carol['id']}", headers=admin).status_code == 200
    assert api.get(f"/admin/users/{carol['id']}", headers=admin).status_code == 404


def test_generated_links_are_not_mailed(api: httpx.Client, service_key: str, dsn: str) -> None:
    sign_up(api, "dave@example.com")
    r = api.post(
        "/admin/generate_link",
        json={"type": "recovery", "email": "dave@example.com"},
        headers=auth(service_key),
    )
    assert r.status_code == 200, r.text
    link = r.json()
    assert link["verification_type"] == "recovery" and len(link["email_otp"]) == 6
    opened = httpx.get(link["action_link"])
    assert opened.status_code == 200 and opened.json()["access_token"], opened.text
    unknown = {"type": "magiclink", "email": "nobody@example.com"}
    r = api.post("/admin/generate_link", json=unknown, headers=auth(service_key))
    assert r.status_code == 404, r.text
    assert [kind for kind, _ in outbox(dsn)] == ["welcome"]  # nothing else was queued


def test_email_metadata_and_invitations(
    api: httpx.Client, service_key: str, dsn: str, smtp: SmtpServer
) -> None:
    admin = auth(service_key)
    erin = sign_up(api, "erin@example.com")["user"]
    assert erin["email_confirmed_at"] is None
    change = {
        "email": "Erin.New@example.com",
        "email_confirm": True,
        "user_metadata": {"name": "Erin"},
        "app_metadata": {"plan": "pro"},
    }
    r = api.put(f"/admin/users/{erin['id']}", json=change, headers=admin)
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["email"] == "erin.new@example.com" and changed["email_confirmed_at"]
    r = api.put(f"/admin/users/{erin['id']}", json={"user_metadata": {"age": 3}}, headers=admin)
    assert r.json()["user_metadata"] == {"name": "Erin", "age": 3}, r.text  # merged, as GoTrue
    assert r.json()["app_metadata"]["plan"] == "pro"
    r = api.put(f"/admin/users/{erin['id']}", json={"password": "short"}, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "weak_password", r.text

    r = api.post("/invite", json={"email": "frank@example.com"}, headers=admin)
    assert r.status_code == 200 and r.json()["email_confirmed_at"] is None, r.text
    assert api.post("/invite", json={"email": "frank@example.com"}).status_code == 401
    mailed = wait_until(lambda: [m for m in smtp.mailbox.to("frank@example.com")])
    assert mailed, "no invitation mail"
    events = [(event, detail.get("by")) for event, _, detail in audit_events(dsn)]
    for event in ("email_changed", "email_confirmed", "metadata_changed", "otp_requested"):
        assert (event, "admin_api") in events, events
