"""Local stand-ins for GitHub, Google and GitLab, whose real servers the tests cannot reach.

Each is a small real HTTP server (Starlette under uvicorn, in a thread, on a loopback port)
serving the endpoint shapes the provider documents, and checking what the provider checks at its
token endpoint: client credentials (client_secret_basic or client_secret_post), the redirect_uri
of the authorization request, single-use codes, and PKCE (S256 or plain) when a challenge was
sent. The user is never asked: `/authorize` redirects at once to the redirect_uri with a code for
the user the test chose with `sign_in_as(user)`, or with `error=access_denied` when `deny` is set.

    with GitHubStandIn("id", "secret") as github:
        github.sign_in_as(GITHUB_USERS["octocat"])
        settings = {"providers": {"github": github.provider_settings()}}
        callback = follow_to_callback(http, service_authorize_url)

Settings the service takes: GitHub `url=<.url>` and `api_url=<.url>/api`; Google and GitLab
`issuer=<.url>` (discovery at `<.url>/.well-known/openid-configuration`).

Test hooks beyond a real provider: `authorize_requests` and `token_requests` (what the service
sent, with the client authentication it used), `id_token_overrides` (claims to change in the
next id_tokens; None removes one) and `sign_with_unknown_key` (a valid-looking id_token whose
key is not in the JWKS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, unquote_plus, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .support import ThreadedServer, free_port

# RFC 7636: a verifier is 43 to 128 unreserved characters.
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

# Users for the GitHub stand-in, in the shapes of GET /user (`email` is the public address, or
# None) plus `emails`, the list GET /user/emails answers.
GITHUB_USERS: dict[str, dict[str, Any]] = {
    "octocat": {
        "id": 583231,
        "login": "octocat",
        "name": "The Octocat",
        "email": "octocat@example.test",
        "avatar_url": "https://avatars.example.test/u/583231?v=4",
        "emails": [
            {
                "email": "octocat@example.test",
                "primary": True,
                "verified": True,
                "visibility": "public",
            },
            {
                "email": "octo@old.example.test",
                "primary": False,
                "verified": True,
                "visibility": None,
            },
        ],
    },
    # Keeps the address private (`email` null): only /user/emails tells it.
    "private": {
        "id": 1000001,
        "login": "private-person",
        "name": "Private Person",
        "email": None,
        "avatar_url": "https://avatars.example.test/u/1000001?v=4",
        "emails": [
            {
                "email": "private@example.test",
                "primary": True,
                "verified": True,
                "visibility": "private",
            },
        ],
    },
    # Its primary address is unverified; the only verified one is not primary.
    "secondary": {
        "id": 1000002,
        "login": "secondary-verified",
        "name": None,
        "email": None,
        "avatar_url": "https://avatars.example.test/u/1000002?v=4",
        "emails": [
            {
                "email": "claimed@example.test",
                "primary": True,
                "verified": False,
                "visibility": "private",
            },
            {
                "email": "proven@example.test",
                "primary": False,
                "verified": True,
                "visibility": None,
            },
        ],
    },
    # No verified address at all, though it shows one publicly.
    "unverified": {
        "id": 1000003,
        "login": "unverified",
        "name": "Not Verified",
        "email": "victim@example.test",
        "avatar_url": "https://avatars.example.test/u/1000003?v=4",
        "emails": [
            {
                "email": "victim@example.test",
                "primary": True,
                "verified": False,
                "visibility": "public",
            },
        ],
    },
}

GOOGLE_USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "sub": "110169484474386276334",
        "email": "alice@example.test",
        "email_verified": True,
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "picture": "https://lh3.example.test/a/alice=s96-c",
    },
    "mallory": {
        "sub": "110169484474386276335",
        "email": "victim@example.test",
        "email_verified": False,
        "name": "Mallory",
        "given_name": "Mallory",
        "family_name": "",
        "picture": "https://lh3.example.test/a/mallory=s96-c",
    },
}

GITLAB_USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "sub": "4217",
        "nickname": "alice",
        "name": "Alice Example",
        "email": "alice@example.test",
        "email_verified": True,
        "picture": "https://gitlab.example.test/uploads/-/system/user/avatar/4217/avatar.png",
        "groups": ["example-org", "example-org/team"],
    },
    "mallory": {
        "sub": "4218",
        "nickname": "mallory",
        "name": "Mallory",
        "email": "victim@example.test",
        "email_verified": False,
        "picture": "https://gitlab.example.test/uploads/-/system/user/avatar/4218/avatar.png",
    },
}


@dataclass
class Grant:
    """What an authorization request granted; a code and then its tokens point at it."""

    client_id: str
    redirect_uri: str | None
    redirect_uri_given: bool
    scopes: list[str]
    user: dict[str, Any]
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    issued: float = field(default_factory=time.time)
    used: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class TokenError(Exception):
    """A refused token request; `kind` picks the provider's own answer for it."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def with_params(url: str, params: dict[str, str | None]) -> str:
    """`url` with `params` (None values left out) added to its query, as a provider redirects."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(key, value) for key, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def s256(verifier: str) -> str:
    """The S256 code_challenge of a verifier (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, parsed without python-multipart."""
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


# Base URLs of the stand-ins now running, so follow_to_callback knows which hops are theirs.
_RUNNING: set[str] = set()


class StandIn(ThreadedServer):
    """The common part: a uvicorn server in a thread, codes, tokens and client checks.

    Subclasses name the endpoints and give the provider's own answers and errors."""

    name = "provider"
    code_lifetime = 600.0
    # Seconds an access token lives; None: until revoked (GitHub OAuth app tokens).
    token_lifetime: float | None = None
    pkce_methods: tuple[str, ...] = ("S256", "plain")
    # Whether the token request must repeat the authorization request's redirect_uri.
    redirect_uri_required_at_token = True

    def __init__(
        self,
        client_id: str = "standin-client",
        client_secret: str | None = None,
        redirect_uris: list[str] | None = None,
    ) -> None:
        """`redirect_uris`: the app's registered callbacks; None takes any redirect_uri."""
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.redirect_uris = redirect_uris
        self.deny = False
        self.user: dict[str, Any] | None = None
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, Any]] = []
        self._codes: dict[str, Grant] = {}
        self._tokens: dict[str, tuple[Grant, float | None]] = {}
        self._lock = threading.Lock()
        super().__init__(Starlette(routes=self.routes()), free_port())

    # Life cycle.

    def start(self) -> Self:
        super().start()
        _RUNNING.add(self.url)
        return self

    def stop(self) -> None:
        _RUNNING.discard(self.url)
        super().stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    # Test controls.

    def sign_in_as(self, user: dict[str, Any]) -> None:
        """The user `/authorize` approves from now on (a copy: later edits do not leak in)."""
        self.user = dict(user)

    def provider_settings(self, **extra: Any) -> dict[str, Any]:
        """This stand-in as the service's `providers.<name>` setting."""
        return {
            "kind": self.name,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            **self.location_settings(),
            **extra,
        }

    def location_settings(self) -> dict[str, str]:
        raise NotImplementedError

    def revoke_all(self) -> None:
        """Forget every access token, as when the user revokes the app at the provider."""
        with self._lock:
            self._tokens.clear()

    # Provider specifics (overridden).

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def authorize_error_page(self, status: int, text: str) -> Response:
        """What the provider shows the browser when it cannot even redirect back."""
        return PlainTextResponse(f"{self.name} stand-in: {text}", status_code=status)

    def denied_params(self) -> dict[str, str | None]:
        return {"error": "access_denied"}

    def approved_params(self, grant: Grant) -> dict[str, str | None]:
        return {}

    def token_error(self, request: Request, error: TokenError) -> Response:
        raise NotImplementedError

    def redirect_uri_allowed(self, redirect_uri: str) -> bool:
        return self.redirect_uris is None or redirect_uri in self.redirect_uris

    # Authorization endpoint.

    def default_redirect_uri(self) -> str | None:
        return None

    async def authorize(self, request: Request) -> Response:
        """Checks the request as the provider would and approves (or denies) it at once."""
        query = dict(request.query_params)
        self.authorize_requests.append(query)
        if query.get("client_id") != self.client_id:
            return self.authorize_error_page(404, f"no application {query.get('client_id')!r}")
        redirect_uri = query.get("redirect_uri") or self.default_redirect_uri()
        if not redirect_uri:
            return self.authorize_error_page(400, "missing redirect_uri")
        if not self.redirect_uri_allowed(redirect_uri):
            return self.authorize_error_page(400, f"redirect_uri_mismatch: {redirect_uri}")
        state = query.get("state")

        def back(params: dict[str, str | None]) -> Response:
            return RedirectResponse(with_params(redirect_uri, {**params, "state": state}), 302)

        problem = self.check_authorize(query)
        if problem:
            return back(problem)
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method") if challenge else None
        if challenge:
            method = method or "plain"
            if method not in self.pkce_methods:
                return back(
                    {
                        "error": "invalid_request",
                        "error_description": f"unsupported code_challenge_method {method}",
                    }
                )
        if self.deny:
            return back(self.denied_params())
        if self.user is None:
            return self.authorize_error_page(409, "no user signed in: call sign_in_as(user)")
        grant = Grant(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            redirect_uri_given="redirect_uri" in query,
            scopes=self.parse_scopes(query.get("scope", "")),
            user=dict(self.user),
            code_challenge=challenge,
            code_challenge_method=method,
            nonce=query.get("nonce"),
            extra={k: v for k, v in query.items() if k in ("access_type", "prompt")},
        )
        code = self.new_code()
        with self._lock:
            self._codes[code] = grant
        return back({"code": code, **self.approved_params(grant)})

    def check_authorize(self, query: dict[str, str]) -> dict[str, str | None] | None:
        """Provider-specific refusals sent back to the redirect_uri; None: fine."""
        return None

    def parse_scopes(self, scope: str) -> list[str]:
        return [s for s in scope.split() if s]

    def new_code(self) -> str:
        return secrets.token_urlsafe(24)

    def new_access_token(self) -> str:
        return secrets.token_urlsafe(32)

    # Token endpoint.

    async def read_token_request(self, request: Request) -> tuple[dict[str, str], Grant]:
        """The form and the grant it redeems, after the checks the provider makes."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise TokenError("invalid_request", f"content-type {content_type!r}, not a form")
        form = parse_form(await request.body())
        method = self.authenticate(request, form)
        self.token_requests.append({"auth": method, "form": dict(form)})
        self.check_grant_type(form)
        code = form.get("code", "")
        with self._lock:
            grant = self._codes.get(code)
            if grant is None:
                raise TokenError("invalid_grant", "unknown code")
            if grant.used:
                raise TokenError("invalid_grant", "code already used")
            # Spent by any attempt: a wrong verifier does not get a second try.
            grant.used = True
        if time.time() - grant.issued > self.code_lifetime:
            raise TokenError("invalid_grant", "code expired")
        if grant.client_id != self.client_id:
            raise TokenError("invalid_grant", "code issued to another client")
        self.check_redirect_uri(form, grant)
        self.check_pkce(form, grant)
        return form, grant

    def authenticate(self, request: Request, form: dict[str, str]) -> str:
        """client_secret_basic or client_secret_post, never both (RFC 6749 2.3); its name."""
        header = request.headers.get("authorization", "")
        basic: tuple[str, str] | None = None
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
                user, _, password = decoded.partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise TokenError("invalid_client", "malformed Basic credentials") from exc
            if not _:
                raise TokenError("invalid_client", "malformed Basic credentials")
            basic = (unquote_plus(user), unquote_plus(password))
        if basic and "client_secret" in form:
            raise TokenError("invalid_client", "more than one client authentication method")
        if basic:
            client_id, secret = basic
            if form.get("client_id", client_id) != client_id:
                raise TokenError("invalid_client", "client_id differs from the Basic one")
            method = "client_secret_basic"
        elif "client_secret" in form:
            client_id, secret = form.get("client_id", ""), form["client_secret"]
            method = "client_secret_post"
        else:
            raise TokenError("invalid_client", "no client authentication")
        right = client_id == self.client_id and hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        )
        if not right:
            raise TokenError("invalid_client", "wrong client_id or client_secret")
        return method

    def check_grant_type(self, form: dict[str, str]) -> None:
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise TokenError("invalid_request", "missing grant_type")
        if grant_type != "authorization_code":
            raise TokenError("unsupported_grant_type", f"grant_type {grant_type}")

    def check_redirect_uri(self, form: dict[str, str], grant: Grant) -> None:
        given = form.get("redirect_uri")
        if given is None and not (grant.redirect_uri_given and self.redirect_uri_required_at_token):
            return
        if given != grant.redirect_uri:
            raise TokenError("redirect_uri_mismatch", f"redirect_uri {given!r}")

    def check_pkce(self, form: dict[str, str], grant: Grant) -> None:
        verifier = form.get("code_verifier")
        if grant.code_challenge is None:
            if verifier is not None:
                raise TokenError("pkce", "code_verifier without a code_challenge")
            return
        if verifier is None:
            raise TokenError("pkce", "missing code_verifier")
        if not VERIFIER.match(verifier):
            raise TokenError("pkce", "malformed code_verifier")
        expected = s256(verifier) if grant.code_challenge_method == "S256" else verifier
        if not hmac.compare_digest(expected, grant.code_challenge):
            raise TokenError("pkce", "code_verifier does not match the code_challenge")

    def issue_access_token(self, grant: Grant) -> str:
        token = self.new_access_token()
        expires = None if self.token_lifetime is None else time.time() + self.token_lifetime
        with self._lock:
            self._tokens[token] = (grant, expires)
        return token

    def bearer(self, request: Request, schemes: tuple[str, ...] = ("bearer",)) -> Grant | None:
        """The grant behind the request's access token; None if missing, unknown or expired."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in schemes or not token.strip():
            return None
        with self._lock:
            found = self._tokens.get(token.strip())
        if found is None:
            return None
        grant, expires = found
        if expires is not None and time.time() > expires:
            return None
        return grant


