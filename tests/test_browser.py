"""The to-do frontend in a real browser (Debian's chromium) behind nginx, in both modes.

Everything is real: the demo stack (demo/stack.py: pgserver PostgreSQL, PostgREST 12, the service as
a subprocess, nginx with examples/nginx.conf) and chromium driven by Playwright. Screenshots of each
step land in test-artifacts/browser/<mode>/ for a person to look at.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from demo import Stack

from .support import wait_until

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

FIRST, SECOND, THIRD = "first password 1", "second password 2", "third password 3"


def require_system_parts() -> None:
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"chromium ({CHROMIUM})")
    if not (os.access("/usr/sbin/nginx", os.X_OK) or shutil.which("nginx")):
        missing.append("nginx")
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: `make test` installs them "
            f"(apt-get install nginx chromium)"
        )


class Shots:
    """Numbered full-page screenshots: test-artifacts/browser/<mode>/NN-step.png."""

    def __init__(self, mode: str) -> None:
        self.directory = ARTIFACTS / mode
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.count = 0

    def __call__(self, page: Page, step: str) -> None:
        self.count += 1
        page.screenshot(path=self.directory / f"{self.count:02d}-{step}.png", full_page=True)


@pytest.fixture(params=["bearer", "cookie"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    require_system_parts()
    with Stack(mode=request.param, bcrypt_rounds=4) as running:
        yield running


@pytest.fixture
def browser(stack: Stack) -> Iterator[Browser]:
    """Launched after the stack: the stack's asyncio.run must not meet Playwright's loop."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_app(
    context: BrowserContext, url: str, errors: list[str], console: list[str] | None = None
) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if console is not None:  # what the browser's console shows as errors (failed requests too)
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def expect_signed_in(page: Page, username: str) -> None:
    expect(page.locator("body")).to_have_attribute("data-state", "signed-in")
    expect(page.locator("#current-user")).to_have_text(f"Signed in as {username}")


def expect_signed_out(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-state", "signed-out")
    expect(page.locator("#current-user")).to_have_text("Not signed in")
    expect(page.locator("#login-username")).to_be_visible()


def sign_up(page: Page, username: str, password: str, address: str) -> None:
    page.fill("#signup-username", username)
    page.fill("#signup-password", password)
    page.fill("#signup-email", address)
    page.click("#signup-submit")
    expect_signed_in(page, username)


def log_in(page: Page, username: str, password: str) -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect_signed_in(page, username)


def todo(page: Page, text: str) -> Locator:
    return page.locator("#todo-list li.todo-item", has_text=text)


def add_todo(page: Page, text: str) -> None:
    page.fill("#todo-new", text)
    page.click("#todo-add")
    expect(todo(page, text)).to_have_attribute("data-own", "true")


def reset_link(stack: Stack, address: str) -> str:
    """The link of the newest password-reset mail to `address`, read from the .eml files."""

    def newest() -> str | None:
        for path in reversed(stack.mail_files()):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] != address:
                continue
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""  # type: ignore[attr-defined]
            found = re.search(r"http://\S+#reset_token=\S+", text)
            if found:
                return found.group(0)
        return None

    return wait_until(newest, timeout=20, interval=0.1)


def sign_in_with_test_oidc(
    context: BrowserContext, stack: Stack, errors: list[str], shots: Shots
) -> Page:
    """ "Sign in with Test OIDC" as alice: the provider's own login and consent pages, then back
    on the app signed in (by address: a provider's account has no username), to-dos working."""
    page = open_app(context, stack.url, errors)
    page.click("#providers button[data-provider=test-oidc]")
    page.wait_for_url(re.compile(r"/interaction/"))
    shots(page, "test-oidc-login")
    page.fill("input[name=login]", "alice@example.test")
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/interaction/"))
    page.click("button[type=submit]")  # consent
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect_signed_in(page, "alice@example.test")
    assert "access_token" not in page.url and "code=" not in page.url, page.url
    add_todo(page, "Signed in with Test OIDC")
    shots(page, "signed-in-with-test-oidc")
    return page


