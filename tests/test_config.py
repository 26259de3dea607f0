"""Settings: the original's file loads; defaults < file < environment < flags; one-line refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from postgrest_auth.config import ConfigError, load_settings

GOOD_SECRET = "s" * 40

# The Node original's README example, comments and all (its secret is refused, see below).
ORIGINAL_README_FILE = """// postgrest-auth.json example
{
"app_name": "A Game of Theories", // used in email signature
"db": {
"connection": {
"host": "localhost",
"port": 5432,
"database": "postgres",
"user": "postgres",
"password": "pass"
},
"connection_string": "postgres://postgres:pass@localhost/postgres",
"pool": {
"min": 2,
"max": 10
},
"schema": "auth",
"table": "users"
},
"email": {
"from": "contact@agameoftheories.com",
"host": "mail.privateemail.com",
"port": 465,
"secure": true,
"auth": {
"user": "contact@agameoftheories.com",
"pass": "thepassword"
}
},
"payload": {
"exp": 604800,
"iss": "https://agameoftheories.com"
},
"port": 3001,
"roles": {
"anonymous": "web_anon",
"user": "normal_user"
},
"secret": "secret" // jwt secret
}
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests own every variable the loader reads."""
    for name in list(os.environ):
        if name.startswith("POSTGREST_AUTH_") or name == "PORT":
            monkeypatch.delenv(name)


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def refusal(path: Path | None, overrides: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, overrides)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def original_file(tmp_path: Path, secret: str = GOOD_SECRET, drop_string: bool = False) -> Path:
    text = ORIGINAL_README_FILE.replace('"secret": "secret"', f'"secret": "{secret}"')
    if drop_string:
        text = text.replace(
            '"connection_string": "postgres://postgres:pass@localhost/postgres",\n', ""
        )
    return write(tmp_path / "postgrest-auth.json", text)


def test_original_readme_file_loads_with_comments(tmp_path):
    settings = load_settings(original_file(tmp_path))
    assert settings.app_name == "A Game of Theories"
    assert settings.dsn() == "postgres://postgres:pass@localhost/postgres"
    assert settings.db.pool.min == 2 and settings.pool_max() == 10
    assert settings.db.schema_ == "auth" and settings.db.table == "users"
    assert settings.email.from_ == "contact@agameoftheories.com"
    assert settings.email.port == 465 and settings.email.secure is True
    assert settings.email.auth is not None
    assert settings.email.auth.password.get_secret_value() == "thepassword"
    assert settings.payload.iss == "https://agameoftheories.com"
    assert settings.port == 3001
    assert (settings.roles.anonymous, settings.roles.user) == ("web_anon", "normal_user")


def test_original_connection_object_form(tmp_path):
    settings = load_settings(original_file(tmp_path, drop_string=True))
    assert settings.db.connection_string is None
    assert settings.dsn() == "postgresql://postgres:pass@localhost:5432/postgres"


def test_connection_object_quotes_odd_characters():
    settings = load_settings(
        None,
        {
            "secret": GOOD_SECRET,
            "db": {"connection": {"user": "me@x", "password": "p@ss/w:rd", "database": "my db"}},
        },
        environ=False,
    )
    assert settings.dsn() == "postgresql://me%40x:p%40ss%2Fw%3Ard@localhost:5432/my%20db"


def test_original_example_secret_is_refused_saying_how_to_make_one(tmp_path):
    message = refusal(original_file(tmp_path, secret="secret"))
    assert message.startswith("setting secret:")
    assert "32" in message and "secrets.token_urlsafe" in message
    assert "'secret'" not in message and '"secret"' not in message


def test_missing_secret(tmp_path):
    message = refusal(write(tmp_path / "c.json", {"port": 1234}))
    assert message.startswith("setting secret: missing")
    assert "secrets.token_urlsafe" in message


def test_precedence_defaults_file_environment_flags(tmp_path, monkeypatch):
    path = write(
        tmp_path / "c.json",
        {
            "secret": GOOD_SECRET,
            "app_name": "file",
            "port": 4000,
            "db": {"schema": "file_schema", "table": "file_table"},
            "payload": {"iss": "file-iss"},
        },
    )
    settings = load_settings(path)
    assert (settings.app_name, settings.port, settings.db.schema_) == ("file", 4000, "file_schema")
    assert settings.payload.exp == 604800  # default kept where the file is silent

    monkeypatch.setenv("POSTGREST_AUTH_APP_NAME", "env")
    monkeypatch.setenv("POSTGREST_AUTH_DB__SCHEMA", "env_schema")
    monkeypatch.setenv("POSTGREST_AUTH_PAYLOAD__EXP", "120")
    settings = load_settings(path)
    assert settings.app_name == "env"
    assert settings.db.schema_ == "env_schema"
    assert settings.db.table == "file_table"  # nested keys merge, not replace
    assert settings.payload.exp == 120 and settings.payload.iss == "file-iss"
    assert settings.port == 4000

    settings = load_settings(path, {"app_name": "flag", "db": {"schema": "flag_schema"}})
    assert settings.app_name == "flag"
    assert settings.db.schema_ == "flag_schema" and settings.db.table == "file_table"
    assert settings.payload.exp == 120


def test_port_variable(tmp_path, monkeypatch):
    path = write(tmp_path / "c.json", {"secret": GOOD_SECRET, "port": 4000})
    monkeypatch.setenv("PORT", "5000")
    assert load_settings(path).port == 5000
    monkeypatch.setenv("POSTGREST_AUTH_PORT", "6000")
    assert load_settings(path).port == 6000
    assert load_settings(path, {"port": 7000}).port == 7000


def test_secret_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTGREST_AUTH_SECRET", GOOD_SECRET)
    settings = load_settings(original_file(tmp_path, secret="secret"))
    assert settings.secret is not None
    assert settings.secret.get_secret_value() == GOOD_SECRET


def test_reads_postgrest_auth_json_in_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path / "postgrest-auth.json", {"secret": GOOD_SECRET, "app_name": "from cwd"})
    monkeypatch.chdir(tmp_path)
    assert load_settings(None).app_name == "from cwd"
    (tmp_path / "postgrest-auth.json").unlink()
    assert "secret: missing" in refusal(None)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"secret": GOOD_SECRET, "colour": "blue"}, "colour: unknown setting"),
        ({"secret": GOOD_SECRET, "db": {"shema": "x"}}, "db.shema: unknown setting"),
        ({"secret": GOOD_SECRET, "port": "eighty"}, "setting port:"),
        ({"secret": GOOD_SECRET, "port": 70000}, "setting port:"),
        ({"secret": GOOD_SECRET, "db": {"pool": {"max": "many"}}}, "db.pool.max"),
        ({"secret": GOOD_SECRET, "email": {"backend": "pigeon"}}, "email.backend"),
        ({"secret": GOOD_SECRET, "usernames": {"pattern": "[a-z"}}, "usernames.pattern"),
        ({"secret": GOOD_SECRET, "passwords": {"max_bytes": 100}}, "passwords.max_bytes"),
        ({"secret": 12345}, "setting secret"),
    ],
)
def test_refusals_name_the_setting(tmp_path, data, named):
    path = write(tmp_path / "c.json", data)
    message = refusal(path)
    assert named in message, message
    assert str(path) in message


def test_refusals_never_show_secret_values(tmp_path):
    message = refusal(
        write(
            tmp_path / "c.json",
            {"secret": GOOD_SECRET, "db": {"connection": {"password": ["hunter2-pw"]}}},
        )
    )
    assert "db.connection.password" in message
    assert "hunter2-pw" not in message
    message = refusal(write(tmp_path / "c.json", {"secret": "short-but-secret"}))
    assert "short-but-secret" not in message


def test_environment_refusal_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTGREST_AUTH_DB__POOL__MIN", "-3")
    message = refusal(write(tmp_path / "c.json", {"secret": GOOD_SECRET}))
    assert "db.pool.min" in message


def test_bad_json_names_the_file(tmp_path):
    path = write(tmp_path / "broken.json", '{"secret": "x",,}')
    message = refusal(path)
    assert str(path) in message and "JSON" in message


def test_top_level_must_be_an_object(tmp_path):
    assert "object" in refusal(write(tmp_path / "list.json", "[1, 2]"))


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "absent.json"
    message = refusal(path)
    assert str(path) in message


def test_environ_false_ignores_the_environment(monkeypatch):
    monkeypatch.setenv("POSTGREST_AUTH_APP_NAME", "env")
    monkeypatch.setenv("PORT", "5000")
    settings = load_settings(None, {"secret": GOOD_SECRET}, environ=False)
    assert settings.app_name == "postgrest-auth" and settings.port == 3001


def test_asymmetric_keys_need_no_secret(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = tmp_path / "k.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings = load_settings(
        None,
        {"jwt": {"keys": [{"kid": "a", "algorithm": "ES256", "private_key_file": str(pem)}]}},
        environ=False,
    )
    assert settings.secret is None


def test_keys_that_cannot_sign_or_are_missing_are_refused_in_one_line(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    (tmp_path / "pub.pem").write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    public_only = {"kid": "a", "algorithm": "ES256", "public_key_file": str(tmp_path / "pub.pem")}
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"jwt": {"keys": [public_only]}}, environ=False)
    assert str(refused.value).startswith("setting jwt.keys:")
    missing = {"kid": "b", "algorithm": "ES256", "private_key_file": str(tmp_path / "no.pem")}
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"jwt": {"keys": [missing]}}, environ=False)
    assert "jwt.keys.0" in str(refused.value) and "\n" not in str(refused.value)


def test_a_wildcard_cors_origin_is_refused():
    with pytest.raises(ConfigError, match=r"http\.cors_origins"):
        load_settings(None, {"secret": "s" * 40, "http": {"cors_origins": ["*"]}}, environ=False)
