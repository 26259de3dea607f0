import jwt

from .support import SECRET, body_text


def test_signup_then_login_and_mail(client, smtp):
    r = client.post("/users", json={"username": "alice", "password": "correct horse", "email": "Alice@Example.com"})
    assert r.status_code == 201, r.text
    claims = jwt.decode(r.json()["access_token"], SECRET, algorithms=["HS256"])
    assert claims["role"] == "normal_user"
    assert claims["email"] == "alice@example.com"
    mail = smtp.mailbox.wait_for("alice@example.com")
    assert "alice" in body_text(mail[0])
    r = client.post("/refresh_token", data={"username": "alice", "password": "correct horse"})
    assert r.status_code == 200, r.text
