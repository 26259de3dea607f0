"""bcrypt through the system's libxcrypt (ctypes) or the bcrypt package: the same hashes either
way, in both directions, with the package as the fallback when libxcrypt is missing or fails its
self-test. Real libraries only; nothing is timed (the bench measures the rates)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

import bcrypt
import pytest

from postgrest_auth import bcrypt_backends
from postgrest_auth.bcrypt_backends import (
    Backend,
    LibxcryptBackend,
    PackageBackend,
    load_backend,
    make_hash,
    needs_rehash,
    parse,
    self_test,
    verify,
)
from postgrest_auth.config import Passwords
from postgrest_auth.passwords import PasswordHasher, usable_cores

PASSWORD = b"correct horse battery"
# Made by the bcrypt package ($2a$, $2y$) and by passlib's emulation of the original $2$.
VECTORS = {
    "2a": "$2a$04$qYPW3/fyKo2X7Bq7mAQMN.XhLiLiwDlUALju/oMEV3LHq.fM2uCo.",
    "2y": "$2y$04$gYgqAkjwOQrzHe5faV9VY.By7q/MxZMHpc/Cv95sBpbVjw9ux0/v.",
    "2": "$2$04$ja85XcZNEVdwBWlUKZjDDuH/kvdQxlF1pJBuetsYXv6pjBKpXvPTG",
}
UNICODE_PASSWORD = "pässwörd ✓".encode()
UNICODE_HASH = "$2b$04$XO4FuBjxuo82BE29QcBi7O3unM2C7XTVUCzaxwFxbH7QVC0ZqAV3."

HOW_TO_GET_IT = (
    "libxcrypt (libcrypt.so.1 with crypt_rn) is missing or failed its self-test: install it "
    "with `apt-get install libcrypt1` (part of Debian's base system); the service falls back "
    "to the slower bcrypt package without it"
)


@pytest.fixture(scope="module")
def libxcrypt() -> LibxcryptBackend:
    try:
        backend = LibxcryptBackend()
    except (OSError, AttributeError) as exc:
        pytest.fail(f"{HOW_TO_GET_IT} ({exc})")
    failure = self_test(backend)
    assert failure is None, f"{HOW_TO_GET_IT}: {failure}"
    return backend


def backends() -> list[Backend]:
    """Whichever are on this machine: the package always, libxcrypt when it loads."""
    found: list[Backend] = [PackageBackend()]
    try:
        found.append(LibxcryptBackend())
    except (OSError, AttributeError):
        pass
    return found


@pytest.fixture(params=backends(), ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param


def test_libxcrypt_is_installed_and_chosen(libxcrypt: LibxcryptBackend) -> None:
    assert bcrypt_backends.default_backend().name == "libxcrypt", HOW_TO_GET_IT


def test_libxcrypt_hashes_are_read_by_the_bcrypt_package(libxcrypt: LibxcryptBackend) -> None:
    for password in (PASSWORD, UNICODE_PASSWORD, b"x" * 72, b""):
        made = make_hash(libxcrypt, password, 5)
        assert made.startswith("$2b$05$") and len(made) == 60
        assert bcrypt.checkpw(password, made.encode())
        assert not bcrypt.checkpw(b"!" + password[:71], made.encode())


def test_bcrypt_package_hashes_are_read_by_libxcrypt(libxcrypt: LibxcryptBackend) -> None:
    for password in (PASSWORD, UNICODE_PASSWORD, b"x" * 72, b""):
        for prefix in (b"2a", b"2b"):
            made = bcrypt.hashpw(password, bcrypt.gensalt(5, prefix=prefix)).decode()
            assert verify(libxcrypt, password, made)
            assert not verify(libxcrypt, b"!" + password[:71], made)


def test_libxcrypt_calls_release_the_gil(libxcrypt: LibxcryptBackend) -> None:
    """What lets one thread per core run bcrypt at once: a CDLL function, not a PyDLL one
    (ctypes drops the GIL around every call without FUNCFLAG_PYTHONAPI). The rate on all
    cores is measured by `python -m bench logins`, not here."""
    for function in (libxcrypt._crypt_rn, libxcrypt._gensalt_rn):
        assert not function._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]


@pytest.mark.parametrize("ident", sorted(VECTORS))
def test_other_idents_verify(backend: Backend, ident: str) -> None:
    assert verify(backend, PASSWORD, VECTORS[ident])
    assert not verify(backend, PASSWORD + b"!", VECTORS[ident])
    assert not verify(backend, PASSWORD[:-1], VECTORS[ident])


def test_known_answers(backend: Backend) -> None:
    assert self_test(backend) is None
    assert verify(backend, UNICODE_PASSWORD, UNICODE_HASH)
    assert not verify(backend, "passwörd ✓".encode(), UNICODE_HASH)


def test_new_hashes_are_2b_at_the_cost(backend: Backend) -> None:
    made = make_hash(backend, PASSWORD, 4)
    assert made.startswith("$2b$04$")
    assert verify(backend, PASSWORD, made)
    assert bcrypt.checkpw(PASSWORD, made.encode())
    assert make_hash(backend, PASSWORD, 4) != made  # a fresh salt each time


def test_what_bcrypt_cannot_take(backend: Backend) -> None:
    made = make_hash(backend, b"x" * 72, 4)
    assert verify(backend, b"x" * 72, made)
    assert not verify(backend, b"x" * 73, made)  # never truncated into a match
    with pytest.raises(ValueError):
        make_hash(backend, b"x" * 73, 4)
    with pytest.raises(ValueError):
        make_hash(backend, b"a\0b", 4)
    assert not verify(backend, b"a\0b", make_hash(backend, b"a", 4))


def test_nothing_but_bcrypt_matches(backend: Backend) -> None:
    good = make_hash(backend, PASSWORD, 4)
    refused = [
        "",
        "not a hash",
        "$2x$" + good[4:],  # crypt_blowfish's buggy variant
        "$2b$03$" + good[7:],  # below bcrypt's range
        "$2b$32$" + good[7:],
        "$2b$4$" + good[7:],
        good + "\n",
        good[:-1],
        " " + good,
    ]
    for stored in refused:
        assert parse(stored) is None, stored
        assert not verify(backend, PASSWORD, stored), stored


def test_other_schemes_libxcrypt_knows_never_match(libxcrypt: LibxcryptBackend) -> None:
    """libxcrypt itself would verify these (a traditional DES setting is any two characters):
    only bcrypt hashes reach it."""
    for setting in (b"ab", b"$6$saltsaltsalt$", b"$5$saltsaltsalt$", b"$1$saltsalt$"):
        other = libxcrypt.crypt(PASSWORD, setting)
        assert other is not None
        assert not verify(libxcrypt, PASSWORD, other.decode())


def set_bits(stored: str, position: int, bits: int) -> str:
    alphabet = bcrypt_backends.ALPHABET
    char = alphabet[alphabet.index(stored[position]) | bits]
    return stored[:position] + char + stored[position + 1 :]


def test_unused_bits_set_still_verify(backend: Backend) -> None:
    """As passlib read them: cleared before comparing; a salt's are worth a rewrite."""
    made = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(4, prefix=b"2a")).decode()
    salt_bits = set_bits(made, 28, 0x0F)
    checksum_bits = set_bits(made, 59, 0x03)
    assert salt_bits != made and checksum_bits != made
    for stored in (salt_bits, checksum_bits):
        assert verify(backend, PASSWORD, stored)
        assert not verify(backend, PASSWORD + b"!", stored)
    assert needs_rehash(salt_bits, 4)
    assert not needs_rehash(checksum_bits, 4)
    assert not needs_rehash(made, 4)


