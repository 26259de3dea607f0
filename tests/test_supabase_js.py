"""The real `@supabase/auth-js` and `@supabase/supabase-js` (pinned in tests/supabase_js) on
Node 22 against the service, real SMTP and, for the to-do table, the real PostgREST behind nginx
at one origin (`/auth/v1/` and `/rest/v1/`, as Supabase lays them out).

The Node script (tests/supabase_js/flows.mjs) runs a scenario and asks on stdout for what only
this side has: the code and link a real mail carries, a TOTP code, or a browser that signs in at
the real OpenID Provider (tests/oidc_support.py) and follows the service's callback."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp

from .email_flows import read_secret
from .gotrue_stack import gotrue_stack, service_settings, start_service
from .oidc_support import OidcProvider, log_in
from .supabase_py_support import rsa_key_file
from .support import Service, SmtpServer, node_with, wait_until

SCRIPTS = Path(__file__).parent / "supabase_js"
# A whole scenario, mails included, takes a few seconds; past this it hangs.
SCENARIO_TIMEOUT = 90


def run_scenario(
    scenario: str,
    base: str,
    smtp: SmtpServer,
    anon_key: str | None = None,
    browser: Browser | None = None,
) -> list[str]:
    """Run one scenario of flows.mjs to its end, answering its asks (mails, TOTP codes and, with
    a `browser`, sign-ins at a provider); the steps it passed."""
    node = node_with(SCRIPTS / "node_modules" / "@supabase" / "supabase-js", "supabase-js")
    argv = [node, str(SCRIPTS / "flows.mjs"), scenario, base]
    if anon_key:
        argv.append(anon_key)
    process = subprocess.Popen(
        argv,
        cwd=SCRIPTS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    watchdog = threading.Timer(SCENARIO_TIMEOUT, process.kill)
    watchdog.start()
    steps: list[str] = []
    try:
        for line in process.stdout:
            message = json.loads(line)
            if "ask" in message:
                reply = answer(smtp, message["ask"], browser)
                process.stdin.write(json.dumps(reply) + "\n")
                process.stdin.flush()
            elif "step" in message:
                steps.append(message["step"])
        process.wait(timeout=30)
    finally:
        watchdog.cancel()
    errors = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, f"{scenario} failed after {steps}:\n{errors[-3000:]}"
    return steps


class Browser:
    """The user's browser for sign-ins at a provider: it opens the URL auth-js built, signs in
    as `login` at the real OpenID Provider (or cancels there) and follows the service's callback
    to the application's page, which it does not request. A fresh cookie jar each time, so every
    sign-in meets the provider's login page."""

    def __init__(self, login: str) -> None:
        self.login = login

    def sign_in(self, url: str, cancel: bool = False) -> str:
        """Where the browser lands (redirect_to with `?code=` or `?error=`)."""
        with httpx.Client(timeout=30) as http:
            opened = http.get(url, follow_redirects=False)
            # signInWithOAuth's URL must take a browser to the provider (GoTrue's 302).
            assert opened.status_code == 302, (
                f"GET {url} answered {opened.status_code}, not a redirect to the provider: "
                f"{opened.text[:500]}"
            )
            back = log_in(http, opened.headers["location"], self.login, cancel=cancel)
            landed = http.get(back, follow_redirects=False)
            assert landed.status_code == 303, f"the callback answered {landed.status_code}"
            return landed.headers["location"]


def answer(
    smtp: SmtpServer, question: dict[str, Any], browser: Browser | None = None
) -> dict[str, str]:
    """A TOTP code for a secret (as the user's authenticator app shows it), where the browser
    lands after a sign-in at the provider, or the `count`-th mail with a link of a type to an
    address: its code and link."""
    if "oauth" in question:
        assert browser is not None, "this scenario has no browser for the provider"
        return {"url": browser.sign_in(question["oauth"], question["cancel"])}
    if "totp" in question:
        moment = time.time() + 30 * question["steps"]
        return {"code": pyotp.TOTP(question["totp"]).at(moment)}
    address, kind, count = question["mail"], question["type"], question["count"]

    def mails() -> list[Any]:
        found = []
        for message in smtp.mailbox.to(address):
            try:
                secret = read_secret(message)
            except AssertionError:  # a notice without a link
                continue
            if secret.type == kind:
                found.append(secret)
        return found

    mailed = wait_until(lambda: len(mails()) >= count and mails())[count - 1]
    return {"code": mailed.code, "link": mailed.link}


def test_auth_js_flows(dsn: str, smtp: SmtpServer) -> None:
    """signUp to signOut: codes, PKCE and implicit links from real mail, rotation, errors."""
    service = start_service(dsn, smtp, sessions={"reuse_interval": 1})
    try:
        steps = run_scenario("flows", service.url, smtp)
    finally:
        service.stop()
    assert len(steps) == 10, steps


def test_auth_js_with_email_confirmation(dsn: str, smtp: SmtpServer) -> None:
    service = start_service(dsn, smtp, email={"confirm": True})
    try:
        assert run_scenario("confirm", service.url, smtp)
    finally:
        service.stop()


def test_supabase_js_through_postgrest_with_rs256_and_expiring_tokens(
    dsn: str, admin_dsn: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    """supabase-js at one origin: to-dos with row-level security, getClaims on an RS256 key
    (PostgREST verifies against the JWKS) and auto-refresh across a real expiry."""
    keys = [{"kid": "rs1", "algorithm": "RS256", "private_key_file": str(rsa_key_file(tmp_path))}]
    with gotrue_stack(
        dsn, admin_dsn, smtp, access_token_seconds=3, secret=None, jwt={"keys": keys}
    ) as stack:
        steps = run_scenario("stack", stack.url, smtp, stack.anon_key)
    assert len(steps) == 4, steps


def test_auth_js_mfa(dsn: str, smtp: SmtpServer) -> None:
    """auth-js mfa.* and mfa.recoveryCodes.* with codes an authenticator would show."""
    service = start_service(dsn, smtp)
    try:
        steps = run_scenario("mfa", service.url, smtp)
    finally:
        service.stop()
    assert len(steps) == 4, steps


def test_supabase_js_sign_in_with_oauth(dsn: str, smtp: SmtpServer) -> None:
    """signInWithOAuth (PKCE) at the real OpenID Provider as `corp`, through our callback to
    exchangeCodeForSession; Cancel at the provider comes back as ?error=access_denied."""
    provider = OidcProvider([])
    service = Service(service_settings(dsn, smtp, providers={"corp": provider.settings()}))
    # The redirect URI the service sends: its public URL (this server), the prefix, /v1/callback.
    provider.redirect_uris = [service.base + "/v1/callback"]
    with provider:
        service.start()
        try:
            steps = run_scenario("oauth", service.url, smtp, browser=Browser("alice"))
        finally:
            service.stop()
    assert len(steps) == 4, steps