class GitHubStandIn(StandIn):
    """GitHub's OAuth app flow: `{url}/login/oauth/authorize`, `{url}/login/oauth/access_token`,
    and the REST API's `GET /user` and `GET /user/emails` under `{url}/api`.

    Like GitHub, the token endpoint answers 200 even for errors ({"error": ...}), in JSON only
    when asked with Accept: application/json (else form-encoded); grant_type is not needed; the
    token request may leave redirect_uri out, but if given it must match; /user/emails needs
    the `user:email` or `user` scope (404 otherwise); the API wants a User-Agent header."""

    name = "github"
    pkce_methods = ("S256",)
    redirect_uri_required_at_token = False
    docs = "https://docs.github.com/apps/managing-oauth-apps/"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    def location_settings(self) -> dict[str, str]:
        return {"url": self.url, "api_url": self.api_url}

    def routes(self) -> list[Route]:
        return [
            Route("/login/oauth/authorize", self.authorize, methods=["GET"]),
            Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
            Route("/api/user", self.api_user, methods=["GET"]),
            Route("/api/user/emails", self.api_emails, methods=["GET"]),
        ]

    def default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def redirect_uri_allowed(self, redirect_uri: str) -> bool:
        """GitHub's rule: same scheme, host and port as a registered callback, and a path at or
        below its path."""
        if self.redirect_uris is None:
            return True
        wanted = urlsplit(redirect_uri)
        for registered in map(urlsplit, self.redirect_uris):
            same_origin = (wanted.scheme, wanted.netloc) == (registered.scheme, registered.netloc)
            base = registered.path.rstrip("/")
            if same_origin and (
                wanted.path == registered.path or wanted.path.startswith(base + "/")
            ):
                return True
        return False

    def parse_scopes(self, scope: str) -> list[str]:
        return [s for s in re.split(r"[\s,]+", scope) if s]

    def denied_params(self) -> dict[str, str | None]:
        return {
            "error": "access_denied",
            "error_description": "The user has denied your application access.",
            "error_uri": self.docs + "troubleshooting-authorization-request-errors/#access-denied",
        }

    def new_code(self) -> str:
        return secrets.token_hex(10)

    def new_access_token(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "gho_" + "".join(secrets.choice(alphabet) for _ in range(36))

    def check_grant_type(self, form: dict[str, str]) -> None:
        """GitHub takes the code without a grant_type."""

    async def access_token(self, request: Request) -> Response:
        try:
            _form, grant = await self.read_token_request(request)
        except TokenError as error:
            return self.token_error(request, error)
        body = {
            "access_token": self.issue_access_token(grant),
            "token_type": "bearer",
            "scope": ",".join(grant.scopes),
        }
        return self.answer(request, body)

    def answer(self, request: Request, body: dict[str, str]) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return Response(urlencode(body), media_type="application/x-www-form-urlencoded")

    def token_error(self, request: Request, error: TokenError) -> Response:
        code, description = {
            "invalid_client": (
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            ),
            "redirect_uri_mismatch": (
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            ),
        }.get(error.kind, ("bad_verification_code", "The code passed is incorrect or expired."))
        anchor = code.replace("_", "-")
        return self.answer(
            request,
            {
                "error": code,
                "error_description": description,
                "error_uri": self.docs
                + f"troubleshooting-oauth-app-access-token-request-errors/#{anchor}",
            },
        )

    def api_grant(self, request: Request) -> Grant | Response:
        if not request.headers.get("user-agent"):
            return PlainTextResponse(
                "Request forbidden by administrative rules. "
                "Please make sure your request has a User-Agent header",
                status_code=403,
            )
        grant = self.bearer(request, ("bearer", "token"))
        if grant is None:
            return JSONResponse(
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
                status_code=401,
            )
        return grant

    def api_headers(self, grant: Grant, accepted: str) -> dict[str, str]:
        return {"X-OAuth-Scopes": ", ".join(grant.scopes), "X-Accepted-OAuth-Scopes": accepted}

    async def api_user(self, request: Request) -> Response:
        grant = self.api_grant(request)
        if isinstance(grant, Response):
            return grant
        user = grant.user
        login = user["login"]
        body = {
            "login": login,
            "id": int(user["id"]),
            "node_id": base64.b64encode(f"04:User{user['id']}".encode()).decode(),
            "avatar_url": user.get("avatar_url"),
            "gravatar_id": "",
            "url": f"{self.api_url}/users/{login}",
            "html_url": f"{self.url}/{login}",
            "type": "User",
            "site_admin": False,
            "name": user.get("name"),
            "company": user.get("company"),
            "blog": user.get("blog", ""),
            "location": user.get("location"),
            "email": user.get("email"),
            "hireable": None,
            "bio": user.get("bio"),
            "twitter_username": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2011-01-25T18:44:36Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }
        return JSONResponse(body, headers=self.api_headers(grant, ""))

    async def api_emails(self, request: Request) -> Response:
        grant = self.api_grant(request)
        if isinstance(grant, Response):
            return grant
        headers = self.api_headers(grant, "user, user:email")
        if not {"user", "user:email"} & set(grant.scopes):
            return JSONResponse(
                {
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-"
                    "authenticated-user",
                    "status": "404",
                },
                status_code=404,
                headers=headers,
            )
        emails = [
            {
                "email": e["email"],
                "primary": bool(e.get("primary", False)),
                "verified": bool(e.get("verified", False)),
                "visibility": e.get("visibility"),
            }
            for e in grant.user.get("emails", [])
        ]
        return JSONResponse(emails, headers=headers)


class OidcStandIn(StandIn):
    """An OpenID provider's share: discovery, a JWKS with an RSA key made at start, RS256
    id_tokens (iss = `.url`, aud = client_id, nonce from the authorization request) and
    userinfo. Subclasses give the endpoint paths, the claims and the error bodies."""

    paths: ClassVar[dict[str, str]] = {}
    id_token_lifetime = 3600
    discovery_extra: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        client_id: str = "standin-client",
        client_secret: str | None = None,
        redirect_uris: list[str] | None = None,
    ) -> None:
        super().__init__(client_id, client_secret, redirect_uris)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(20)
        self.id_token_overrides: dict[str, Any] = {}
        self.sign_with_unknown_key = False
        self._unknown_key: rsa.RSAPrivateKey | None = None

    @property
    def issuer(self) -> str:
        return self.url

    def location_settings(self) -> dict[str, str]:
        return {"issuer": self.issuer}

    def routes(self) -> list[Route]:
        return [
            Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
            Route(self.paths["authorization"], self.authorize, methods=["GET"]),
            Route(self.paths["token"], self.token, methods=["POST"]),
            Route(self.paths["userinfo"], self.userinfo, methods=["GET", "POST"]),
            Route(self.paths["jwks"], self.jwks_endpoint, methods=["GET"]),
        ]

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    async def jwks_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.jwks())

    def discovery_document(self) -> dict[str, Any]:
        base = self.url
        return {
            "issuer": self.issuer,
            "authorization_endpoint": base + self.paths["authorization"],
            "token_endpoint": base + self.paths["token"],
            "userinfo_endpoint": base + self.paths["userinfo"],
            "jwks_uri": base + self.paths["jwks"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            **self.discovery_extra,
        }

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(self.discovery_document())

    def check_authorize(self, query: dict[str, str]) -> dict[str, str | None] | None:
        if query.get("response_type") != "code":
            return {"error": "unsupported_response_type"}
        return None

    def claims(self, grant: Grant) -> dict[str, Any]:
        """The user's claims the grant's scopes release (userinfo's answer)."""
        raise NotImplementedError

    def id_token_claims(self, grant: Grant) -> dict[str, Any]:
        return self.claims(grant)

    def id_token(self, grant: Grant, access_token: str) -> str:
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii"),
            "iat": now,
            "exp": now + self.id_token_lifetime,
            **self.id_token_claims(grant),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        for name, value in self.id_token_overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self.key
        if self.sign_with_unknown_key:
            if self._unknown_key is None:
                self._unknown_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key = self._unknown_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def token_body(self, grant: Grant, access_token: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime or 3600),
            "scope": " ".join(grant.scopes),
        }
        if "openid" in grant.scopes:
            body["id_token"] = self.id_token(grant, access_token)
        return body

    async def token(self, request: Request) -> Response:
        try:
            _form, grant = await self.read_token_request(request)
        except TokenError as error:
            return self.token_error(request, error)
        body = self.token_body(grant, self.issue_access_token(grant))
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def userinfo(self, request: Request) -> Response:
        grant = self.bearer(request)
        if grant is None or "openid" not in grant.scopes:
            return self.userinfo_refused()
        return JSONResponse(self.claims(grant))

    def userinfo_refused(self) -> Response:
        raise NotImplementedError