def test_todo_app_through_nginx(stack: Stack, browser: Browser) -> None:
    mode = stack.mode
    shots = Shots(mode)
    errors: list[str] = []
    expect.set_options(timeout=15_000)
    secret = "Buy milk (private to alice)"

    # Alice signs up and writes a private to-do. A first visit makes no request that fails
    # (cookie mode probes the session only when this browser signed in before).
    alice_ctx = browser.new_context()
    console: list[str] = []
    alice = open_app(alice_ctx, stack.url, errors, console)
    expect_signed_out(alice)
    assert console == [], console
    shots(alice, "signed-out")
    sign_up(alice, "alice", FIRST, "alice@example.com")
    # Password managers learn which account the change-password form is for.
    expect(alice.locator("#change-form input[autocomplete=username]")).to_have_value("alice")
    shots(alice, "signed-up")
    add_todo(alice, secret)
    expect(todo(alice, secret)).to_have_attribute("data-public", "false")
    shots(alice, "todo-added")

    # A reload: the session cookie survives it; a token kept in memory does not.
    alice.reload()
    expect(alice.locator("body")).to_have_attribute("data-ready", "true")
    if mode == "cookie":
        expect_signed_in(alice, "alice")
        expect(todo(alice, secret)).to_be_visible()
        shots(alice, "reloaded-still-signed-in")
    else:
        expect_signed_out(alice)
        expect(todo(alice, secret)).to_have_count(0)
        shots(alice, "reloaded-asked-to-log-in")
        log_in(alice, "alice", FIRST)
        expect(todo(alice, secret)).to_be_visible()
        shots(alice, "logged-in-again")

    # Bob, in another browser context, does not see Alice's private to-do...
    bob_ctx = browser.new_context()
    bob = open_app(bob_ctx, stack.url, errors)
    sign_up(bob, "bob", FIRST, "bob@example.com")
    add_todo(bob, "Walk the dog (bob)")
    expect(todo(bob, secret)).to_have_count(0)
    shots(bob, "bob-cannot-see-private")

    # ...until she makes it public.
    todo(alice, secret).locator("button.make-public").click()
    expect(todo(alice, secret)).to_have_attribute("data-public", "true")
    expect(alice.locator("#message")).to_have_text("The to-do is now public.")
    shots(alice, "made-public")
    add_todo(bob, "Feed the cat (bob)")  # reloads Bob's list
    expect(todo(bob, secret)).to_have_attribute("data-public", "true")
    expect(todo(bob, secret)).to_have_attribute("data-own", "false")
    expect(todo(bob, secret).locator(".todo-owner")).to_have_text("by alice")
    shots(bob, "bob-sees-public")

    # Alice on a second device; changing the password on the first ends that session.
    other_ctx = browser.new_context()
    other = open_app(other_ctx, stack.url, errors)
    log_in(other, "alice", FIRST)
    expect(todo(other, secret)).to_be_visible()
    alice.fill("#change-current", FIRST)
    alice.fill("#change-new", SECOND)
    alice.fill("#change-confirm", SECOND)
    alice.click("#change-submit")
    expect(alice.locator("#message")).to_contain_text("Password changed")
    expect(alice.locator("#message")).to_have_attribute("data-kind", "info")
    add_todo(alice, "Still signed in here")  # the device that changed it keeps working
    shots(alice, "password-changed")
    other.fill("#todo-new", "Written on the old session")
    other.click("#todo-add")
    expect_signed_out(other)
    expect(other.locator("#message")).to_have_attribute("data-kind", "error")
    expect(other.locator("#message")).to_contain_text("session has ended")
    expect(todo(other, "Written on the old session")).to_have_count(0)
    shots(other, "other-device-signed-out")

    # Forgot password: the mail's link opens the reset form; the new password works.
    other.click("summary")
    other.fill("#forgot-username", "alice")
    other.click("#forgot-submit")
    expect(other.locator("#message")).to_contain_text("reset the password is on its way")
    shots(other, "forgot-password-sent")
    link = reset_link(stack, "alice@example.com")
    assert link.startswith(stack.url + "#reset_token=")
    reset = other_ctx.new_page()
    reset.on("pageerror", lambda exc: errors.append(str(exc)))
    reset.goto(link)
    expect(reset.locator("#reset-panel")).to_be_visible()
    expect(reset.locator("#reset-username")).to_have_value("alice")
    assert "reset_token" not in reset.url  # wiped from the address bar and history
    shots(reset, "reset-form")
    reset.fill("#reset-new", THIRD)
    reset.fill("#reset-confirm", THIRD)
    reset.click("#reset-submit")
    expect(reset.locator("#reset-panel")).to_be_hidden()
    expect(reset.locator("#message")).to_contain_text("password has been changed")
    shots(reset, "password-reset")
    if reset.locator("body").get_attribute("data-state") == "signed-in":
        reset.click("#logout")
    expect_signed_out(reset)
    reset.fill("#login-username", "alice")
    reset.fill("#login-password", SECOND)  # the password before the reset
    reset.click("#login-submit")
    expect(reset.locator("#message")).to_have_attribute("data-kind", "error")
    expect(reset.locator("body")).to_have_attribute("data-state", "signed-out")
    log_in(reset, "alice", THIRD)
    expect(todo(reset, secret)).to_be_visible()
    expect(todo(reset, "Still signed in here")).to_be_visible()
    shots(reset, "logged-in-with-new-password")

    # A signed-out visitor sees the public to-do with no owner: no name, and never an internal id.
    visitor_ctx = browser.new_context()
    visitor_console: list[str] = []
    visitor = open_app(visitor_ctx, stack.url, errors, visitor_console)
    expect(todo(visitor, secret)).to_be_visible()
    expect(todo(visitor, secret).locator(".todo-owner")).to_have_count(0)
    shots(visitor, "visitor-sees-public")
    if mode == "cookie":
        # Signing out clears the page's signed-in hint: the next load asks nothing that fails.
        log_in(visitor, "bob", FIRST)
        visitor.click("#logout")
        expect_signed_out(visitor)
        visitor.reload()
        expect(visitor.locator("body")).to_have_attribute("data-ready", "true")
        # A hint left from a session that ended meanwhile costs one failed probe, not one a load.
        visitor.evaluate("localStorage.setItem('postgrest-auth-demo:signed-in', '1')")
        visitor.reload()
        expect(visitor.locator("body")).to_have_attribute("data-ready", "true")
        expect_signed_out(visitor)
        assert len(visitor_console) == 1 and "401" in visitor_console[0], visitor_console
        visitor.reload()
        expect(visitor.locator("body")).to_have_attribute("data-ready", "true")
        assert len(visitor_console) == 1, visitor_console
    else:
        assert visitor_console == [], visitor_console

    provider_ctx = browser.new_context()
    provider_page = sign_in_with_test_oidc(provider_ctx, stack, errors, shots)
    if mode == "cookie":  # the callback set the session cookie
        provider_page.reload()
        expect(provider_page.locator("body")).to_have_attribute("data-ready", "true")
        expect_signed_in(provider_page, "alice@example.test")

    for context in (alice_ctx, bob_ctx, other_ctx, visitor_ctx, provider_ctx):
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture
def supabase_stack() -> Iterator[Stack]:
    require_system_parts()
    with Stack(mode="supabase", bcrypt_rounds=4) as running:
        yield running


