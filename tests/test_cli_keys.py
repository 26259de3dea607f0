"""`postgrest-auth keys anon|service` as operators run it: what the printed key carries (a role,
the issuer, a lifetime, and nothing that would make PostgREST's token-count check refuse it),
which key signs it, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization

from .supabase_py_support import rsa_key_file
from .support import SECRET
from .test_cli import config, one_line, run_cli


def minted(*args: str) -> str:
    done = run_cli("keys", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # only the key: operators pipe it into their configuration
    return lines[0]


def test_keys_are_signed_with_the_secret_for_each_role(tmp_path: Path) -> None:
    path = str(config(tmp_path, payload={"iss": "my-app"}, roles={"service": "admin_role"}))
    for role, expected in (("anon", "web_anon"), ("service", "admin_role")):
        key = minted(role, "-c", path, "--days", "2")
        assert jwt.get_unverified_header(key) == {"alg": "HS256", "typ": "JWT"}
        claims = jwt.decode(key, SECRET, algorithms=["HS256"])
        assert set(claims) == {"role", "iss", "iat", "exp"}, claims  # no count, typ or sid
        assert claims["role"] == expected and claims["iss"] == "my-app"
        assert claims["exp"] - claims["iat"] == 2 * 86400
    default = jwt.decode(minted("anon", "-c", path), SECRET, algorithms=["HS256"])
    assert default["exp"] - default["iat"] == 3650 * 86400


def test_keys_are_signed_with_the_first_private_jwt_key(tmp_path: Path) -> None:
    pem = rsa_key_file(tmp_path)
    keys = [{"kid": "rs1", "algorithm": "RS256", "private_key_file": str(pem)}]
    path = tmp_path / "rs.json"
    path.write_text(json.dumps({"jwt": {"keys": keys}}))
    key = minted("service", "-c", str(path))
    assert jwt.get_unverified_header(key)["kid"] == "rs1"
    private = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    claims = jwt.decode(key, private.public_key(), algorithms=["RS256"])  # type: ignore[arg-type]
    assert claims["role"] == "service_role"


def test_keys_refusals(tmp_path: Path) -> None:
    path = str(config(tmp_path))
    done = run_cli("keys", "service", "-c", path, "--days", "0")
    assert done.returncode != 0 and "--days" in one_line(done.stderr)
    done = run_cli("keys", "root", "-c", path)
    assert done.returncode != 0 and "invalid choice" in done.stderr
    assert done.stdout == ""