class GoogleStandIn(OidcStandIn):
    """Google's OpenID Connect: the endpoint paths of its discovery document, `sub` a numeric
    string, email claims for the `email` scope and profile claims for `profile`, and its error
    bodies (invalid_client 401, invalid_grant 400, redirect_uri_mismatch 400)."""

    name = "google"
    token_lifetime = 3599
    paths: ClassVar[dict[str, str]] = {
        "authorization": "/o/oauth2/v2/auth",
        "token": "/token",
        "userinfo": "/v1/userinfo",
        "jwks": "/oauth2/v3/certs",
    }
    discovery_extra: ClassVar[dict[str, Any]] = {
        "response_types_supported": [
            "code",
            "token",
            "id_token",
            "code token",
            "code id_token",
            "token id_token",
            "code token id_token",
            "none",
        ],
        "claims_supported": [
            "aud",
            "email",
            "email_verified",
            "exp",
            "family_name",
            "given_name",
            "iat",
            "iss",
            "name",
            "picture",
            "sub",
        ],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
    }

    def discovery_document(self) -> dict[str, Any]:
        document = super().discovery_document()
        document["revocation_endpoint"] = self.url + "/revoke"
        return document

    def sign_in_as(self, user: dict[str, Any]) -> None:
        user = dict(user)
        user.setdefault("sub", str(100000000000000000000 + secrets.randbelow(10**20)))
        super().sign_in_as(user)

    def check_authorize(self, query: dict[str, str]) -> dict[str, str | None] | None:
        if not query.get("scope"):
            return {
                "error": "invalid_request",
                "error_description": "Missing required parameter: scope",
            }
        return super().check_authorize(query)

    def approved_params(self, grant: Grant) -> dict[str, str | None]:
        return {"scope": " ".join(self.expand(grant.scopes)), "authuser": "0", "prompt": "consent"}

    @staticmethod
    def expand(scopes: list[str]) -> list[str]:
        """Google answers `email`/`profile` with their long names added, as its redirect does."""
        long = {
            "email": "https://www.googleapis.com/auth/userinfo.email",
            "profile": "https://www.googleapis.com/auth/userinfo.profile",
        }
        return scopes + [long[s] for s in scopes if s in long]

    def token_body(self, grant: Grant, access_token: str) -> dict[str, Any]:
        body = super().token_body(grant, access_token)
        body["scope"] = " ".join(self.expand(grant.scopes))
        if grant.extra.get("access_type") == "offline":
            body["refresh_token"] = "1//" + secrets.token_urlsafe(48)
        return body

    def new_code(self) -> str:
        return "4/0" + secrets.token_urlsafe(40)

    def new_access_token(self) -> str:
        return "ya29." + secrets.token_urlsafe(90)

    def claims(self, grant: Grant) -> dict[str, Any]:
        user = grant.user
        claims: dict[str, Any] = {"sub": str(user["sub"])}
        if "email" in grant.scopes:
            claims["email"] = user["email"]
            claims["email_verified"] = bool(user.get("email_verified", False))
        if "profile" in grant.scopes:
            for name in ("name", "picture", "given_name", "family_name"):
                if user.get(name) is not None:
                    claims[name] = user[name]
        if user.get("hd"):
            claims["hd"] = user["hd"]
        return claims

    def token_error(self, request: Request, error: TokenError) -> Response:
        status, code, description = {
            "invalid_client": (401, "invalid_client", "Unauthorized"),
            "redirect_uri_mismatch": (400, "redirect_uri_mismatch", "Bad Request"),
            "unsupported_grant_type": (400, "unsupported_grant_type", "Invalid grant_type"),
            "invalid_request": (400, "invalid_request", error.detail),
            "pkce": (400, "invalid_grant", error.detail),
        }.get(error.kind, (400, "invalid_grant", "Bad Request"))
        return JSONResponse({"error": code, "error_description": description}, status)

    def userinfo_refused(self) -> Response:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "Invalid Credentials"},
            status_code=401,
            headers={
                "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                'error="invalid_token"'
            },
        )


