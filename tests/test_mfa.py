"""Second factors against the real service, database and PostgREST: TOTP enrolment with codes
computed by pyotp (as an authenticator app would), aal1 → aal2, single-use codes, the failure
limit, recovery codes, unenrolment, the original API's cookie mode, and a table whose policy
serves aal2 sessions only."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pyotp
import pytest

from .support import PostgREST, Service, SmtpServer, make_settings

PASSWORD = "correct horse battery"
HEADERS = {"X-Supabase-Api-Version": "2024-01-01"}


@pytest.fixture
def service(dsn: str, smtp: SmtpServer) -> Iterator[Service]:
    running = Service(make_settings(dsn, smtp.port, gotrue={"site_url": "http://app.test"})).start()
    yield running
    running.stop()


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base + "/v1", headers=HEADERS, timeout=30) as client:
        yield client


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


def claims(session: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(session["access_token"], options={"verify_signature": False})


def signed_in(api: httpx.Client, email: str = "alice@example.com") -> dict[str, Any]:
    r = api.post("/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()


def password_session(api: httpx.Client, email: str = "alice@example.com") -> dict[str, Any]:
    r = api.post("/token?grant_type=password", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()


def enroll(api: httpx.Client, session: dict[str, Any], name: str = "phone") -> dict[str, Any]:
    r = api.post(
        "/factors", json={"factor_type": "totp", "friendly_name": name}, headers=bearer(session)
    )
    assert r.status_code == 200, r.text
    return r.json()


def answer(api: httpx.Client, session: dict[str, Any], factor_id: str, code: str) -> httpx.Response:
    r = api.post(f"/factors/{factor_id}/challenge", json={}, headers=bearer(session))
    assert r.status_code == 200, r.text
    challenge = r.json()
    assert challenge["type"] == "totp" and challenge["expires_at"] > time.time()
    return api.post(
        f"/factors/{factor_id}/verify",
        json={"challenge_id": challenge["id"], "code": code},
        headers=bearer(session),
    )


def next_step_code(secret: str, after: int = 0) -> str:
    """A code of a step later than any used so far: the next step's (accepted as ±1)."""
    totp = pyotp.TOTP(secret)
    return totp.at(time.time() + 30 * (1 + after))


def enrolled_aal2(api: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    session = signed_in(api)
    factor = enroll(api, session)
    r = answer(api, session, factor["id"], pyotp.TOTP(factor["totp"]["secret"]).now())
    assert r.status_code == 200, r.text
    return factor, r.json()


def test_enrol_verify_reaches_aal2_and_codes_work_once(api: httpx.Client) -> None:
    session = signed_in(api)
    assert claims(session)["aal"] == "aal1"
    factor = enroll(api, session)
    totp = factor["totp"]
    assert totp["uri"].startswith("otpauth://totp/") and f"secret={totp['secret']}" in totp["uri"]
    assert totp["qr_code"].lstrip().startswith("<svg") and totp["qr_code"].rstrip().endswith(
        "</svg>"
    )
    user = api.get("/user", headers=bearer(session)).json()
    assert [(f["factor_type"], f["status"]) for f in user["factors"]] == [("totp", "unverified")]

    code = pyotp.TOTP(totp["secret"]).now()
    r = answer(api, session, factor["id"], code)
    assert r.status_code == 200, r.text
    stepped = r.json()
    assert claims(stepped)["aal"] == "aal2"
    assert [m["method"] for m in claims(stepped)["amr"]] == ["password", "totp"]
    assert stepped["refresh_token"] != session["refresh_token"]
    assert stepped["user"]["factors"][0]["status"] == "verified"

    # The same code again, even in a new challenge: refused.
    replay = answer(api, stepped, factor["id"], code)
    assert replay.status_code == 422 and replay.json()["code"] == "mfa_verification_failed"

    # The aal2 session's refresh keeps aal2; a new password sign-in starts at aal1.
    r = api.post(
        "/token?grant_type=refresh_token", json={"refresh_token": stepped["refresh_token"]}
    )
    assert r.status_code == 200 and claims(r.json())["aal"] == "aal2"
    assert claims(password_session(api))["aal"] == "aal1"


def test_wrong_codes_are_limited_per_factor(api: httpx.Client) -> None:
    session = signed_in(api)
    factor = enroll(api, session)
    secret = factor["totp"]["secret"]
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 1) % 1_000_000:06d}"
    statuses = [answer(api, session, factor["id"], wrong).status_code for _ in range(5)]
    assert statuses == [422] * 5
    # The sixth try waits, even with the right code.
    r = answer(api, session, factor["id"], pyotp.TOTP(secret).now())
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_unenrol_and_enrol_more_need_aal2(api: httpx.Client) -> None:
    factor, stepped = enrolled_aal2(api)
    aal1 = password_session(api)
    r = api.delete(f"/factors/{factor['id']}", headers=bearer(aal1))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_aal"
    r = api.post("/factors", json={"friendly_name": "other"}, headers=bearer(aal1))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_aal"
    # Someone else's factor is not found, whatever the level.
    stranger = signed_in(api, "mallory@example.com")
    r = api.delete(f"/factors/{factor['id']}", headers=bearer(stranger))
    assert r.status_code == 404 and r.json()["code"] == "mfa_factor_not_found"
    r = api.delete(f"/factors/{factor['id']}", headers=bearer(stepped))
    assert r.status_code == 200 and r.json() == {"id": factor["id"]}
    assert "factors" not in api.get("/user", headers=bearer(stepped)).json()


