"""The OpenAPI document shows the bodies the routes parse by hand, in both content types."""

from postgrest_auth.app import create_app

from .support import make_settings


def test_every_form_route_documents_json_and_form_bodies():
    app = create_app(make_settings("postgresql://nobody@127.0.0.1:1/none"))
    paths = app.openapi()["paths"]
    posts = {path: ops["post"] for path, ops in paths.items() if "post" in ops}
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
        )
    }
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
