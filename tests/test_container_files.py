"""The Dockerfile and examples/compose.yaml, checked without Docker (none on this machine).

The compose file is validated against the Compose Specification's own JSON Schema (the copy
check-jsonschema ships and keeps current), then checked for what a schema cannot see: every
dependency, volume and network named exists, the instances' environment is a valid configuration
of this service, nginx's upstream names both instances, and no secret is written down."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from postgrest_auth.config import load_settings

from .gotrue_stack import nginx_binary
from .support import Service, free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "examples" / "compose.yaml"
ENV_EXAMPLE = ROOT / "examples" / "compose" / "env.example"
DOCKERFILE = ROOT / "Dockerfile"
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASS$|TOKEN|PRIVATE|_KEY$", re.IGNORECASE)


def compose_schema() -> dict[str, Any]:
    try:
        vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError as exc:
        raise AssertionError(
            "check-jsonschema (it ships the compose-spec schema) is missing: run `make test`"
            " (test extra), or pip install check-jsonschema"
        ) from exc
    return json.loads((vendor / "compose-spec.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """What compose does with ${VAR}, ${VAR:-default} and ${VAR:?message}."""

    def one(match: re.Match[str]) -> str:
        return variables[match.group(1)]

    return VARIABLE.sub(one, value)


def instance_services(compose: dict[str, Any]) -> list[str]:
    """Services built from the Dockerfile that serve (no command: the image's default)."""
    return [
        name
        for name, service in compose["services"].items()
        if "build" in service and "command" not in service
    ]


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    # The schema does catch a mistake: an unknown key in a service.
    broken = json.loads(json.dumps(compose))
    broken["services"]["nginx"]["port"] = ["8080:8080"]
    assert list(validator.iter_errors(broken))


def test_compose_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on with conditions"
        for other, how in depends.items():
            assert other in services, f"{name} depends on {other}, which is not a service"
            assert how["condition"] in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            )
            if how["condition"] == "service_healthy":
                other_service = services[other]
                has_check = "healthcheck" in other_service or "build" in other_service
                assert has_check, f"{name} waits for {other} to be healthy; it has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in (compose.get("volumes") or {}), f"{name}: volume {source}"
        networks = service.get("networks", [])
        for network in networks if isinstance(networks, list) else networks.keys():
            assert network in compose.get("networks", {}), f"{name}: network {network}"
        if "build" in service:
            context = COMPOSE.parent / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE


