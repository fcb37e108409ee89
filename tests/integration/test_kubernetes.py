"""deploy/kubernetes, rendered and checked without a cluster.

No cluster is reachable here, so these tests check everything that can be checked offline:

- every renderer found on the machine (kustomize, installed into .venv/bin by
  deploy/local/install-kustomize.sh, and `kubectl kustomize` when kubectl is installed) renders every overlay,
  alone and with the optional ServiceMonitor component;
- every rendered object validates against the Kubernetes OpenAPI schemas that kubernetes-validate ships, in
  their strict form (unknown fields are errors), for the oldest Kubernetes the manifests support (1.29: native
  sidecars) and the newest the package knows. The ServiceMonitor is a CRD, which no schema package here
  covers: its metadata is checked with Kubernetes' ObjectMeta schema and its spec with SERVICEMONITOR_SPEC, a
  strict subset of the Prometheus Operator's CRD schema (the fields these manifests may use);
- the properties a schema cannot see: every Service selects pods and names their ports, every probe and
  scrape annotation names a port the container has, every referenced Secret and ConfigMap is in the render,
  every PYWHISK_* variable is a setting pywhisk reads, the URLs pywhisk is given point at a Service port,
  the HPA's target exists and has CPU requests, and the controllers' and invokers' ids are their pod ordinals
  (the container's own shell command is run, with a stand-in `pywhisk` that prints its arguments).

Each check is shown to fail on a deliberately broken copy of a real render.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if (path / "kustomization.yaml").is_file())
SERVICEMONITOR = KUBERNETES / "components" / "servicemonitor"
# Native sidecars (the dind overlay) need 1.29; the newest is whatever kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.29.0", latest_version())
NAMESPACE = "pywhisk"
INSTALL_HINT = "deploy/local/install-kustomize.sh (needs Go), or install kubectl"

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


# ---------------------------------------------------------------------------------------------
# Renderers


@dataclass(frozen=True)
class Renderer:
    name: str
    command: tuple[str, ...]

    def render(self, directory: Path) -> list[dict[str, Any]]:
        done = subprocess.run([*self.command, str(directory)], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{self.name} {directory}:\n{done.stderr}"
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def find_renderers() -> list[Renderer]:
    found: list[Renderer] = []
    beside_python = Path(sys.executable).parent / "kustomize"
    kustomize = str(beside_python) if beside_python.is_file() else shutil.which("kustomize")
    if kustomize and (version := _version([kustomize, "version"])):
        found.append(Renderer(f"kustomize {version}", (kustomize, "build")))
    kubectl = shutil.which("kubectl")
    if kubectl and (version := _version([kubectl, "version", "--client"])):
        found.append(Renderer(f"kubectl kustomize ({version})", (kubectl, "kustomize")))
    return found


RENDERERS = find_renderers()


@pytest.fixture(params=RENDERERS or [None], ids=lambda r: r.name.split(" (")[0] if r else "none", scope="module")
def renderer(request: pytest.FixtureRequest) -> Renderer:
    if request.param is None:
        pytest.skip(f"no kustomize and no kubectl on this machine ({INSTALL_HINT})")
    found: Renderer = request.param
    return found


@functools.cache
def render(renderer: Renderer, overlay: str, *, servicemonitor: bool = False) -> tuple[dict[str, Any], ...]:
    """An overlay as the renderer prints it; with ``servicemonitor``, through a kustomization that adds the
    component (in a temporary directory: kustomize loads directories from anywhere, files only from inside)."""
    if not servicemonitor:
        return tuple(renderer.render(KUBERNETES / "overlays" / overlay))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [os.path.relpath(KUBERNETES / "overlays" / overlay, tmp)],
                    "components": [os.path.relpath(SERVICEMONITOR, tmp)],
                }
            )
        )
        return tuple(renderer.render(Path(tmp)))


def objects(renderer: Renderer, overlay: str, servicemonitor: bool = False) -> list[dict[str, Any]]:
    """A copy, for tests that break it."""
    return copy.deepcopy(list(render(renderer, overlay, servicemonitor=servicemonitor)))


# ---------------------------------------------------------------------------------------------
# Schema validation


# The Prometheus Operator's Duration pattern (monitoring.coreos.com_servicemonitors.yaml).
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}
# A strict subset of ServiceMonitor v1's spec: the fields these manifests may use, typed as in the CRD.
SERVICEMONITOR_SPEC: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["endpoints", "selector"],
    "properties": {
        "selector": _LABEL_SELECTOR,
        "namespaceSelector": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
        },
        "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array", "items": {"type": "string"}},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "sampleLimit": {"type": "integer", "minimum": 0},
        "endpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "port": {"type": "string"},
                    "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "path": {"type": "string"},
                    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                    "interval": _DURATION,
                    "scrapeTimeout": _DURATION,
                    "honorLabels": {"type": "boolean"},
                    "params": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
}


def validate_schema(obj: dict[str, Any], version: str) -> None:
    """Raises ValidationError when ``obj`` does not validate against the strict Kubernetes schemas (for the
    ServiceMonitor CRD: Kubernetes' ObjectMeta, and SERVICEMONITOR_SPEC)."""
    if obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor":
        assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, f"ServiceMonitor fields: {sorted(obj)}"
        # Any namespaced kind checks ObjectMeta; a ConfigMap has nothing else that is required.
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}, version, strict=True
        )
        try:
            jsonschema.validate(obj["spec"], SERVICEMONITOR_SPEC)
        except jsonschema.ValidationError as error:
            raise kubernetes_validate.ValidationError(error, version) from error
        return
    kubernetes_validate.validate(obj, version, strict=True)


