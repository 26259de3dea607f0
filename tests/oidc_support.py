"""A real OpenID Provider for the sign-in-with-provider tests: panva's `oidc-provider` (pinned in
tests/oidc_provider/package-lock.json) on the Node 22 of the test extra, run by
tests/oidc_provider/server.mjs on a loopback port, with its built-in development login and
consent pages (any password; the login is an account's id or email).

`OidcProvider(redirect_uris)` knows its `.issuer` before `start()`, so settings can name it
first; `log_in(http, authorize_url, login)` plays the user at those pages and hands back the
redirect to the client (not followed)."""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import httpx

from .support import free_port, node_with, wait_until

SERVER_DIRECTORY = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "postgrest-auth-test"
# A password the development login form takes (it takes any).
PASSWORD = "any password"


@dataclass(frozen=True)
class Account:
    """A user at the provider: `id` is the `sub` of its id_tokens."""

    id: str
    email: str
    email_verified: bool
    name: str


DEFAULT_ACCOUNTS = (
    Account("alice", "alice@example.test", True, "Alice"),
    # Claims someone else's address without the provider having verified it.
    Account("mallory", "victim@example.test", False, "Mallory"),
)


class OidcProvider:
    """The provider process, one client (`client_id`, `client_secret`, `redirect_uris`) and
    `accounts`. A context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        redirect_uris: list[str],
        accounts: list[Account] | tuple[Account, ...] = DEFAULT_ACCOUNTS,
        client_id: str = CLIENT_ID,
    ) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(24)
        self.redirect_uris = list(redirect_uris)
        self.accounts = list(accounts)
        self.process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def settings(self, **extra: Any) -> dict[str, Any]:
        """A `providers.<name>` entry of the service's settings for this provider."""
        return {
            "kind": "oidc",
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": ["openid", "email", "profile"],
            **extra,
        }

    def start(self) -> OidcProvider:
        """Launch node and wait for "ready" and a discovery document."""
        node = node_with(SERVER_DIRECTORY / "node_modules" / "oidc-provider", "oidc-provider")
        self._directory = tempfile.TemporaryDirectory(prefix="pa-oidc-")
        config = Path(self._directory.name) / "config.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "issuer": self.issuer,
                    "clients": [
                        {
                            "client_id": self.client_id,
                            "client_secret": self.client_secret,
                            "redirect_uris": self.redirect_uris,
                        }
                    ],
                    "accounts": [asdict(account) for account in self.accounts],
                }
            )
        )
        self.process = subprocess.Popen(
            [node, str(SERVER_DIRECTORY / "server.mjs"), str(config)],
            cwd=SERVER_DIRECTORY,
            stdin=subprocess.PIPE,  # node ends when this closes, even if the tests are killed
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(ready,), daemon=True).start()

        def discovered() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"oidc-provider exited: {self.output[-2000:]}")
            if not ready.is_set():
                return False
            try:
                return httpx.get(self.discovery_url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(discovered, timeout=20, interval=0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_output(self, ready: threading.Event) -> None:
        """Keep what node prints (for failure messages) and notice "ready"."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._output.append(line)
            if line.strip() == "ready":
                ready.set()

    @property
    def output(self) -> str:
        return "".join(self._output)

    def stop(self) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def tamper(self, mode: str) -> None:
        """`"signature"`: the token endpoint's id_tokens carry a broken signature from now on;
        `"none"`: honest again."""
        answer = httpx.post(self.issuer + "/test/tamper", json={"id_token": mode}, timeout=5)
        assert answer.status_code == 200, answer.text

    def metadata(self) -> dict[str, Any]:
        """The discovery document."""
        answer = httpx.get(self.discovery_url, timeout=5)
        answer.raise_for_status()
        return answer.json()


@dataclass
class Form:
    """One HTML form: where it posts and the values its inputs carry."""

    action: str
    method: str
    fields: dict[str, str]


class _PageParser(HTMLParser):
    """Every <form> of a page with its inputs' names and values, and every link: no dependency
    on the exact markup of the provider's pages."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        elif tag == "form":
            self._current = Form(values.get("action", ""), values.get("method", "get"), {})
            self.forms.append(self._current)
        elif tag in ("input", "button") and self._current is not None and "name" in values:
            if tag == "button" and values.get("type", "submit") != "submit":
                return
            self._current.fields.setdefault(values["name"], values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def parse_page(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def log_in(
    http: httpx.Client,
    authorize_url: str,
    login: str,
    password: str = PASSWORD,
    cancel: bool = False,
) -> str:
    """Play the user at the provider's development pages: open `authorize_url`, sign in as
    `login` (an account's id or email), consent, and return the URL the provider finally
    redirects to (the client's redirect_uri with `?code=&state=` or `?error=`), unrequested.
    `cancel=True` presses the first page's Cancel link instead (`?error=access_denied`).

    `http` keeps the provider's cookies: a second call with the same client finds the session
    and skips the login form, signing in as the first `login` again (use a fresh client, or
    `forget_provider_session(http)`, to be someone else). Redirects are followed by hand so
    the last one, which leaves the provider (`authorize_url`'s origin), is never requested."""
    origin = _origin(authorize_url)
    url = authorize_url
    method, data = "GET", None
    for _ in range(20):
        response = http.request(method, url, data=data, follow_redirects=False)
        if response.is_redirect:
            target = urljoin(url, response.headers["location"])
            if _origin(target) != origin:
                return target
            url, method, data = target, "GET", None
            continue
        assert response.status_code == 200, (
            f"{method} {url} at the provider answered {response.status_code}: "
            f"{response.text[:2000]}"
        )
        page = parse_page(response.text)
        if cancel:
            aborts = [link for link in page.links if link.rstrip("/").endswith("/abort")]
            assert aborts, f"no Cancel link at {url}: {response.text[:2000]}"
            url, method, data = urljoin(url, aborts[0]), "GET", None
            continue
        forms = [form for form in page.forms if form.method.lower() == "post"]
        assert forms, f"no form at {url}: {response.text[:2000]}"
        form = forms[0]
        fields = dict(form.fields)
        if "login" in fields or "password" in fields:
            fields["login"] = login
            fields["password"] = password
        url, method, data = urljoin(url, form.action), "POST", fields
    raise AssertionError(f"no redirect out of the provider after 20 steps, last at {url}")


def forget_provider_session(http: httpx.Client) -> None:
    """Drop the provider's cookies (its session and interaction ones) from `http`. A cookie jar
    does not tell ports apart, so the service's cookies on 127.0.0.1 sit in the same jar; they
    have other names and stay."""
    for cookie in list(http.cookies.jar):
        if cookie.name.startswith(("_session", "_interaction")):
            http.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)


def _origin(url: str) -> str:
    parts = httpx.URL(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{parts.host}:{port}"