def test_rehash_on_another_cost_only() -> None:
    """As passlib's verify_and_update did: another cost either way is rewritten; $2a$, $2y$
    and $2$ at the configured cost are kept (the same algorithm for passwords up to 72 bytes)."""
    assert needs_rehash(bcrypt.hashpw(PASSWORD, bcrypt.gensalt(5)).decode(), 4)
    assert needs_rehash(bcrypt.hashpw(PASSWORD, bcrypt.gensalt(4)).decode(), 5)
    for stored in VECTORS.values():
        assert not needs_rehash(stored, 4)
        assert needs_rehash(stored, 10)
    assert not needs_rehash("not a hash", 4)


def test_hasher_rewrites_at_the_configured_cost(backend: Backend) -> None:
    async def go() -> None:
        hasher = PasswordHasher(Passwords(bcrypt_rounds=4), backend)
        try:
            assert hasher.backend_name == backend.name
            old = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(5, prefix=b"2a")).decode()
            ok, new = await hasher.verify(PASSWORD.decode(), old)
            assert ok and new is not None and new.startswith("$2b$04$")
            assert bcrypt.checkpw(PASSWORD, new.encode())
            assert await hasher.verify(PASSWORD.decode(), new) == (True, None)
            assert await hasher.verify(PASSWORD.decode(), VECTORS["2y"]) == (True, None)
            assert await hasher.verify("wrong", old) == (False, None)
            assert await hasher.verify("x" * 73, new) == (False, None)
            assert await hasher.verify("x", "$argon2id$v=19$m=65536,t=3,p=4$abc") == (False, None)
            assert (await hasher.hash("a password")).startswith("$2b$04$")
        finally:
            hasher.close()

    asyncio.run(go())