# ---------------------------------------------------------------------------------------------
# Semantic checks (each raises AssertionError with what is wrong)


def pod_templates(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objs:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]


def containers_of(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def named(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objs if obj["kind"] == kind}


def container_port(container: dict[str, Any], port: int | str) -> int | None:
    """The port number ``port`` (a number or a port name) refers to in ``container``, or None."""
    for declared in container.get("ports", []):
        if port in (declared["containerPort"], declared.get("name")):
            return int(declared["containerPort"])
    return None


def check_namespaces(objs: list[dict[str, Any]]) -> None:
    assert NAMESPACE in named(objs, "Namespace"), f"the render has no Namespace {NAMESPACE}"
    for obj in objs:
        if obj["kind"] not in CLUSTER_SCOPED:
            where = obj["metadata"].get("namespace")
            assert where == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']} is in namespace {where!r}"


def check_services_select_pods(objs: list[dict[str, Any]]) -> None:
    templates = [template for _, template in pod_templates(objs)]
    for name, service in named(objs, "Service").items():
        selector = service["spec"].get("selector") or {}
        assert selector, f"Service {name} selects nothing"
        matching = [t for t in templates if selector.items() <= t["metadata"].get("labels", {}).items()]
        assert matching, f"Service {name}: no pod template has the labels {selector}"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for template in matching:
                found = [c for c in template["spec"]["containers"] if container_port(c, target) is not None]
                assert found, f"Service {name}: pods {template['metadata']['labels']} have no port {target!r}"


def check_probes_and_scrape_ports(objs: list[dict[str, Any]]) -> None:
    for workload, template in pod_templates(objs):
        where = f"{workload['kind']} {workload['metadata']['name']}"
        for container in containers_of(template):
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(probe_name)
                if not probe:
                    continue
                action = probe.get("httpGet") or probe.get("tcpSocket")
                if action is not None:
                    assert container_port(container, action["port"]) is not None, (
                        f"{where} {container['name']} {probe_name}: no port {action['port']!r} in the container"
                    )
                else:
                    assert probe.get("exec"), f"{where} {container['name']} {probe_name} does nothing"
        annotations = template["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            port = int(annotations["prometheus.io/port"])
            assert any(container_port(c, port) for c in template["spec"]["containers"]), (
                f"{where}: prometheus.io/port {port} is no container's port"
            )
            assert annotations.get("prometheus.io/path", "/metrics").startswith("/")


def check_references_exist(objs: list[dict[str, Any]]) -> None:
    existing = {kind: set(named(objs, kind)) for kind in ("Secret", "ConfigMap")}
    for workload, template in pod_templates(objs):
        where = f"{workload['kind']} {workload['metadata']['name']}"
        referenced: list[tuple[str, str]] = []
        for container in containers_of(template):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    referenced.append(("Secret", source["secretRef"]["name"]))
                if "configMapRef" in source:
                    referenced.append(("ConfigMap", source["configMapRef"]["name"]))
            for variable in container.get("env", []):
                value_from = variable.get("valueFrom", {})
                if "secretKeyRef" in value_from:
                    referenced.append(("Secret", value_from["secretKeyRef"]["name"]))
                    key = value_from["secretKeyRef"]["key"]
                    secret = named(objs, "Secret").get(value_from["secretKeyRef"]["name"], {})
                    assert not secret or key in {**secret.get("data", {}), **secret.get("stringData", {})}, (
                        f"{where}: Secret {secret['metadata']['name']} has no key {key!r}"
                    )
                if "configMapKeyRef" in value_from:
                    referenced.append(("ConfigMap", value_from["configMapKeyRef"]["name"]))
        for volume in template["spec"].get("volumes", []):
            if "secret" in volume:
                referenced.append(("Secret", volume["secret"]["secretName"]))
            if "configMap" in volume:
                referenced.append(("ConfigMap", volume["configMap"]["name"]))
        for kind, name in referenced:
            assert name in existing[kind], f"{where} refers to {kind} {name}, which the render does not have"


def known_settings() -> set[str]:
    """Every PYWHISK_* variable a pywhisk process reads: the kernel's settings and each executor's."""
    from executor_docker.settings import DockerSettings
    from executor_wasm.settings import WasmSettings
    from pywhisk.settings import Settings

    names: set[str] = set()
    for model in (Settings, WasmSettings, DockerSettings):
        prefix = str(model.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{field}".upper() for field in model.model_fields}
    return names


def pywhisk_containers(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for workload, template in pod_templates(objs):
        for container in containers_of(template):
            if container["image"].split("/")[-1].split(":")[0] == "pywhisk":
                yield workload, container


def check_pywhisk_settings(objs: list[dict[str, Any]]) -> None:
    known = known_settings()
    config_maps = named(objs, "ConfigMap")
    images = set()
    for workload, container in pywhisk_containers(objs):
        images.add(container["image"])
        variables = {v["name"]: v.get("value") for v in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                variables |= config_maps[source["configMapRef"]["name"]]["data"]
        for variable in variables:
            if variable.startswith("PYWHISK_"):
                assert variable in known, f"{workload['metadata']['name']}: pywhisk reads no {variable}"
        # The addresses pywhisk is given are Services of the render, on ports they have.
        services = named(objs, "Service")
        addresses = [variables.get("PYWHISK_COUCHDB_URL")]
        addresses += (variables.get("PYWHISK_KAFKA_BOOTSTRAP_SERVERS") or "").split(",")
        for address in filter(None, addresses):
            parts = urlsplit(address if "://" in address else f"kafka://{address}")
            host = (parts.hostname or "").split(".")[0]
            assert host in services, f"{workload['metadata']['name']}: {address} names no Service of the render"
            ports = {p["port"] for p in services[host]["spec"]["ports"]}
            assert parts.port in ports, f"{workload['metadata']['name']}: Service {host} has no port {parts.port}"
    assert len(images) == 1, f"the pywhisk roles run different images: {images}"


def check_resources(objs: list[dict[str, Any]]) -> None:
    for workload, template in pod_templates(objs):
        for container in containers_of(template):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            requests = resources.get("requests", {})
            assert {"cpu", "memory"} <= requests.keys(), f"{where} requests {requests}: cpu and memory needed"
            assert "memory" in resources.get("limits", {}), f"{where} has no memory limit"


def check_stateful_sets(objs: list[dict[str, Any]]) -> None:
    services = named(objs, "Service")
    for name, stateful_set in named(objs, "StatefulSet").items():
        governing = stateful_set["spec"]["serviceName"]
        assert governing in services, f"StatefulSet {name}: no Service {governing}"
        assert services[governing]["spec"].get("clusterIP") == "None", (
            f"StatefulSet {name}: its Service {governing} is not headless, so its pods have no stable names"
        )


def check_autoscaler(objs: list[dict[str, Any]]) -> None:
    autoscalers = named(objs, "HorizontalPodAutoscaler")
    assert autoscalers, "no HorizontalPodAutoscaler"
    for name, hpa in autoscalers.items():
        target = hpa["spec"]["scaleTargetRef"]
        workload = named(objs, target["kind"]).get(target["name"])
        assert workload is not None, f"HPA {name} scales {target['kind']} {target['name']}, not in the render"
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert "cpu" in container["resources"]["requests"], f"HPA {name}: {container['name']} requests no cpu"
            env = {v["name"]: v.get("value") for v in container.get("env", [])}
            if "PYWHISK_CONTROLLERS" in env:
                assert env["PYWHISK_CONTROLLERS"] == str(hpa["spec"]["minReplicas"]), (
                    f"PYWHISK_CONTROLLERS={env['PYWHISK_CONTROLLERS']} is not the HPA's minReplicas"
                )


def role_argv(stateful_set: dict[str, Any], ordinal: int, tmp_path: Path) -> list[str]:
    """The arguments pod ``ordinal`` of the StatefulSet gives ``pywhisk``: its container's own command, run by
    /bin/sh with the downward-API variables a pod gets, and a stand-in ``pywhisk`` that prints them."""
    container = stateful_set["spec"]["template"]["spec"]["containers"][0]
    fake = tmp_path / "bin" / "pywhisk"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    for variable in container.get("env", []):
        field = variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field == "metadata.name":
            env[variable["name"]] = f"{stateful_set['metadata']['name']}-{ordinal}"
        elif "value" in variable:
            env[variable["name"]] = str(variable["value"])
    command = [*container.get("command", ["pywhisk"]), *container.get("args", [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def check_stable_ids(objs: list[dict[str, Any]], tmp_path: Path) -> None:
    stateful_sets = named(objs, "StatefulSet")
    for role in ("controller", "invoker"):
        assert role in stateful_sets, f"no StatefulSet {role}: its pods would have no stable ordinal"
        for ordinal in (0, 1, 7):
            argv = role_argv(stateful_sets[role], ordinal, tmp_path)
            assert argv[:1] == [role], f"{role}-{ordinal} runs pywhisk {argv}"
            assert "--id" in argv and argv[argv.index("--id") + 1] == str(ordinal), (
                f"{role}-{ordinal} runs pywhisk {argv}: its id is not its ordinal"
            )


def check_servicemonitors(objs: list[dict[str, Any]]) -> None:
    monitors = named(objs, "ServiceMonitor")
    services = named(objs, "Service")
    for name, monitor in monitors.items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services.values() if selector.items() <= s["metadata"].get("labels", {}).items()]
        assert len(selected) == 1, f"ServiceMonitor {name} selects {[s['metadata']['name'] for s in selected]}"
        assert selected[0]["spec"].get("clusterIP") == "None", f"ServiceMonitor {name}: not a per-pod Service"
        port_names = {p.get("name") for p in selected[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names, f"ServiceMonitor {name}: its Service has no port {endpoint['port']}"


SEMANTIC_CHECKS: list[Callable[[list[dict[str, Any]]], None]] = [
    check_namespaces,
    check_services_select_pods,
    check_probes_and_scrape_ports,
    check_references_exist,
    check_pywhisk_settings,
    check_resources,
    check_stateful_sets,
    check_autoscaler,
    check_servicemonitors,
]


# ---------------------------------------------------------------------------------------------
# The tests


_VALIDATED: set[tuple[str, str]] = set()


@pytest.mark.parametrize("servicemonitor", [False, True], ids=["", "servicemonitor"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_against_the_schemas(
    renderer: Renderer, overlay: str, servicemonitor: bool
) -> None:
    objs = objects(renderer, overlay, servicemonitor)
    kinds = {obj["kind"] for obj in objs}
    assert {"Namespace", "StatefulSet", "Service", "HorizontalPodAutoscaler", "Secret", "ConfigMap"} <= kinds
    assert ("ServiceMonitor" in kinds) == servicemonitor
    for version in KUBERNETES_VERSIONS:
        for obj in objs:
            # The overlays share most objects, and the renderers print the same ones: an object already found
            # valid against this version's schemas need not be validated again (a failure is never cached).
            seen = (version, json.dumps(obj, sort_keys=True))
            if seen in _VALIDATED:
                continue
            try:
                validate_schema(obj, version)
                _VALIDATED.add(seen)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                pytest.fail(f"{obj['kind']} {obj['metadata']['name']} (Kubernetes {version}): {path}: {error.message}")


@pytest.mark.parametrize("servicemonitor", [False, True], ids=["", "servicemonitor"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_hangs_together(renderer: Renderer, overlay: str, servicemonitor: bool, tmp_path: Path) -> None:
    objs = objects(renderer, overlay, servicemonitor)
    for check in SEMANTIC_CHECKS:
        check(objs)
    check_stable_ids(objs, tmp_path)


def test_guest_init_container_creates_the_guest_once(renderer: Renderer, couchdb_url: str) -> None:
    """The controllers' init container, run as rendered (its shell command, the ConfigMap's settings, the
    generated Secret's key) against a real CouchDB-API server: it creates the guest with the Secret's key, and
    a second run (every controller start, a restart) succeeds and changes nothing."""
    from launcher.testing import drop_databases

    objs = objects(renderer, "wasm-only")
    template = named(objs, "StatefulSet")["controller"]["spec"]["template"]
    init = next(c for c in template["spec"]["initContainers"] if c["name"] == "guest")
    secrets = named(objs, "Secret")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(Path.home())}
    for source in init["envFrom"]:
        env |= named(objs, "ConfigMap")[source["configMapRef"]["name"]]["data"]
    for variable in init["env"]:
        ref = variable["valueFrom"]["secretKeyRef"]
        env[variable["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
    prefix = f"k8s_{os.urandom(4).hex()}_"
    env |= {"PYWHISK_COUCHDB_URL": couchdb_url, "PYWHISK_COUCHDB_DB_PREFIX": prefix}
    env.pop("PYWHISK_COUCHDB_USERNAME", None)  # the test server's credentials, if any, are in its URL
    env.pop("PYWHISK_COUCHDB_PASSWORD", None)
    try:
        for attempt in ("first start", "restart"):
            done = subprocess.run(init["command"], env=env, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, f"{attempt}: {done.stdout}{done.stderr}"
        shown = subprocess.run(
            ["pywhisk", "admin", "user", "get", "guest"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        guest_uuid = env["GUEST_AUTH"].split(":")[0]
        assert shown.stdout.split() == ["guest", guest_uuid]
    finally:
        drop_databases(couchdb_url, prefix)


def test_every_overlay_is_tested() -> None:
    assert set(OVERLAYS) == {"wasm-only", "docker-socket", "dind"}


def test_overlays_differ_in_how_invokers_reach_docker(renderer: Renderer) -> None:
    def invoker_pod(overlay: str) -> dict[str, Any]:
        spec: dict[str, Any] = named(objects(renderer, overlay), "StatefulSet")["invoker"]["spec"]["template"]["spec"]
        return spec

    def docker_host(spec: dict[str, Any]) -> str | None:
        invoker = next(c for c in spec["containers"] if c["name"] == "invoker")
        return next((v["value"] for v in invoker.get("env", []) if v["name"] == "DOCKER_HOST"), None)

    def privileged(spec: dict[str, Any]) -> bool:
        return any(c.get("securityContext", {}).get("privileged") for c in containers_of({"spec": spec}))

    wasm = invoker_pod("wasm-only")
    assert docker_host(wasm) is None and not privileged(wasm)
    assert not any("hostPath" in v for v in wasm.get("volumes", []))
    assert wasm["securityContext"]["runAsNonRoot"] is True

    socket = invoker_pod("docker-socket")
    host_paths = [v["hostPath"]["path"] for v in socket["volumes"] if "hostPath" in v]
    assert host_paths == ["/var/run/docker.sock"] and not privileged(socket)
    assert docker_host(socket) == "unix:///var/run/docker.sock"

    dind = invoker_pod("dind")
    assert not any("hostPath" in v for v in dind.get("volumes", []))
    sidecar = next(c for c in dind["initContainers"] if c["name"] == "dind")
    # A native sidecar: started (and its startup probe passed) before the invoker, kept running beside it.
    assert sidecar["restartPolicy"] == "Always" and sidecar["securityContext"]["privileged"] is True
    assert sidecar.get("startupProbe")
    socket_arg = next(arg for arg in sidecar["command"] if arg.startswith("--host=unix://"))
    assert docker_host(dind) == socket_arg.removeprefix("--host=")


# ---------------------------------------------------------------------------------------------
# The checks can fail: each one on a copy of a real render broken on purpose


def _invoker(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return named(objs, "StatefulSet")["invoker"]


def _invoker_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _invoker(objs)["spec"]["template"]["spec"]["containers"][0]
    return container


def _break_selector(objs: list[dict[str, Any]]) -> None:
    named(objs, "Service")["couchdb"]["spec"]["selector"] = {"app.kubernetes.io/name": "couch"}


def _break_probe(objs: list[dict[str, Any]]) -> None:
    _invoker_container(objs)["livenessProbe"]["httpGet"]["port"] = "metrix"


def _break_secret_reference(objs: list[dict[str, Any]]) -> None:
    env = _invoker_container(objs)["env"]
    next(v for v in env if v["name"] == "PYWHISK_COUCHDB_PASSWORD")["valueFrom"]["secretKeyRef"]["name"] = "couchdb"


def _break_setting_name(objs: list[dict[str, Any]]) -> None:
    _invoker_container(objs)["env"].append({"name": "PYWHISK_USER_MEMORY", "value": "2048"})


def _break_couchdb_url(objs: list[dict[str, Any]]) -> None:
    named(objs, "ConfigMap")["pywhisk-config"]["data"]["PYWHISK_COUCHDB_URL"] = "http://couchdb:5985"


def _break_resources(objs: list[dict[str, Any]]) -> None:
    del _invoker_container(objs)["resources"]["limits"]


def _break_autoscaler(objs: list[dict[str, Any]]) -> None:
    named(objs, "HorizontalPodAutoscaler")["controller"]["spec"]["scaleTargetRef"]["kind"] = "Deployment"


def _break_scrape_port(objs: list[dict[str, Any]]) -> None:
    _invoker(objs)["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "9999"


BREAKAGES: dict[str, tuple[Callable[[list[dict[str, Any]]], None], Callable[[list[dict[str, Any]]], None]]] = {
    "service selects no pod": (_break_selector, check_services_select_pods),
    "probe on a port the container lacks": (_break_probe, check_probes_and_scrape_ports),
    "scrape annotation on a port the container lacks": (_break_scrape_port, check_probes_and_scrape_ports),
    "secret not in the render": (_break_secret_reference, check_references_exist),
    "setting pywhisk does not read": (_break_setting_name, check_pywhisk_settings),
    "couchdb url on a port the service lacks": (_break_couchdb_url, check_pywhisk_settings),
    "no memory limit": (_break_resources, check_resources),
    "autoscaler scales nothing": (_break_autoscaler, check_autoscaler),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_semantic_check_rejects_a_broken_render(renderer: Renderer, breakage: str) -> None:
    breaks, check = BREAKAGES[breakage]
    objs = objects(renderer, "wasm-only")
    check(objs)  # the real render passes...
    breaks(objs)
    with pytest.raises(AssertionError):  # ...and the broken one does not
        check(objs)


def test_stable_id_check_rejects_a_fixed_id(renderer: Renderer, tmp_path: Path) -> None:
    objs = objects(renderer, "wasm-only")
    _invoker_container(objs)["command"] = ["/bin/sh", "-c", "exec pywhisk invoker --id 0"]
    with pytest.raises(AssertionError, match="not its ordinal"):
        check_stable_ids(objs, tmp_path)


def test_servicemonitor_check_rejects_a_port_the_service_lacks(renderer: Renderer) -> None:
    objs = objects(renderer, "wasm-only", servicemonitor=True)
    named(objs, "ServiceMonitor")["pywhisk-invoker"]["spec"]["endpoints"][0]["port"] = "http"
    with pytest.raises(AssertionError, match="has no port"):
        check_servicemonitors(objs)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("unknown field", "Additional properties are not allowed"),
        ("port name where a number goes", "is not of type 'integer'"),
        ("required field missing", "'name' is a required property"),
    ],
)
def test_schema_validation_rejects_a_broken_object(renderer: Renderer, breakage: str, expected: str) -> None:
    objs = objects(renderer, "wasm-only")
    invoker = _invoker(objs)
    validate_schema(invoker, KUBERNETES_VERSIONS[-1])  # valid as rendered
    if breakage == "unknown field":
        invoker["spec"]["replica"] = 3
    elif breakage == "port name where a number goes":
        _invoker_container(objs)["ports"][0]["containerPort"] = "metrics"
    else:
        del _invoker_container(objs)["name"]
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        validate_schema(invoker, KUBERNETES_VERSIONS[-1])
    assert expected in caught.value.message


def test_servicemonitor_validation_rejects_an_unknown_field(renderer: Renderer) -> None:
    objs = objects(renderer, "wasm-only", servicemonitor=True)
    monitor = named(objs, "ServiceMonitor")["pywhisk-controller"]
    validate_schema(monitor, KUBERNETES_VERSIONS[-1])
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(kubernetes_validate.ValidationError, match="'intervall' was unexpected"):
        validate_schema(monitor, KUBERNETES_VERSIONS[-1])
    del monitor["spec"]["endpoints"][0]["intervall"]
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(kubernetes_validate.ValidationError, match="does not match"):
        validate_schema(monitor, KUBERNETES_VERSIONS[-1])
