"""sessions.timebox: refreshes extend a session, but never past its absolute cap."""

from datetime import UTC, datetime

from .support import Service, make_settings, run_sql


def _seconds_left(dsn: str, session_id: str) -> float:
    (row,) = run_sql(dsn, "select expires_at from auth.sessions where id = $1::uuid", session_id)
    return (row["expires_at"] - datetime.now(UTC)).total_seconds()


def test_refresh_extends_within_the_timebox(dsn, smtp):
    settings = make_settings(dsn, smtp.port, sessions={"lifetime": 3600, "timebox": 4000})
    service = Service(settings).start()
    try:
        with service.client() as http:
            r = http.post("/users", json={"username": "boxed", "password": "boxed password"})
            assert r.status_code == 201, r.text
            refresh_token = r.json()["refresh_token"]
            (session,) = run_sql(dsn, "select id::text from auth.sessions")
            session_id = session["id"]
            assert 3590 < _seconds_left(dsn, session_id) <= 3600

            # 1000 s into its life, nearly expired: a refresh may give it only 3000 s more.
            run_sql(
                dsn,
                "update auth.sessions set created_at = now() - interval '1000 s',"
                " expires_at = now() + interval '100 s'",
            )
            r = http.post("/refresh_token", json={"refresh_token": refresh_token})
            assert r.status_code == 200, r.text
            assert 2990 < _seconds_left(dsn, session_id) <= 3000

            # Past its timebox it stays as it was, and ends then.
            run_sql(
                dsn,
                "update auth.sessions set created_at = now() - interval '5000 s',"
                " expires_at = now() - interval '1 s'",
            )
            r = http.post("/refresh_token", json={"refresh_token": refresh_token})
            assert r.status_code == 401
            assert r.json()["code"] == "session_ended"
    finally:
        service.stop()


def test_without_a_timebox_refresh_gives_a_full_lifetime(dsn, smtp):
    service = Service(make_settings(dsn, smtp.port, sessions={"lifetime": 3600})).start()
    try:
        with service.client() as http:
            r = http.post("/users", json={"username": "unboxed", "password": "boxed password"})
            refresh_token = r.json()["refresh_token"]
            run_sql(
                dsn,
                "update auth.sessions set created_at = now() - interval '900 days',"
                " expires_at = now() + interval '100 s'",
            )
            r = http.post("/refresh_token", json={"refresh_token": refresh_token})
            assert r.status_code == 200, r.text
            (session,) = run_sql(dsn, "select id::text from auth.sessions")
            assert 3590 < _seconds_left(dsn, session["id"]) <= 3600
    finally:
        service.stop()
