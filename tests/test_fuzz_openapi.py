"""schemathesis against the service's own OpenAPI document: every operation of both APIs
(original, GoTrue at /auth/v1, factors and providers), each answer held to what the document
promises (no 5xx, documented statuses, content types and bodies, errors in the API's shape).

The service is the real app under uvicorn on the real PostgreSQL, one per module. Half of the
cases carry a signed-in user's bearer token (the service key on the admin routes) and the anon
key as `apikey`, so the routes behind authentication are reached; the other half carry nothing.
Generation is derandomized: CI sees the same cases each run, and a bug the cases meet fails
every run until it is fixed."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .fuzz_support import Credentials, FuzzStack, document, fuzz_service

# The document as the app builds it (it does not depend on the database); the fixture checks
# that the running service publishes the same one.
DOCUMENT = document()
# The coverage phase (schemathesis' deterministic boundary and wrong-type cases) sends every
# method a path does not serve; one such method per path is enough to see the 405's shape.
CONFIG = SchemathesisConfig.from_dict(
    {"seed": 1, "phases": {"coverage": {"unexpected-methods": ["TRACE"]}}}
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CALLERS = itertools.cycle(("user", "nobody"))
# schemathesis draws some values with `random`; the cases still come from the fixed seed.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.fixture(scope="module")
def stack(admin_dsn: str) -> Iterator[FuzzStack]:
    with fuzz_service(admin_dsn) as running:
        published = httpx.get(running.service.base + "/openapi.json", timeout=30).json()
        assert published == DOCUMENT
        yield running


def caller_headers(credentials: Credentials, path: str) -> dict[str, str]:
    """Every other case is a signed-in user's (the service key for the admin API)."""
    if next(CALLERS) == "nobody":
        return {}
    admin = "/admin/" in path or path.endswith("/invite")
    token = credentials.service_key if admin else credentials.access_token
    return {"Authorization": f"Bearer {token}", "apikey": credentials.anon_key}


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, stack: FuzzStack) -> None:  # type: ignore[no-untyped-def]
    headers = caller_headers(stack.credentials, case.path)
    response = case.call(base_url=stack.service.url, headers=headers, timeout=30)
    case.validate_response(response, checks=CHECKS)
    # A fuzzed sign-out, password change or deletion may have ended the session: next case
    # gets a live one.
    if case.method != "GET" and response.status_code < 300:
        stack.credentials.keep_signed_in()
