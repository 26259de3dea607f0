"""Who computes bcrypt: the system's libxcrypt through ctypes when it is there and passes a
known-answer self-test at start (it releases the GIL and is faster here than the bcrypt package,
DESIGN §13), else the bcrypt package. Both write `$2b$` and read each other's hashes; parsing,
the `$2$` emulation, padding repair and the constant-time comparison are shared, so the two
backends differ only in who runs the key schedule."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Protocol

import bcrypt as bcrypt_package

log = logging.getLogger(__name__)

# bcrypt's base64 alphabet; a salt's last character carries 4 unused bits, a checksum's 2.
ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
HASH = re.compile(r"\$(2|2a|2b|2y)\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})")
MIN_COST, MAX_COST = 4, 31
MAX_SECRET = 72  # what bcrypt reads; the policy's max_bytes is at most this
# libxcrypt's sizeof(struct crypt_data) (crypt.h: 384 + 384 + 512 + 767 + 1 + 30720).
CRYPT_DATA_SIZE = 32768
CRYPT_GENSALT_OUTPUT_SIZE = 192

# Known answer, made by the bcrypt package (cost 4, so the self-test costs a few milliseconds).
KNOWN_PASSWORD = b"known-answer password"
KNOWN_HASH = "$2b$04$8J6Zp8cMlgOCHB6XLezNLuZ2D7Lh2sI1kkH6myc3/VHnr4sNya2W2"


class Backend(Protocol):
    """Runs bcrypt itself; everything around it (parsing, comparing) is this module's."""

    name: str

    def crypt(self, secret: bytes, setting: bytes) -> bytes | None:
        """The 60-byte hash of `secret` at `setting` ($2a$/$2b$/$2y$, cost, salt), None when
        the backend refuses it."""
        ...

    def setting(self, cost: int) -> bytes:
        """A fresh `$2b$` setting (cost and random salt)."""
        ...


