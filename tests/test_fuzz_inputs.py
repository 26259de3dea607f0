"""Hostile input at every operation of both APIs, field by field: unicode (RTL, combining,
lone surrogates escaped in JSON), NUL, SQL metacharacters, wrong JSON types, nested objects,
arrays where objects belong, and bodies over http.max_body_bytes.

Every answer must be below 500, JSON, in the documented error shape of its API when it
refuses (original: DESIGN §3; GoTrue: `{code, message}` with X-Supabase-Api-Version), and a
refusal must leave the auth tables as they were (fingerprinted before and after).
The operations and their fields come from the service's OpenAPI document, so a new route is
fuzzed without anyone listing it here. Generation is derandomized (the same cases every run)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_support import PASSWORD, FuzzStack, Tables, document, fuzz_service
from .support import Service

DOCUMENT = document()
ONE_MEGABYTE = 1024 * 1024
HTTP = httpx.Client(timeout=30)  # keep-alive across the module's thousand requests


@dataclass(frozen=True)
class Operation:
    """One route as the document describes it: where a request can put values."""

    method: str
    path: str
    fields: tuple[str, ...]  # body fields (JSON and form)
    query: tuple[str, ...]
    path_params: tuple[str, ...]

    @property
    def gotrue(self) -> bool:
        return self.path.startswith("/auth/v1/")

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations() -> list[Operation]:
    found = []
    for path, methods in DOCUMENT["paths"].items():
        for method, spec in methods.items():
            content = spec.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            params = spec.get("parameters", [])
            found.append(
                Operation(
                    method.upper(),
                    path,
                    tuple(schema.get("properties", {})),
                    tuple(p["name"] for p in params if p["in"] == "query"),
                    tuple(p["name"] for p in params if p["in"] == "path"),
                )
            )
    return found


OPERATIONS = operations()
WITH_BODY = [op for op in OPERATIONS if op.fields]

# Plausible values for the fields not under attack, so the hostile one gets past the first
# checks and deeper into the operation.
PLAUSIBLE: dict[str, Any] = {
    "email": "someone@example.com",
    "password": PASSWORD,
    "current_password": PASSWORD,
    "new_password": PASSWORD + "!",
    "new_password_confirm": PASSWORD + "!",
    "username": "someone",
    "type": "signup",
    "token": "123456",
    "code": "123456",
    "redirect_to": "http://app.test:5173/",
    "provider": "github",
    "grant_type": "password",
    "factor_type": "totp",
    "data": {"plan": "free"},
}
PLAUSIBLE_QUERY = {"grant_type": "password", "type": "signup", "provider": "github"}
PATH_VALUE = "00000000-0000-4000-8000-000000000000"

SQL = [
    "'; drop table auth.users; --",
    "' or '1'='1",
    "%",
    "_",
    "%_%",
    "\\",
    "\\'",
    '"; select pg_sleep(5); --',
    "$1",
    "admin'--",
]
UNICODE = [
    "\u202eevil.exe",  # right-to-left override
    "مرحبا بالعالم",
    "e\u0301\u0302\u0303\u0304",  # combining marks
    "\u200b\u200d\ufeff",
    "👩‍👩‍👧‍👦",
    "\ud800",  # lone surrogates: JSON can escape them, UTF-8 cannot hold them
    "a\udfffb",
    "\x00",
    "ab\x00cd",
    "x" * 5000,
]
# Put in each field and parameter in turn, the others plausible.
FOCUSED: list[Any] = [
    "ab\x00cd",
    "a\udfffb",
    "'; drop table auth.users; --",
    "\u202e%_\\e\u0301\u0302",
    12345678901234567890,
    {"nested": {"deeper": ["x", {"$ne": None}]}},
]
# Put in every field and parameter at once, a field's name too.
EVERYWHERE: list[Any] = ["\x00", "\ud800", "x" * 5000, ["a", "b"], None]
texts = st.one_of(
    st.sampled_from(SQL + UNICODE),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
)
scalars = st.one_of(
    texts,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


@dataclass(frozen=True)
class Attack:
    """One request: every body field, query parameter and path parameter either plausible
    or hostile (several at once, as a real attacker sends them)."""

    body: Any  # an object of fields, or something else where an object belongs
    query: dict[str, str]
    path: dict[str, str]
    form: bool
    signed_in: bool


@st.composite
def attacks(draw: st.DrawFn, op: Operation) -> Attack:
    body: Any = {
        name: draw(st.one_of(texts, st.just(PLAUSIBLE.get(name, "x")), values))
        for name in op.fields
    }
    if draw(st.booleans()):
        body[draw(texts)] = draw(values)  # a field no one expects, its name hostile too
    if draw(st.integers(0, 5)) == 0:
        body = draw(st.one_of(st.lists(values, max_size=3), scalars))
    query = {name: draw(texts) for name in op.query if draw(st.booleans())}
    if not op.query or draw(st.booleans()):
        query[draw(texts)] = draw(texts)
    path = {name: draw(st.one_of(st.just(PATH_VALUE), texts)) for name in op.path_params}
    flat = isinstance(body, dict) and all(isinstance(v, str) for v in body.values())
    form = flat and draw(st.booleans())
    return Attack(body, query, path, form, draw(st.booleans()))


def encode(value: str) -> str:
    return quote(value, safe="", errors="surrogatepass")


def request_headers(stack: FuzzStack, op: Operation, signed_in: bool) -> dict[str, str]:
    """What the Supabase clients send; a bearer token when signed in (the service key on the
    admin API)."""
    credentials = stack.credentials
    headers = {"apikey": credentials.anon_key, "X-Supabase-Api-Version": "2024-01-01"}
    if signed_in:
        admin = "/admin/" in op.path or op.path.endswith("/invite")
        token = credentials.service_key if admin else credentials.access_token
        headers["Authorization"] = f"Bearer {token}"
    return headers


def send(stack: FuzzStack, op: Operation, attack: Attack) -> httpx.Response:
    headers = request_headers(stack, op, attack.signed_in)
    path = op.path
    for name, value in attack.path.items():
        path = path.replace("{" + name + "}", encode(value))
    query = "&".join(f"{encode(k)}={encode(v)}" for k, v in attack.query.items())
    if attack.form:
        content = urlencode(attack.body, encoding="utf-8", errors="surrogatepass").encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        # ensure_ascii: lone surrogates travel as \ud800 escapes, as a hostile client sends them
        content = json.dumps(attack.body).encode()
        headers["Content-Type"] = "application/json"
    return HTTP.request(
        op.method, f"{stack.service.url}{path}?{query}", headers=headers, content=content
    )


def assert_documented_refusal(op: Operation, response: httpx.Response) -> None:
    """The error shape of the API the path belongs to (api/original/errors.py or
    api/gotrue/errors.py), as clients parse it."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    if op.gotrue:
        assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body
        assert response.headers.get("X-Supabase-Api-Version") == "2024-01-01"
        return
    assert set(body) == {"status", "statusText", "code", "message", "errors"}, body
    assert body["status"] == response.status_code, body
    assert body["statusText"] == HTTPStatus(response.status_code).phrase, body
    assert isinstance(body["code"], str) and isinstance(body["message"], str), body
    for problem in body["errors"]:
        assert set(problem) == {"field", "location", "messages"}, body
        assert isinstance(problem["field"], str), body
        assert all(isinstance(m, str) for m in problem["messages"]), body