def test_recovery_codes_stand_in_once_for_a_lost_phone(api: httpx.Client) -> None:
    session = signed_in(api)
    r = api.post("/factors/recovery-codes", headers=bearer(session))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_aal"
    totp_factor = enroll(api, session)
    r = answer(api, session, totp_factor["id"], pyotp.TOTP(totp_factor["totp"]["secret"]).now())
    stepped = r.json()
    r = api.post("/factors/recovery-codes", headers=bearer(stepped))
    assert r.status_code == 200, r.text
    generated = r.json()
    assert generated["type"] == "recovery_code" and generated["total"] == 10
    assert len(set(generated["codes"])) == 10
    assert all(re.fullmatch(r"(?:[a-z2-9]{4}-){3}[a-z2-9]{4}", c) for c in generated["codes"])

    # The phone is lost: a new sign-in is aal1, and a recovery code lifts it to aal2 once.
    lost = password_session(api)
    code = generated["codes"][3]
    r = api.post(
        "/factors/recovery-codes/verify", json={"code": code.upper()}, headers=bearer(lost)
    )
    assert r.status_code == 200, r.text
    recovered = r.json()
    assert claims(recovered)["aal"] == "aal2"
    assert claims(recovered)["amr"][-1]["method"] == "mfa/recovery_code"
    again = password_session(api)
    r = api.post("/factors/recovery-codes/verify", json={"code": code}, headers=bearer(again))
    assert r.status_code == 422 and r.json()["code"] == "mfa_verification_failed"
    status = api.get("/factors/recovery-codes", headers=bearer(recovered)).json()
    assert (status["total"], status["remaining"]) == (10, 9)
    # From aal2 the lost factor goes, and its recovery codes with it.
    r = api.delete(f"/factors/{totp_factor['id']}", headers=bearer(recovered))
    assert r.status_code == 200
    r = api.get("/factors/recovery-codes", headers=bearer(recovered))
    assert r.status_code == 404


def test_aal2_table_through_postgrest(
    api: httpx.Client, service: Service, load_todos: Any, postgrest_factory: Any
) -> None:
    load_todos()
    rest: PostgREST = postgrest_factory(service.settings, pre_request="check_token_count")
    _, stepped = enrolled_aal2(api)
    aal1 = password_session(api)
    with httpx.Client(base_url=rest.url, timeout=30) as http:
        r = http.post("/private_notes", json={"body": "from aal1"}, headers=bearer(aal1))
        assert r.status_code in (401, 403), r.text  # row-level security refuses the row
        r = http.post(
            "/private_notes",
            json={"body": "the safe's code"},
            headers={**bearer(stepped), "Prefer": "return=representation"},
        )
        assert r.status_code == 201, r.text
        assert http.get("/private_notes", headers=bearer(stepped)).json()[0]["body"] == (
            "the safe's code"
        )
        assert http.get("/private_notes", headers=bearer(aal1)).json() == []
        assert http.get("/todos", headers=bearer(aal1)).status_code == 200


def test_original_api_cookie_mode_reaches_aal2(dsn: str, smtp: SmtpServer) -> None:
    settings = make_settings(dsn, smtp.port, cookie={"enabled": True, "secure": False})
    service = Service(settings).start()
    try:
        with service.client() as http:
            r = http.post(
                "/users",
                json={"username": "alice", "password": PASSWORD, "email": "alice@example.com"},
            )
            assert r.status_code in (200, 201), r.text
            r = http.post("/login", json={"username": "alice", "password": PASSWORD})
            assert r.status_code == 200, r.text
            first_cookie = http.cookies.get(settings.cookie.name)
            r = http.post("/factors", json={"friendly_name": "phone"})
            assert r.status_code == 200, r.text
            factor = r.json()
            challenge = http.post(f"/factors/{factor['id']}/challenge").json()
            r = http.post(
                f"/factors/{factor['id']}/verify",
                json={
                    "challenge_id": challenge["id"],
                    "code": pyotp.TOTP(factor["totp"]["secret"]).now(),
                },
            )
            assert r.status_code == 200, r.text
            assert "refresh_token" not in r.json()  # it went into the cookie
            assert http.cookies.get(settings.cookie.name) != first_cookie
            assert claims(r.json())["aal"] == "aal2"
    finally:
        service.stop()


