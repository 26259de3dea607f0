"""Settings: defaults < JSON file < environment < command line.

The Node original's `postgrest-auth.json` loads unchanged (its README shows `//` comments, so the
file is read as JSON5). Every key is validated; a wrong one stops start-up with one line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import json5
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_FILE = "postgrest-auth.json"
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """A setting that stops start-up; its message is the one line shown to the operator."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Connection(Section):
    host: str = "localhost"
    port: int = Field(5432, ge=1, le=65535)
    database: str = "postgres"
    user: str = "postgres"
    password: SecretStr | None = None


class Pool(Section):
    min: int = Field(2, ge=0)
    max: int = Field(0, ge=0, description="0 sizes the pool to the machine: 4 per core")


class Database(Section):
    connection: Connection = Connection()
    connection_string: SecretStr | None = None
    pool: Pool = Pool()
    schema_: str = Field("auth", alias="schema", min_length=1, max_length=63)
    table: str = Field("users", min_length=1, max_length=63)
    auto_migrate: bool = True
    command_timeout: float = Field(10.0, gt=0)
    direct_connection_string: SecretStr | None = Field(
        None,
        description="a connection past PgBouncer, for LISTEN and the migration lock;"
        " None: the mail worker polls and migrations take a transaction-level lock",
    )
    statement_cache: bool = Field(
        True,
        description="asyncpg's named prepared statements; false behind PgBouncer older than"
        " 1.21 (or without max_prepared_statements) in transaction mode",
    )
    connect_timeout: float = Field(
        30.0, gt=0, description="seconds start-up retries an unreachable database"
    )
    acquire_timeout: float = Field(
        5.0, gt=0, description="seconds a request waits for a connection before a 503"
    )


class SmtpAuth(Section):
    user: str
    # `pass` is the original's key; it is a Python keyword, hence the alias.
    password: SecretStr = Field(alias="pass")