@pytest.fixture(scope="module")
def stack(admin_dsn: str) -> Iterator[FuzzStack]:
    with fuzz_service(admin_dsn) as running:
        yield running


class Refusals:
    """Holds every refusal to leaving the auth tables as the last request left them."""

    def __init__(self, tables: Tables, service: Service) -> None:
        self.tables = tables
        self.service = service
        self.last = tables.settled(service)
        self.dirty = False

    def before_request(self) -> None:
        """After a success, wait for what it left behind (a mail queued after the answer)."""
        if self.dirty:
            self.last = self.tables.settled(self.service)
            self.dirty = False

    def after(self, method: str, response: httpx.Response, what: str) -> None:
        if response.status_code < 400:
            # A GET's 200 changes nothing these tables hold and leaves no work behind.
            self.dirty = self.dirty or method != "GET" or response.status_code >= 300
            return
        before, now = self.last, self.tables.fingerprint()
        self.last = now  # one finding, not one per later request
        changed = [table for table in now if now[table] != before[table]]
        assert not changed, f"{what} answered {response.status_code} but changed {changed}"


@pytest.fixture(scope="module")
def refusals(stack: FuzzStack) -> Iterator[Refusals]:
    tables = Tables(stack.dsn)
    yield Refusals(tables, stack.service)
    tables.close()