def test_supabase_js_mode(supabase_stack: Stack) -> None:
    """The same page on @supabase/supabase-js: the GoTrue API for the session, PostgREST at
    /rest/v1 for the to-dos, the session kept in localStorage across a reload."""
    stack, shots, errors = supabase_stack, Shots("supabase"), []
    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            carol_ctx, visitor_ctx, dave_ctx = (browser.new_context() for _ in range(3))
            console: list[str] = []
            carol = open_app(carol_ctx, stack.url, errors, console)
            expect_signed_out(carol)
            shots(carol, "signed-out")
            sign_up(carol, "carol", FIRST, "carol@example.com")
            add_todo(carol, "Plan the party")
            add_todo(carol, "Secret recipe")
            todo(carol, "Plan the party").locator("button.make-public").click()
            expect(todo(carol, "Plan the party")).to_have_attribute("data-public", "true")
            shots(carol, "todos-added")

            carol.reload()  # supabase-js restores the session from localStorage
            expect(carol.locator("body")).to_have_attribute("data-ready", "true")
            expect_signed_in(carol, "carol")
            expect(todo(carol, "Secret recipe")).to_be_visible()
            shots(carol, "reloaded-still-signed-in")
            assert console == [], console

            # A signed-out visitor sees the public to-do, and no internal id for its owner.
            visitor = open_app(visitor_ctx, stack.url, errors)
            expect(todo(visitor, "Plan the party")).to_be_visible()
            expect(todo(visitor, "Secret recipe")).to_have_count(0)
            expect(todo(visitor, "Plan the party").locator(".todo-owner")).to_have_count(0)
            shots(visitor, "visitor-sees-public")
            # Another user sees the name carol chose at sign-up.
            dave = open_app(dave_ctx, stack.url, errors)
            sign_up(dave, "dave", FIRST, "dave@example.com")
            expect(todo(dave, "Plan the party").locator(".todo-owner")).to_have_text("by carol")
            shots(dave, "dave-sees-carols-name")

            # A new password (no current one: the recent session proves it), then sign-out.
            carol.fill("#change-new", SECOND)
            carol.fill("#change-confirm", SECOND)
            carol.click("#change-submit")
            expect(carol.locator("#message")).to_contain_text("Password changed")
            carol.click("#logout")
            expect_signed_out(carol)
            expect(todo(carol, "Secret recipe")).to_have_count(0)
            carol.reload()
            expect(carol.locator("body")).to_have_attribute("data-ready", "true")
            expect_signed_out(carol)
            carol.fill("#login-username", "carol@example.com")
            carol.fill("#login-password", SECOND)
            carol.click("#login-submit")
            expect_signed_in(carol, "carol")
            shots(carol, "signed-in-with-new-password")

            alice = sign_in_with_test_oidc(browser.new_context(), stack, errors, shots)
            alice.reload()  # supabase-js kept the session it took from the callback
            expect(alice.locator("body")).to_have_attribute("data-ready", "true")
            expect_signed_in(alice, "alice@example.test")
        finally:
            browser.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