class Email(Section):
    backend: Literal["smtp", "console", "file"] = "smtp"
    from_: str = Field("postgrest-auth@localhost", alias="from")
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    secure: bool = False
    starttls: bool | None = Field(None, description="None: upgrade when the server offers it")
    auth: SmtpAuth | None = None
    timeout: float = Field(10.0, gt=0)
    validate_certs: bool = True
    ca_file: Path | None = None
    directory: Path = Path(".postgrest-auth/mail")
    templates_dir: Path | None = None
    reset_url: str | None = None
    max_attempts: int = Field(30, ge=1, description="30: about 21 hours of SMTP outage")
    backoff_initial: float = Field(5.0, gt=0)
    backoff_max: float = Field(3600.0, gt=0)
    reset_token_exp: int = Field(3600, ge=60)
    confirm: bool = Field(
        False,
        description="a new address must be confirmed (link or code) before password sign-in,"
        " and a changed address takes effect only when the new one confirms",
    )
    otp_exp: int = Field(3600, ge=1, description="seconds a mailed code or link lives")
    failed_retention: int = Field(
        7, ge=1, description="days before the body of mail that failed for good is erased"
    )
    sent_retention: int = Field(30, ge=1, description="days sent mail is kept in the outbox")
    redirect_url: str | None = Field(
        None,
        description="where GET /verify sends the browser, the session in the URL fragment;"
        " None: it answers the session as JSON",
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_file_loads(cls, value: Path | None) -> Path | None:
        """Refused at start-up, not at the first mail."""
        if value is None:
            return None
        if not value.is_file():
            raise ValueError(
                f"no file at {value}; give the PEM file of the CA that signed the SMTP"
                " server's certificate, or remove the setting"
            )
        try:
            ssl.create_default_context(cafile=str(value))
        except (ssl.SSLError, OSError, ValueError):
            raise ValueError(f"{value} is not a readable PEM certificate file") from None
        return value

    @field_validator("templates_dir")
    @classmethod
    def _templates_dir_exists(cls, value: Path | None) -> Path | None:
        """A misspelt directory would silently send the shipped mails."""
        if value is not None and not value.is_dir():
            raise ValueError(
                f"no directory at {value}; fix the path, or remove the setting to send the"
                " shipped mails"
            )
        return value


class Payload(Section):
    exp: int = Field(604800, ge=60)
    iss: str = "postgrest-auth"


class Roles(Section):
    anonymous: str = Field("web_anon", min_length=1, max_length=63)
    user: str = Field("normal_user", min_length=1, max_length=63)
    authenticator: str = Field("authenticator", min_length=1, max_length=63)
    per_user: bool = False
    service: str = Field(
        "service_role",
        min_length=1,
        max_length=63,
        description="a token with this role may call the admin API (GoTrue's service_role key)",
    )


class SigningKey(Section):
    kid: str = Field(min_length=1)
    algorithm: Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"]
    private_key_file: Path | None = None
    public_key_file: Path | None = None

    @model_validator(mode="after")
    def _key_files_hold_keys(self) -> SigningKey:
        """Each file is read and parsed once here, so a wrong one stops start-up in one line
        instead of failing at the first token."""
        from .jwt_keys import read_key

        for field in ("private_key_file", "public_key_file"):
            path: Path | None = getattr(self, field)
            if path is None:
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ValueError(
                    f"{field}: cannot read {path} ({exc.strerror}); fix the path"
                ) from None
            try:
                key = read_key(self.algorithm, data)
            except ValueError:
                key = None
            private = key is not None and key.is_private
            if key is None or (field == "private_key_file") != private:
                kind = "private" if field == "private_key_file" else "public"
                raise ValueError(
                    f"{field}: {path} is not a PEM {self.algorithm} {kind} key; make one with"
                    " `openssl genpkey` (private) or `openssl pkey -pubout` (public)"
                )
        return self


class Jwt(Section):
    keys: list[SigningKey] = Field(
        default_factory=list,
        description="The first key with a private key signs; every key verifies and is in JWKS",
    )


class Passwords(Section):
    min_bytes: int = Field(8, ge=1)
    max_bytes: int = Field(72, ge=1, le=72)
    bcrypt_rounds: int = Field(10, ge=4, le=20, description="10: as the original and GoTrue")


class Usernames(Section):
    pattern: str = "^[A-Za-z0-9]{3,20}$"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class Sessions(Section):
    lifetime: int = Field(2592000, ge=60, description="seconds a session lives after a refresh")
    timebox: int = Field(
        0, ge=0, description="seconds a session may live in all, however often refreshed; 0: no cap"
    )
    reuse_interval: int = Field(
        10,
        ge=0,
        description="seconds in which an already-rotated refresh token may be presented again"
        " (two tabs); later reuse ends the whole session",
    )
    cleanup_interval: float = Field(3600.0, gt=0)


class Cookie(Section):
    enabled: bool = False
    name: str = Field("session_token", pattern=r"^[A-Za-z0-9_\-]+$")
    secure: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"
    domain: str | None = None
    path: str = "/"
    max_age: int | None = Field(None, ge=60, description="None: the session lifetime")


class Limit(Section):
    requests: int = Field(ge=1)
    window: int = Field(ge=1, description="seconds")


class RateLimits(Section):
    enabled: bool = True
    per_address: Limit = Limit(requests=60, window=60)
    per_account: Limit = Limit(requests=10, window=300)
    email_sent: Limit = Field(
        Limit(requests=5, window=3600),
        description="mails carrying a secret, per kind, per recipient address and per account",
    )
    verify: Limit = Field(
        Limit(requests=20, window=3600),
        description="wrong codes per address and per account; then even the right one waits",
    )


class Audit(Section):
    retention_days: int = Field(90, ge=1, description="days security events are kept")


class Http(Section):
    max_body_bytes: int = Field(65536, ge=1024)
    cors_origins: list[str] = Field(default_factory=list)
    client_address_header: str | None = Field(
        None, description="e.g. X-Real-IP; trusted only from trusted_proxies"
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"], description="addresses or networks (CIDR)"
    )

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        # Credentials are allowed, so "*" would let every site read tokens: list the origins.
        if "*" in value:
            raise ValueError('"*" is refused with credentials; list the frontend origins')
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a network") from None
        return value

    def is_trusted_proxy(self, address: str | None) -> bool:
        if address is None:
            return False
        ip = ipaddress.ip_address(address)
        networks = (ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)
        return any(ip in network for network in networks)


class Gotrue(Section):
    """The GoTrue-compatible API under `{prefix}/v1`, for the Supabase client libraries."""

    enabled: bool = True
    site_url: str | None = Field(
        None, description="where mailed links send the browser when no redirect_to is given"
    )
    redirect_urls: list[str] = Field(
        default_factory=list,
        description="allowed redirect_to targets: exact URLs, or globs where * stays within a"
        " host label or path segment and ** crosses them (https://*.example.com/**)",
    )
    aud: str = Field("authenticated", min_length=1, description="the access tokens' aud claim")

    @field_validator("site_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/?#\s]+", value):
            raise ValueError("must be an absolute http(s) URL")
        return value


ProviderKind = Literal["oidc", "github", "google", "gitlab"]


class Provider(Section):
    """An external identity provider users may sign in with (`providers.<name>`)."""

    kind: ProviderKind
    enabled: bool = True
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = Field(None, description="a file holding the secret")
    client_secret_env: str | None = Field(
        None, description="an environment variable holding the secret"
    )
    issuer: str | None = Field(
        None,
        description="OpenID issuer for discovery; google and gitlab have theirs by default",
    )
    scopes: list[str] | None = Field(None, description="None: the kind's usual scopes")
    url: str | None = Field(None, description="github: the web base (GitHub Enterprise)")
    api_url: str | None = Field(None, description="github: the REST API base")
    display_name: str | None = Field(None, description="the button's label in a frontend")

    @field_validator("issuer", "url", "api_url")
    @classmethod
    def _https_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """https, but on this machine: the client secret and the signing keys travel here.
        An issuer stays as written, since id_tokens must name it exactly (Auth0's ends in /)."""
        if value is None:
            return None
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError("must be an absolute https URL without query or fragment")
        parts = urlsplit(value)
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            raise ValueError("must be https (http only for localhost)")
        return value if info.field_name == "issuer" else value.rstrip("/")


class Mfa(Section):
    """Second factors (TOTP) for the accounts that enrol one."""

    enabled: bool = True
    issuer: str | None = Field(None, description="the name authenticator apps show; None: the host")
    max_factors: int = Field(10, ge=1, description="factors (verified or not) a user may have")
    challenge_seconds: int = Field(300, ge=30, description="how long a challenge may be answered")
    failures: Limit = Field(
        Limit(requests=5, window=300), description="wrong codes per factor in a window"
    )


class Log(Section):
    format: Literal["json", "text"] | None = Field(None, description="None: json, text under --dev")


class Metrics(Section):
    enabled: bool = Field(True, description="GET /metrics for Prometheus, outside the prefix")


class Settings(BaseSettings):
    """Every knob of the service. Field names follow the original's JSON keys."""

    model_config = SettingsConfigDict(
        env_prefix="POSTGREST_AUTH_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    app_name: str = "postgrest-auth"
    host: str = "127.0.0.1"
    port: int = Field(3001, ge=0, le=65535)
    workers: int = Field(1, ge=1, description="processes serving requests; mail and sweeping too")
    prefix: str = Field("/auth", pattern=r"^(/[A-Za-z0-9_\-.]+)*$")
    public_url: str | None = Field(
        None,
        description="where clients reach the service (scheme, host, port), for links in mail;"
        " None: http://{host}:{port}",
    )
    secret: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log: Log = Log()
    metrics: Metrics = Metrics()
    shutdown_timeout: float = Field(
        15.0, gt=0, description="seconds SIGTERM waits for accepted requests before exiting"
    )
    db: Database = Database()
    email: Email = Email()
    payload: Payload = Payload()
    roles: Roles = Roles()
    jwt: Jwt = Jwt()
    passwords: Passwords = Passwords()
    usernames: Usernames = Usernames()
    sessions: Sessions = Sessions()
    cookie: Cookie = Cookie()
    rate_limit: RateLimits = RateLimits()
    audit: Audit = Audit()
    http: Http = Http()
    gotrue: Gotrue = Gotrue()
    providers: dict[str, Provider] = Field(default_factory=dict)
    mfa: Mfa = Mfa()

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError("must be an absolute http(s) URL without query or fragment")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Command line (init values) above environment above the JSON file.
        if not _read_environ.get():  # load_settings(environ=False): tests, embedding
            return (init_settings, _FileSource(settings_cls))
        return (init_settings, env_settings, _FileSource(settings_cls))

    def dsn(self) -> str:
        if self.db.connection_string is not None:
            return self.db.connection_string.get_secret_value()
        c = self.db.connection
        password = c.password.get_secret_value() if c.password else ""
        auth = quote(c.user, safe="") + (":" + quote(password, safe="") if password else "")
        return f"postgresql://{auth}@{c.host}:{c.port}/{quote(c.database, safe='')}"

    def pool_max(self) -> int:
        return self.db.pool.max or 4 * (os.cpu_count() or 1)


_file_values: ContextVar[dict[str, Any] | None] = ContextVar("file_values", default=None)
_read_environ: ContextVar[bool] = ContextVar("read_environ", default=True)


class _FileSource(PydanticBaseSettingsSource):
    """The parsed `postgrest-auth.json`, lowest of the sources that are not defaults."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_file_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_values.get() or {})


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse JSON with the `//` comments the original's README shows."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read the file ({exc.strerror})") from None
    try:
        data = json5.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--config {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: the top level must be an object")
    return data


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        return f"{location}: unknown setting (remove it, or check its spelling)"
    hidden = any(word in location for word in ("secret", "password", "pass", "connection_string"))
    shown = "" if hidden or isinstance(value, dict) else f" (got {value!r})"
    return f"{location}: {error['msg']}{shown}"


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    environ: bool = True,
) -> Settings:
    """Build Settings from every source, refusing a bad one with a single line.

    `environ=False` (tests, embedding) reads neither the environment nor ./postgrest-auth.json.
    """
    file_values: dict[str, Any] = {}
    if environ and config_file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        config_file = Path(DEFAULT_CONFIG_FILE)
    if config_file is not None:
        file_values = read_config_file(config_file)
    if environ and "PORT" in os.environ and "POSTGREST_AUTH_PORT" not in os.environ:
        file_values["port"] = os.environ["PORT"]  # the original's variable, below our own
    source = f" (from {config_file}, POSTGREST_AUTH_* or flags)" if config_file else ""
    token = _file_values.set(file_values)
    environ_token = _read_environ.set(environ)
    try:
        if environ:
            settings = Settings(**(overrides or {}))
        else:
            settings = Settings.model_validate(deep_merge(file_values, overrides or {}))
    except ValidationError as exc:
        raise ConfigError(f"setting {_describe(exc.errors()[0])}{source}") from None
    finally:
        _file_values.reset(token)
        _read_environ.reset(environ_token)
    check_secret(settings)
    check_providers(settings)
    return settings


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`, nested objects merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check_secret(settings: Settings) -> None:
    """Something must sign; PostgREST refuses a jwt-secret under 32 characters, so we do too."""
    keys = settings.jwt.keys  # each key file was read and parsed by SigningKey
    how = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
    if settings.secret is None:
        if any(key.private_key_file for key in keys):
            return
        if keys:
            raise ConfigError(
                "setting jwt.keys: no key has a private_key_file, and there is no secret either"
            )
        raise ConfigError(f"setting secret: missing; {how}")
    if len(settings.secret.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"setting secret: shorter than {MIN_SECRET_LENGTH} characters, which PostgREST "
            f"refuses as jwt-secret; {how}"
        )


PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
# Names GoTrue gives its own sign-in methods: an identity's provider must not pose as one.
RESERVED_PROVIDER_NAMES = {"email", "phone", "anonymous", "sso"}


def provider_secret(name: str, provider: Provider) -> str:
    """The client secret from exactly one of client_secret, client_secret_file and
    client_secret_env; refused with one line otherwise. Read at start-up, kept in memory."""
    given = [
        key
        for key in ("client_secret", "client_secret_file", "client_secret_env")
        if getattr(provider, key) is not None
    ]
    where = f"setting providers.{name}"
    if len(given) != 1:
        raise ConfigError(
            f"{where}: give exactly one of client_secret, client_secret_file, client_secret_env"
            f" (got {', '.join(given) or 'none'})"
        )
    if provider.client_secret is not None:
        return provider.client_secret.get_secret_value()
    if provider.client_secret_file is not None:
        try:
            secret = provider.client_secret_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{where}.client_secret_file: cannot read {provider.client_secret_file}"
                f" ({exc.strerror})"
            ) from None
    else:
        secret = os.environ.get(provider.client_secret_env or "", "").strip()
    if not secret:
        raise ConfigError(f"{where}: the client secret is empty; put it where {given[0]} says")
    return secret


def check_providers(settings: Settings) -> None:
    for name, provider in settings.providers.items():
        if not PROVIDER_NAME.match(name) or name in RESERVED_PROVIDER_NAMES:
            raise ConfigError(
                f"setting providers.{name}: name it with lowercase letters, digits, - and _"
                f" (not {', '.join(sorted(RESERVED_PROVIDER_NAMES))})"
            )
        if provider.kind == "oidc" and provider.issuer is None:
            raise ConfigError(
                f"setting providers.{name}.issuer: missing; an oidc provider needs its issuer"
                " URL (where /.well-known/openid-configuration is served)"
            )
        provider_secret(name, provider)