def check(stack: FuzzStack, refusals: Refusals, op: Operation, attack: Attack) -> None:
    refusals.before_request()
    response = send(stack, op, attack)
    what = f"{op} with {attack}"
    if op.path.endswith("/ready") and response.status_code == 503:
        return  # not ready (the probe's documented answer), whatever the request held
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        assert_documented_refusal(op, response)
    refusals.after(op.method, response, what)
    if 200 <= response.status_code < 300:
        stack.credentials.keep_signed_in()


def everywhere(op: Operation, value: Any, signed_in: bool) -> Attack:
    """`value` in every field and parameter at once, and as a field's name."""
    text = value if isinstance(value, str) else json.dumps(value)
    body = {name: value for name in op.fields} | {text: value}
    query = {name: text for name in op.query} | {text: text}
    path = {name: text for name in op.path_params}
    return Attack(body, query, path, form=False, signed_in=signed_in)


def one_place(op: Operation, where: str, name: str, value: Any, signed_in: bool) -> Attack:
    """`value` at one place, every other field plausible."""
    text = value if isinstance(value, str) else json.dumps(value)
    body = {field: PLAUSIBLE.get(field, "x") for field in op.fields}
    path = dict.fromkeys(op.path_params, PATH_VALUE)
    query = {q: PLAUSIBLE_QUERY[q] for q in op.query if q in PLAUSIBLE_QUERY}
    if where == "body":
        body[name] = value
    elif where == "path":
        path[name] = text
    else:
        query[name] = text
    return Attack(body, query, path, form=False, signed_in=signed_in)


def places(op: Operation) -> list[tuple[str, str]]:
    found = [("body", f) for f in op.fields] + [("query", q) for q in op.query]
    found += [("path", p) for p in op.path_params]
    return found or [("body", "x"), ("query", "x")]


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_hostile_values_are_refused_cleanly(
    op: Operation, stack: FuzzStack, refusals: Refusals
) -> None:
    # Listed values first (signed in, so they reach the bodies of the routes behind a
    # token; everywhere-values by turns without), then hypothesis's mixes.
    for where, name in places(op):
        for value in FOCUSED:
            check(stack, refusals, op, one_place(op, where, name, value, signed_in=True))
    for index, value in enumerate(EVERYWHERE):
        check(stack, refusals, op, everywhere(op, value, signed_in=index % 2 == 0))

    @given(attack=attacks(op))
    @settings(
        max_examples=3,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def mixed(attack: Attack) -> None:
        check(stack, refusals, op, attack)

    mixed()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("op", WITH_BODY, ids=str)
def test_a_megabyte_field_is_413(
    op: Operation, chunked: bool, stack: FuzzStack, refusals: Refusals
) -> None:
    """Over http.max_body_bytes (64 KiB here), declared or not (chunked): 413 before the
    body is read into memory, in the API's shape, and nothing changes. Signed in, with the
    query a route needs, so that the route goes on to read the body."""
    body = {name: PLAUSIBLE.get(name, "x") for name in op.fields}
    body[op.fields[0]] = "é" * (ONE_MEGABYTE // 2)
    content = json.dumps(body, ensure_ascii=False).encode()
    assert len(content) > ONE_MEGABYTE
    path = op.path
    for name in op.path_params:
        path = path.replace("{" + name + "}", PATH_VALUE)
    query = "?grant_type=password" if "grant_type" in op.query else ""  # the body is read
    headers = request_headers(stack, op, signed_in=True) | {"Content-Type": "application/json"}
    refusals.before_request()
    with httpx.Client(timeout=30) as http:
        chunks = iter([content[i : i + 65536] for i in range(0, len(content), 65536)])
        response = http.request(
            op.method,
            stack.service.url + path + query,
            headers=headers,
            content=chunks if chunked else content,
        )
    assert response.status_code == 413, response.text
    assert_documented_refusal(op, response)
    refusals.after(op.method, response, f"{op} with a megabyte")