class GitLabStandIn(OidcStandIn):
    """GitLab's OpenID Connect (Doorkeeper): `/oauth/authorize`, `/oauth/token`,
    `/oauth/userinfo`, `/oauth/discovery/keys`; `sub` a numeric string, `nickname`,
    `email_verified`, optional `groups`; id_tokens live 120 s as GitLab's do; Doorkeeper's error
    bodies (invalid_client 401, invalid_grant 400 for code, redirect_uri and PKCE faults)."""

    name = "gitlab"
    token_lifetime = 7200
    id_token_lifetime = 120
    paths: ClassVar[dict[str, str]] = {
        "authorization": "/oauth/authorize",
        "token": "/oauth/token",
        "userinfo": "/oauth/userinfo",
        "jwks": "/oauth/discovery/keys",
    }
    discovery_extra: ClassVar[dict[str, Any]] = {
        "scopes_supported": ["api", "read_api", "read_user", "openid", "profile", "email"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "claim_types_supported": ["normal"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "sub_legacy",
            "name",
            "nickname",
            "preferred_username",
            "email",
            "email_verified",
            "website",
            "profile",
            "picture",
            "groups",
            "groups_direct",
        ],
    }
    invalid_grant = (
        "The provided authorization grant is invalid, expired, revoked, does not match the "
        "redirection URI used in the authorization request, or was issued to another client."
    )

    def discovery_document(self) -> dict[str, Any]:
        document = super().discovery_document()
        document["revocation_endpoint"] = self.url + "/oauth/revoke"
        document["introspection_endpoint"] = self.url + "/oauth/introspect"
        return document

    def denied_params(self) -> dict[str, str | None]:
        return {
            "error": "access_denied",
            "error_description": "The resource owner or authorization server denied the request.",
        }

    def new_code(self) -> str:
        return secrets.token_hex(32)

    def new_access_token(self) -> str:
        return secrets.token_hex(32)

    def token_body(self, grant: Grant, access_token: str) -> dict[str, Any]:
        body = super().token_body(grant, access_token)
        body["refresh_token"] = secrets.token_hex(32)
        body["created_at"] = int(time.time())
        return body

    def claims(self, grant: Grant) -> dict[str, Any]:
        user = grant.user
        nickname = user.get("nickname") or user.get("username")
        claims: dict[str, Any] = {"sub": str(user["sub"])}
        if "email" in grant.scopes:
            claims["email"] = user["email"]
            claims["email_verified"] = bool(user.get("email_verified", False))
        if "profile" in grant.scopes:
            claims.update(
                {
                    "name": user.get("name"),
                    "nickname": nickname,
                    "preferred_username": nickname,
                    "website": user.get("website", ""),
                    "profile": f"{self.url}/{nickname}",
                    "picture": user.get("picture"),
                }
            )
        if user.get("groups") is not None:
            claims["groups"] = list(user["groups"])
        return claims

    def id_token_claims(self, grant: Grant) -> dict[str, Any]:
        """GitLab's id_token names the direct groups `groups_direct`; userinfo says `groups`."""
        claims = self.claims(grant)
        if "groups" in claims:
            claims["groups_direct"] = claims.pop("groups")
        return claims

    def token_error(self, request: Request, error: TokenError) -> Response:
        if error.kind == "invalid_client":
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed due to unknown client, no "
                    "client authentication included, or unsupported authentication method.",
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="Doorkeeper"'},
            )
        code, description = {
            "unsupported_grant_type": (
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            ),
            "invalid_request": ("invalid_request", error.detail),
        }.get(error.kind, ("invalid_grant", self.invalid_grant))
        return JSONResponse({"error": code, "error_description": description}, status_code=400)

    def userinfo_refused(self) -> Response:
        return JSONResponse(
            {"error": "invalid_token", "error_description": "The access token is invalid"},
            status_code=401,
            headers={
                "WWW-Authenticate": 'Bearer realm="Doorkeeper", error="invalid_token", '
                'error_description="The access token is invalid"'
            },
        )


def follow_to_callback(http: httpx.Client, authorize_url: str, max_hops: int = 10) -> str:
    """The URL a browser would be sent to after the provider: requests `authorize_url` (the
    service's sign-in link or the provider's authorization URL) and each redirect while it is
    a running stand-in's, and returns the first redirect leaving the stand-ins afterwards,
    without requesting it. `http` keeps cookies, so the service's own state cookie is kept."""
    url = authorize_url
    seen_standin = False
    for _ in range(max_hops):
        answer = http.get(url, follow_redirects=False)
        if not answer.is_redirect:
            raise AssertionError(
                f"GET {url} answered {answer.status_code}, not a redirect: {answer.text[:500]}"
            )
        location = urljoin(url, answer.headers["location"])
        seen_standin = seen_standin or _is_standin(url)
        if seen_standin and not _is_standin(location):
            return location
        url = location
    raise AssertionError(f"no redirect left the provider in {max_hops} hops from {authorize_url}")


def _is_standin(url: str) -> bool:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" in _RUNNING