class LibxcryptBackend:
    """The system's libcrypt (libxcrypt) through ctypes: CDLL releases the GIL during a call."""

    name = "libxcrypt"

    def __init__(self, library: str | None = None) -> None:
        """Load `library` (a path or soname; default: the system's libcrypt). OSError when it
        cannot be loaded, AttributeError when it is not libxcrypt (no crypt_rn)."""
        found = library or ctypes.util.find_library("crypt")
        if found is None:
            raise OSError("no libcrypt on this system")
        lib = ctypes.CDLL(found)
        self.library = found
        self._crypt_rn = lib.crypt_rn
        self._crypt_rn.restype = ctypes.c_char_p
        self._crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
        self._gensalt_rn = lib.crypt_gensalt_rn
        self._gensalt_rn.restype = ctypes.c_char_p
        self._gensalt_rn.argtypes = [
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self._local = threading.local()  # one struct crypt_data per thread

    def _data(self) -> ctypes.Array[ctypes.c_char]:
        data = getattr(self._local, "data", None)
        if data is None:
            data = self._local.data = ctypes.create_string_buffer(CRYPT_DATA_SIZE)
        return data

    def crypt(self, secret: bytes, setting: bytes) -> bytes | None:
        result = self._crypt_rn(secret, setting, self._data(), CRYPT_DATA_SIZE)
        if not result or result.startswith(b"*"):
            return None
        return result

    def setting(self, cost: int) -> bytes:
        out = ctypes.create_string_buffer(CRYPT_GENSALT_OUTPUT_SIZE)
        made = self._gensalt_rn(b"$2b$", cost, os.urandom(16), 16, out, len(out))
        if not made or made.startswith(b"*"):
            raise ValueError(f"libxcrypt made no bcrypt setting at cost {cost}")
        return made


class PackageBackend:
    """The bcrypt package (it too releases the GIL): the fallback."""

    name = "bcrypt package"

    def crypt(self, secret: bytes, setting: bytes) -> bytes | None:
        try:
            return bcrypt_package.hashpw(secret, setting)
        except ValueError:
            return None

    def setting(self, cost: int) -> bytes:
        return bcrypt_package.gensalt(cost, prefix=b"2b")


@dataclass(frozen=True)
class Parsed:
    """A stored bcrypt hash, its unused bits cleared (as both backends write them)."""

    ident: str
    cost: int
    salt: str
    checksum: str
    salt_repaired: bool  # the salt's unused bits were set: verify, then rewrite


def _clear(char: str, mask: int) -> str:
    return ALPHABET[ALPHABET.index(char) & mask]


def parse(stored: str) -> Parsed | None:
    """The parts of a bcrypt hash this service verifies; None for anything else ($2x$ too)."""
    match = HASH.fullmatch(stored)
    if not match:
        return None
    ident, cost_text, salt, checksum = match.groups()
    cost = int(cost_text)
    if not MIN_COST <= cost <= MAX_COST:
        return None
    fixed_salt = salt[:-1] + _clear(salt[-1], 0x30)
    fixed_checksum = checksum[:-1] + _clear(checksum[-1], 0x3C)
    return Parsed(ident, cost, fixed_salt, fixed_checksum, fixed_salt != salt)


def make_hash(backend: Backend, secret: bytes, cost: int) -> str:
    """A new `$2b$` hash at `cost`. ValueError for what bcrypt cannot take (NUL, > 72 bytes)."""
    if b"\0" in secret or len(secret) > MAX_SECRET:
        raise ValueError("bcrypt takes no NUL byte and at most 72 bytes")
    setting = backend.setting(cost)
    made = backend.crypt(secret, setting)
    if made is None or not made.startswith(setting[:29]) or len(made) != 60:
        raise ValueError(f"{backend.name} made no bcrypt hash")
    return made.decode("ascii")


def verify(backend: Backend, secret: bytes, stored: str) -> bool:
    """Whether `secret` is the password of the bcrypt hash `stored` (never for non-bcrypt)."""
    parsed = parse(stored)
    if parsed is None or b"\0" in secret or len(secret) > MAX_SECRET:
        return False
    ident = parsed.ident
    if ident == "2":  # the original: no NUL in the key, emulated as 2a on the repeated password
        secret = (secret * (MAX_SECRET // len(secret) + 1))[:MAX_SECRET] if secret else secret
        ident = "2a"
    setting = f"${ident}${parsed.cost:02d}${parsed.salt}"
    made = backend.crypt(secret, setting.encode("ascii"))
    expected = (setting + parsed.checksum).encode("ascii")
    return made is not None and hmac.compare_digest(made, expected)


def needs_rehash(stored: str, cost: int) -> bool:
    """Whether a verified hash should be rewritten: another cost (either way, as passlib did)
    or a salt with unused bits set. Another ident ($2a$, $2y$, $2$) is kept at the same cost."""
    parsed = parse(stored)
    return parsed is not None and (parsed.cost != cost or parsed.salt_repaired)


def self_test(backend: Backend) -> str | None:
    """Why `backend` cannot be trusted (a known answer, a wrong password, a hash the bcrypt
    package must read), None when it passes."""
    try:
        if not verify(backend, KNOWN_PASSWORD, KNOWN_HASH):
            return "the known-answer hash did not verify"
        if verify(backend, KNOWN_PASSWORD + b"!", KNOWN_HASH):
            return "a wrong password verified"
        fresh = make_hash(backend, KNOWN_PASSWORD, MIN_COST)
        if not fresh.startswith("$2b$04$"):
            return "a fresh hash is not $2b$"
        if not bcrypt_package.checkpw(KNOWN_PASSWORD, fresh.encode("ascii")):
            return "the bcrypt package does not read its hashes"
    except (ValueError, OSError) as exc:
        return f"{type(exc).__name__} in the self-test"
    return None


def load_backend(library: str | None = None) -> Backend:
    """libxcrypt (from `library`, default the system's) when it loads and passes the self-test,
    else the bcrypt package; a fallback is one warning line saying why (the usual case says
    nothing: a command's refusal stays one line)."""
    try:
        candidate = LibxcryptBackend(library)
    except (OSError, AttributeError) as exc:
        log.warning("bcrypt: the bcrypt package (libxcrypt unusable: %s)", _why(exc))
        return PackageBackend()
    failure = self_test(candidate)
    if failure is not None:
        log.warning("bcrypt: the bcrypt package (libxcrypt failed its self-test: %s)", failure)
        return PackageBackend()
    log.debug("bcrypt: libxcrypt (%s) passed its self-test", candidate.library)
    return candidate


def _why(exc: BaseException) -> str:
    if isinstance(exc, AttributeError):
        return "no crypt_rn: not libxcrypt"
    return str(exc) or type(exc).__name__


@functools.cache
def default_backend() -> Backend:
    """The process's backend, chosen (and self-tested) once."""
    return load_backend()
