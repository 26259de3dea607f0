"""The OpenAPI document shows the bodies the routes parse by hand, in both content types."""

from postgrest_auth.app import create_app

from .support import make_settings


def test_every_form_route_documents_json_and_form_bodies():
    app = create_app(make_settings("postgresql://nobody@127.0.0.1:1/none"))
    paths = app.openapi()["paths"]
    every_post = {path: ops["post"] for path, ops in paths.items() if "post" in ops}
    gotrue = {path: op for path, op in every_post.items() if path.startswith("/auth/v1/")}
    posts = {path: op for path, op in every_post.items() if path not in gotrue}
    assert set(posts) == {
        f"/auth/{name}"
        for name in (
            "users",
            "login",
            "refresh_token",
            "logout",
            "change_password",
            "change_email",
            "forgot_password",
            "forgot_username",
            "otp",
            "verify",
            "recover",
            "resend",
            "factors",
            "factors/{factor_id}/challenge",
            "factors/{factor_id}/verify",
            "factors/recovery-codes",
            "factors/recovery-codes/verify",
            "factors/recovery-codes/regenerate",
        )
    }
    # Replacing the recovery codes takes no body.
    assert "requestBody" not in posts.pop("/auth/factors/recovery-codes/regenerate")
    for path, operation in posts.items():
        content = operation["requestBody"]["content"]
        assert set(content) == {"application/json", "application/x-www-form-urlencoded"}, path
    users = posts["/auth/users"]["requestBody"]
    assert users["required"] is True
    assert set(users["content"]["application/json"]["schema"]["required"]) == {
        "username",
        "password",
    }
    assert posts["/auth/logout"]["requestBody"]["required"] is False
    # The GoTrue-compatible API documents its JSON bodies too (two routes take none).
    assert {"/auth/v1/signup", "/auth/v1/token", "/auth/v1/verify"} <= set(gotrue)
    for path, operation in gotrue.items():
        if path not in ("/auth/v1/logout", "/auth/v1/factors/recovery-codes/regenerate"):
            assert "application/json" in operation["requestBody"]["content"], path