def test_operators_remove_a_lost_factor(api: httpx.Client, service: Service, tmp_path: Any) -> None:
    """The admin API removes one factor; the command line removes all of a user's."""
    from postgrest_auth.tokens import TokenIssuer

    from .test_cli import config, run_cli

    factor, stepped = enrolled_aal2(api)
    uid = claims(stepped)["sub"]
    key = TokenIssuer(service.settings).api_key(service.settings.roles.service, 1)
    admin = {"Authorization": f"Bearer {key}"}
    listed = api.get(f"/admin/users/{uid}/factors", headers=admin).json()
    assert [f["id"] for f in listed] == [factor["id"]]
    r = api.delete(f"/admin/users/{uid}/factors/{factor['id']}", headers=bearer(stepped))
    assert r.status_code == 403  # a user's token is not the service key
    r = api.delete(f"/admin/users/{uid}/factors/{factor['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["id"] == factor["id"]
    assert api.get(f"/admin/users/{uid}/factors", headers=admin).json() == []

    again = enroll(api, stepped, "new phone")
    assert api.get(f"/admin/users/{uid}/factors", headers=admin).json()[0]["id"] == again["id"]
    dsn = service.settings.dsn()
    result = run_cli(
        "users", "remove-factors", "alice@example.com", "--config", str(config(tmp_path, dsn))
    )
    assert result.returncode == 0, result.stderr
    assert "removed 1 second factor" in result.stderr
    assert api.get(f"/admin/users/{uid}/factors", headers=admin).json() == []


def test_a_first_factor_ends_aal1_sessions_and_guards_password_and_address(
    api: httpx.Client,
) -> None:
    """Sessions opened before the factor (perhaps with a stolen password) end with its first
    code; unfinished enrolments go; from then on a password alone changes neither the
    password nor the address, and changes nothing else on the way."""
    session = signed_in(api)
    elsewhere = password_session(api)
    forgotten = enroll(api, session, "forgotten")
    phone = enroll(api, session, "phone")
    r = answer(api, session, phone["id"], pyotp.TOTP(phone["totp"]["secret"]).now())
    assert r.status_code == 200, r.text
    stepped = r.json()
    assert api.get("/user", headers=bearer(elsewhere)).status_code in (401, 403)
    r = api.post(
        "/token?grant_type=refresh_token", json={"refresh_token": elsewhere["refresh_token"]}
    )
    assert r.status_code == 400
    factors = api.get("/user", headers=bearer(stepped)).json()["factors"]
    assert [f["id"] for f in factors] == [phone["id"]]
    r = api.post(f"/factors/{forgotten['id']}/challenge", json={}, headers=bearer(stepped))
    assert r.status_code == 404

    aal1 = password_session(api)
    r = api.put(
        "/user",
        json={"password": "a new password 2", "data": {"colour": "red"}},
        headers=bearer(aal1),
    )
    assert r.status_code == 403 and r.json()["code"] == "insufficient_aal", r.text
    r = api.put("/user", json={"email": "thief@example.com"}, headers=bearer(aal1))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_aal", r.text
    user = api.get("/user", headers=bearer(aal1)).json()
    assert user["email"] == "alice@example.com" and "colour" not in user["user_metadata"]
    assert claims(password_session(api))["aal"] == "aal1"  # the password still works
    # From aal2, both may change.
    r = api.put("/user", json={"password": "a new password 2"}, headers=bearer(stepped))
    assert r.status_code == 200, r.text


def test_removing_the_last_factor_leaves_no_session_at_aal2(api: httpx.Client) -> None:
    factor, first = enrolled_aal2(api)
    second_login = password_session(api)
    r = answer(api, second_login, factor["id"], next_step_code(factor["totp"]["secret"]))
    assert r.status_code == 200, r.text
    second = r.json()
    r = api.delete(f"/factors/{factor['id']}", headers=bearer(first))
    assert r.status_code == 200, r.text
    for session in (first, second):
        r = api.post(
            "/token?grant_type=refresh_token", json={"refresh_token": session["refresh_token"]}
        )
        assert r.status_code == 200, r.text
        assert claims(r.json())["aal"] == "aal1"
    # The session that removed it is aal1 too: no recovery codes without a factor.
    r = api.post("/factors/recovery-codes", headers=bearer(first))
    assert r.status_code == 403