def test_migrations_run_once_before_every_instance(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    instances = instance_services(compose)
    assert len(instances) == 2, instances
    for name in [*instances, "postgrest"]:
        chain, seen = [name], set()
        while chain:  # migrate completed, directly or through what it waits for
            current = chain.pop()
            seen.add(current)
            chain += [d for d in services[current].get("depends_on", {}) if d not in seen]
        assert "migrate" in seen, f"{name} may start before the migrations"
    for name in instances:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_instances_are_configured_for_pgbouncer(compose: dict[str, Any], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The instances' environment, filled from env.example, is a configuration this service
    loads: every key a real setting, PgBouncer for queries, PostgreSQL directly for LISTEN."""
    variables = env_example()
    for name in instance_services(compose):
        environment = compose["services"][name]["environment"]
        for key in list(os.environ):
            if key.startswith("POSTGREST_AUTH_") or key == "PORT":
                monkeypatch.delenv(key)
        for key, value in environment.items():
            monkeypatch.setenv(key, interpolate(str(value), variables))
        monkeypatch.chdir(COMPOSE.parent)  # no ./postgrest-auth.json there
        settings = load_settings()
        assert "@pgbouncer:" in settings.dsn()
        assert settings.db.direct_connection_string is not None
        assert "@postgres:" in settings.db.direct_connection_string.get_secret_value()
        assert settings.db.statement_cache is False
        assert settings.db.auto_migrate is False
        nginx_address = compose["services"]["nginx"]["networks"]["backend"]["ipv4_address"]
        assert settings.http.is_trusted_proxy(nginx_address)
        assert not settings.http.is_trusted_proxy("10.89.0.7")  # another container is not
    postgrest = compose["services"]["postgrest"]["environment"]
    assert postgrest["PGRST_DB_PREPARED_STATEMENTS"] == "false"
    assert "@pgbouncer:" in postgrest["PGRST_DB_URI"]
    schema, function = postgrest["PGRST_DB_PRE_REQUEST"].split(".")
    pre_request = (ROOT / "sql" / "R_pre_request.sql").read_text()
    assert f"function {{{{schema}}}}.{function}()" in pre_request and schema == "auth"
    pgbouncer = compose["services"]["pgbouncer"]["environment"]
    assert pgbouncer["POOL_MODE"] == "transaction"


def test_no_secret_is_written_down(compose: dict[str, Any]) -> None:
    """Every password and secret is a ${VARIABLE}, and env.example names each variable used."""
    documented = env_example()
    text = COMPOSE.read_text()
    for variable in VARIABLE.findall(text):
        assert variable in documented, f"${{{variable}}} is not in {ENV_EXAMPLE.name}"
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_NAME.search(key):
                assert VARIABLE.fullmatch(value), f"{name}.{key} is written down"
            if "://" in value and "@" in value:  # a password inside a connection string
                credentials = value.split("://", 1)[1].split("@", 1)[0]
                assert ":" not in credentials or VARIABLE.search(credentials), f"{name}.{key}"
    assert all("CHANGE-ME" in documented[k] for k in documented if SECRET_NAME.search(k))


def test_nginx_upstream_names_both_instances(compose: dict[str, Any], tmp_path: Path) -> None:
    mount = next(
        v for v in compose["services"]["nginx"]["volumes"] if v.endswith("/etc/nginx/nginx.conf:ro")
    )
    conf_file = COMPOSE.parent / mount.split(":")[0]
    conf = conf_file.read_text()
    upstream = re.search(r"upstream postgrest_auth \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"server ([\w.-]+):(\d+)", upstream.group(1))
    assert sorted(host for host, _ in servers) == sorted(instance_services(compose))
    assert {port for _, port in servers} == {"3001"}
    assert "proxy_next_upstream error timeout;" in conf
    # nginx itself accepts the file once the service names resolve (here: loopback addresses).
    local = conf
    for index, (host, _) in enumerate(servers):
        local = local.replace(f"server {host}:", f"server 127.0.0.{index + 1}:")
    local = local.replace("server postgrest:", "server 127.0.0.1:")
    (tmp_path / "nginx.conf").write_text(local)
    result = subprocess.run(
        [nginx_binary(), "-t", "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_initdb_script_is_valid_shell() -> None:
    script = ROOT / "examples" / "compose" / "initdb" / "authenticator.sh"
    assert os.access(script, os.X_OK), "the postgres image runs only executable scripts"
    subprocess.run(["sh", "-n", str(script)], check=True)


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, continuation lines joined, grouped by FROM."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        instruction, _, argument = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), argument.strip()))
    return stages


def test_dockerfile_builds_the_wheel_and_runs_unprivileged() -> None:
    build, final = dockerfile_stages()
    assert any(i == "RUN" and "pip wheel" in a for i, a in build)
    assert all(i != "COPY" or not re.search(r"\.env|\.json|secret", a) for i, a in build)
    installs = [a for i, a in final if i == "RUN" and "pip install" in a]
    assert installs and "--no-index" in installs[0]
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert ("EXPOSE", "3001") in final
    assert ("ENTRYPOINT", '["postgrest-auth"]') in final
    env = " ".join(a for i, a in final if i == "ENV")
    assert "POSTGREST_AUTH_HOST=0.0.0.0" in env and "POSTGREST_AUTH_LOG__FORMAT=json" in env
    for instruction, argument in [*build, *final]:
        if instruction in ("ENV", "ARG"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", argument):
                assert not SECRET_NAME.search(name), f"{instruction} {name}: no secret in images"


def healthcheck_command() -> list[str]:
    (_, final) = dockerfile_stages()
    (check,) = [a for i, a in final if i == "HEALTHCHECK"]
    command = check[check.index("CMD") + 3 :].strip()
    return json.loads(command) if command.startswith("[") else shlex.split(command)


def test_healthcheck_passes_on_a_live_service_and_fails_without_one(service: Service) -> None:
    argv = healthcheck_command()
    assert argv[0] == "python"
    env = {"PATH": os.environ["PATH"], "POSTGREST_AUTH_PORT": str(service.port)}
    live = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert live.returncode == 0, live.stderr
    assert httpx.get(service.base + "/health").status_code == 200
    env["POSTGREST_AUTH_PORT"] = str(free_port())  # nothing listens there
    dead = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert dead.returncode != 0