def test_missing_library_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="postgrest_auth.bcrypt_backends"):
        chosen = load_backend("/nonexistent/libcrypt.so.1")
    assert isinstance(chosen, PackageBackend)
    assert self_test(chosen) is None
    [line] = caplog.records
    assert line.levelno == logging.WARNING and "bcrypt package" in line.getMessage()


def test_library_without_crypt_rn_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    libm = ctypes.util.find_library("m")
    assert libm is not None
    with caplog.at_level(logging.INFO, logger="postgrest_auth.bcrypt_backends"):
        chosen = load_backend(libm)
    assert isinstance(chosen, PackageBackend)
    [line] = caplog.records
    assert "not libxcrypt" in line.getMessage()


class WrongAnswers(PackageBackend):
    """A library that computes something else (a broken or foreign build): bcrypt at cost 5
    whatever the setting says, so every answer is well formed and wrong."""

    name = "wrong answers"

    def crypt(self, secret: bytes, setting: bytes) -> bytes | None:
        made = super().crypt(secret, setting[:4] + b"05" + setting[6:])
        return None if made is None else setting[:7] + made[7:]


class AcceptsAnything(PackageBackend):
    name = "accepts anything"

    def crypt(self, secret: bytes, setting: bytes) -> bytes | None:
        return super().crypt(bcrypt_backends.KNOWN_PASSWORD, setting)


def test_self_test_catches_wrong_answers() -> None:
    assert self_test(WrongAnswers()) == "the known-answer hash did not verify"
    assert self_test(AcceptsAnything()) == "a wrong password verified"


def test_failed_self_test_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, libxcrypt: LibxcryptBackend
) -> None:
    """The real library, given a known answer it cannot reproduce (as a broken build would)."""
    known = bcrypt_backends.KNOWN_HASH
    wrong = known[:40] + ("A" if known[40] != "A" else "B") + known[41:]
    monkeypatch.setattr(bcrypt_backends, "KNOWN_HASH", wrong)
    with caplog.at_level(logging.INFO, logger="postgrest_auth.bcrypt_backends"):
        chosen = load_backend()
    assert isinstance(chosen, PackageBackend)
    [line] = caplog.records
    message = line.getMessage()
    assert "self-test" in message and "did not verify" in message
    assert bcrypt_backends.KNOWN_PASSWORD.decode() not in message


def test_threads_follow_the_usable_cores() -> None:
    hasher = PasswordHasher(Passwords(bcrypt_rounds=4))
    try:
        assert hasher._threads == usable_cores() >= 1
        assert hasher._executor._max_workers == usable_cores()
    finally:
        hasher.close()
