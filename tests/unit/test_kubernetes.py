"""The Kubernetes manifests (deploy/k8s): rendered with kustomize, every object validated
against the Kubernetes API's JSON Schemas and prometheus-operator's CRD schemas, strictly
(an unknown field is refused), and held to the deployment's rules: locked-down
containers, probes on the metrics port, resources, a PodDisruptionBudget, a Service and
NetworkPolicies for every Deployment, replicas within the partitions, settings every
process accepts, the secured overlay's principals, and a PrometheusRule that is the alert
rules file.

The tools come from registries the project reaches, at pinned versions: kustomize and
prometheus-operator's CRDs from the Go module proxy (tests/external_tools.py, cached in
.run/tools and Go's module cache), the Kubernetes schemas from the PyPI package
kubernetes-validate (a dev dependency). A tool that cannot be had fails the test, naming why.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from deploy.k8s import prometheus_rule
from deploy.security import principals
from services.common.settings import DEFAULT_METRICS_PORTS, Settings, env_var, load_settings
from tests.external_tools import REPO, ToolUnavailable, go_binary, go_module_dir

K8S = REPO / "deploy" / "k8s"
KUSTOMIZATIONS = {"base": K8S / "base", "secured": K8S / "overlays" / "secured"}
#: Example Secrets (placeholders, never applied) each kustomization's references must match.
EXAMPLE_SECRETS = {
    "base": (K8S / "base" / "secrets.example.yaml",),
    "secured": (
        K8S / "base" / "secrets.example.yaml",
        K8S / "overlays" / "secured" / "secrets.example.yaml",
    ),
}

#: kustomize: v5.7.1 builds with Go 1.22.7 and later (v5.8.2 needs Go 1.26, v5.8.3 1.27).
KUSTOMIZE = ("sigs.k8s.io/kustomize/kustomize/v5", "v5.7.1", "kustomize")
#: The CRDs (example/prometheus-operator-crd) of ServiceMonitor and PrometheusRule.
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
#: Kubernetes versions the manifests must be valid for (kubernetes-validate's schemas).
K8S_VERSIONS = ("1.30.0", "1.37.0")
CRD_GROUP = "monitoring.coreos.com"
#: The $id of kubernetes-validate's shared definitions.
DEFINITIONS = "https://kubernetes.io/api/_definitions.json"

#: Every long-running process: its Deployment's name label and its metrics port.
PROCESSES = {
    **DEFAULT_METRICS_PORTS,
    "lag-exporter": Settings.model_fields["lag_exporter_port"].default,
}
#: The processes that log in to PostgreSQL (the lag exporter uses no database).
DATABASE_USERS = {"intake", "screening", "routing", "notifications", "migrate"}
PART_OF = {"app.kubernetes.io/part-of": "mash-router"}
UID = 10001
#: The settings' default partitions of every keyed topic.
DEFAULT_PARTITIONS = int(Settings.model_fields["partitions"].default)
DATA_DIR = "/var/lib/mash"
#: Environment variables that are not settings but read by asyncpg (libpq's names).
LIBPQ_VARIABLES = {"PGSSLMODE", "PGSSLROOTCERT"}

Doc = dict[str, Any]


# ---------------------------------------------------------------------------- rendering


@functools.cache
def render(name: str) -> tuple[Doc, ...]:
    """The objects ``kustomize build`` makes of a kustomization."""
    kustomize = go_binary(*KUSTOMIZE)
    done = subprocess.run(
        [str(kustomize), "build", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kustomize build {name} failed: {done.stderr.strip()}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: tuple[Doc, ...]) -> list[Doc]:
    """Deployments and Jobs: everything with a pod template."""
    return [doc for doc in docs if doc["kind"] in ("Deployment", "Job")]


def containers(pod_spec: Doc) -> Iterator[Doc]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec["containers"]


def label_of(doc: Doc) -> str:
    return str(doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"])


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector selects these labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and labels.get(key) in values)
            or (operator == "Exists" and key not in labels)
            or (operator == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def settings_map(docs: tuple[Doc, ...]) -> dict[str, str]:
    maps = [
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("mash-settings-")
    ]
    assert len(maps) == 1, "expected one generated ConfigMap mash-settings-<hash>"
    return dict(maps[0]["data"])


def container_env(container: Doc, docs: tuple[Doc, ...]) -> dict[str, Any]:
    """The container's environment: the ConfigMap it loads, then its own ``env`` (a value,
    or the ``valueFrom`` reference)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(named(docs, "ConfigMap", name)["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def mounted_secret_files(pod_spec: Doc, container: Doc) -> dict[str, tuple[str, str]]:
    """File path -> (Secret, key) for each Secret file mounted into the container."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    files: dict[str, tuple[str, str]] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        assert "items" in secret, f"{container['name']}: mount {mount['name']} lists no items"
        for item in secret["items"]:
            files[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return files


def example_secrets(name: str) -> dict[str, dict[str, str]]:
    """Secret name -> its keys and placeholder values, from the example files."""
    secrets: dict[str, dict[str, str]] = {}
    for path in EXAMPLE_SECRETS[name]:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            secrets[doc["metadata"]["name"]] = dict(doc["stringData"])
    return secrets


def secret_references(docs: tuple[Doc, ...]) -> set[tuple[str, str]]:
    """Every (Secret, key) a container reads, by secretKeyRef or a mounted file."""
    references: set[tuple[str, str]] = set()
    for workload in workloads(docs):
        pod_spec = workload["spec"]["template"]["spec"]
        for container in containers(pod_spec):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    references.add((ref["name"], ref["key"]))
            references.update(mounted_secret_files(pod_spec, container).values())
    return references


# ------------------------------------------------------------------------------ schemas


@functools.cache
def kubernetes_schemas(version: str) -> tuple[Any, Registry[Any]]:
    """The strict JSON Schemas of one Kubernetes version (kubernetes-validate's, whose
    object schemas refuse unknown properties) and a registry of their definitions."""
    try:
        root = importlib.resources.files("kubernetes_validate")
    except ModuleNotFoundError:
        raise ToolUnavailable(
            "kubernetes-validate is not installed: pip install -c constraints.txt -e '.[dev]'"
        ) from None
    folder = root / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not folder.is_dir():
        raise ToolUnavailable(f"kubernetes-validate has no schemas for Kubernetes {version}")
    definitions = json.loads((folder / "_definitions.json").read_text(encoding="utf-8"))
    return folder, Resource.from_contents(definitions) @ Registry()


def kubernetes_validator(doc: Doc, version: str) -> Draft202012Validator:
    folder, registry = kubernetes_schemas(version)
    # kubernetes-validate's file names: apps/v1 -> apps-v1, networking.k8s.io/v1 -> networking-v1
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    schema_file = folder / f"{doc['kind'].lower()}-{api}.json"
    assert schema_file.is_file(), (
        f"no Kubernetes {version} schema for {doc['apiVersion']} {doc['kind']}"
    )
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, registry=registry)


def strict(schema: Doc) -> Doc:
    """An OpenAPI v3 schema of a CRD that refuses unknown fields, as the API server does:
    every object schema with ``properties`` gets ``additionalProperties: false`` unless it
    says otherwise or preserves unknown fields."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {key: strict(value) for key, value in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(item) for item in out[key]]
    return out


@functools.cache
def crd_validator(api_version: str, kind: str) -> Draft202012Validator:
    """The validator of a prometheus-operator kind, from its CRD at the pinned version."""
    module = go_module_dir(*PROMETHEUS_OPERATOR)
    path = module / "example" / "prometheus-operator-crd" / f"{CRD_GROUP}_{kind.lower()}s.yaml"
    assert path.is_file(), f"prometheus-operator {PROMETHEUS_OPERATOR[1]} has no CRD {path.name}"
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert crd["spec"]["names"]["kind"] == kind
    for version in crd["spec"]["versions"]:
        if f"{crd['spec']['group']}/{version['name']}" == api_version and version["served"]:
            return Draft202012Validator(strict(version["schema"]["openAPIV3Schema"]))
    raise AssertionError(f"the {kind} CRD serves no {api_version}")


def schema_errors(doc: Doc, version: str) -> list[str]:
    """Why ``doc`` does not match its schema (empty when it does)."""
    errors = []
    if doc["apiVersion"].startswith(f"{CRD_GROUP}/"):
        errors += crd_validator(doc["apiVersion"], doc["kind"]).iter_errors(doc)
        # The CRD's metadata is a bare object: hold it to ObjectMeta.
        _, registry = kubernetes_schemas(version)
        meta = {"$ref": f"{DEFINITIONS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
        errors += Draft202012Validator(meta, registry=registry).iter_errors(doc["metadata"])
    else:
        errors += kubernetes_validator(doc, version).iter_errors(doc)
    where = f"{doc['kind']}/{doc['metadata'].get('name')}"
    return [f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


# -------------------------------------------------------------------------------- tests

KUSTOMIZATION_NAMES = pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))


@KUSTOMIZATION_NAMES
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_matches_its_schema(name: str, version: str) -> None:
    docs = render(name)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Job"} <= kinds
    assert {"ConfigMap", "ServiceMonitor", "PrometheusRule"} <= kinds
    errors = [error for doc in docs for error in schema_errors(doc, version)]
    assert errors == []


@pytest.mark.parametrize(
    ("kind", "path", "field"),
    [
        ("Deployment", ("spec", "template", "spec", "containers", 0), "imagePullPolicyy"),
        ("NetworkPolicy", ("spec",), "podSelectorr"),
        ("ServiceMonitor", ("spec", "endpoints", 0), "portt"),
        ("PrometheusRule", ("spec", "groups", 0, "rules", 0), "exprr"),
    ],
)
def test_an_unknown_field_is_refused(kind: str, path: tuple[str | int, ...], field: str) -> None:
    """The validation is strict: a misspelt field (which the API server would drop, or
    refuse) fails it."""
    doc = copy.deepcopy(of_kind(render("base"), kind)[0])
    node: Any = doc
    for step in path:
        node = node[step]
    node[field] = "x"
    assert schema_errors(doc, K8S_VERSIONS[-1]), f"{kind} with {field} was accepted"


@KUSTOMIZATION_NAMES
def test_namespace_agnostic_and_labelled(name: str) -> None:
    for doc in render(name):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert "namespace" not in doc["metadata"], f"{where} names a namespace"
        labels = doc["metadata"].get("labels", {})
        if doc["kind"] != "Secret":
            assert labels.items() >= PART_OF.items(), f"{where} lacks {PART_OF}"


@KUSTOMIZATION_NAMES
def test_containers_are_locked_down(name: str) -> None:
    for workload in workloads(render(name)):
        pod = workload["spec"]["template"]["spec"]
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in containers(pod):
            context = container["securityContext"]
            what = f"{where} container {container['name']}"
            assert context["runAsNonRoot"] is True, what
            assert context["runAsUser"] == UID, what
            assert context["readOnlyRootFilesystem"] is True, what
            assert context["allowPrivilegeEscalation"] is False, what
            assert context["capabilities"] == {"drop": ["ALL"]}, what
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, what
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, what
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{what}: no writable /tmp"


@KUSTOMIZATION_NAMES
def test_processes_serve_probes_on_their_metrics_port(name: str) -> None:
    docs = render(name)
    deployments = {label_of(d): d for d in of_kind(docs, "Deployment")}
    assert set(deployments) == set(PROCESSES)
    for process, port in PROCESSES.items():
        pod = deployments[process]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == [process], f"{process}: the image's first argument"
        assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        env = container_env(container, docs)
        port_variable = (
            "MASH_LAG_EXPORTER_PORT" if process == "lag-exporter" else "MASH_METRICS_PORT"
        )
        assert env[port_variable] == str(port)
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, process
        assert env["MASH_DATA_DIR"] == DATA_DIR
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts[DATA_DIR]], f"{process}: {DATA_DIR} is not writable"


@KUSTOMIZATION_NAMES
def test_migrate_job_migrates_then_applies_topics(name: str) -> None:
    job = named(render(name), "Job", "mash-migrate")
    pod = job["spec"]["template"]["spec"]
    assert [c["args"] for c in pod["initContainers"]] == [["db", "migrate"]]
    assert [c["args"] for c in pod["containers"]] == [["topics", "--apply"]]
    assert pod["restartPolicy"] == "Never"
    (migrate,) = pod["initContainers"]
    assert container_env(migrate, render(name))["DATABASE_URL"] == {
        "secretKeyRef": {"name": "mash-database", "key": "migrator"}
    }


@KUSTOMIZATION_NAMES
def test_replicas_do_not_exceed_partitions(name: str) -> None:
    """A worker beyond the partition count of its input topics holds none."""
    docs = render(name)
    partitions = int(settings_map(docs).get("MASH_PARTITIONS", DEFAULT_PARTITIONS))
    assert partitions == DEFAULT_PARTITIONS, "the ConfigMap's partitions are not the default"
    for deployment in of_kind(docs, "Deployment"):
        replicas = deployment["spec"]["replicas"]
        assert 1 <= replicas <= partitions, f"{deployment['metadata']['name']}: {replicas} replicas"
        # A surge pod during a rollout would be one worker more than the replicas.
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


@KUSTOMIZATION_NAMES
def test_every_deployment_has_a_budget_a_service_and_policies(name: str) -> None:
    docs = render(name)
    policies = of_kind(docs, "NetworkPolicy")
    for workload in workloads(docs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        where = workload["metadata"]["name"]
        applying = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        kinds = {kind for p in applying for kind in p["spec"]["policyTypes"]}
        assert kinds == {"Ingress", "Egress"}, (
            f"{where}: no policy for {kinds ^ {'Ingress', 'Egress'}}"
        )
        assert any(
            p["spec"]["policyTypes"] == ["Ingress", "Egress"]
            and "ingress" not in p["spec"]
            and "egress" not in p["spec"]
            for p in applying
        ), f"{where}: no default-deny policy"
        egress_ports = {
            (port["port"], port.get("protocol", "TCP"))
            for p in applying
            for rule in p["spec"].get("egress", [])
            for port in rule["ports"]
        }
        assert {(53, "UDP"), (53, "TCP")} <= egress_ports, f"{where}: no DNS"
        kafka = int(settings_map(docs)["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
        assert (kafka, "TCP") in egress_ports, f"{where}: cannot reach Kafka on {kafka}"
        assert ((5432, "TCP") in egress_ports) == (label_of(workload) in DATABASE_USERS), where
        if workload["kind"] != "Deployment":
            continue
        budgets = [
            b
            for b in of_kind(docs, "PodDisruptionBudget")
            if selects(b["spec"]["selector"], labels)
        ]
        assert len(budgets) == 1, f"{where}: {len(budgets)} PodDisruptionBudgets"
        services = [
            s
            for s in of_kind(docs, "Service")
            if selects({"matchLabels": s["spec"]["selector"]}, labels)
        ]
        assert len(services) == 1, f"{where}: {len(services)} Services"
        assert services[0]["spec"]["ports"] == [
            {
                "name": "metrics",
                "port": PROCESSES[label_of(workload)],
                "targetPort": "metrics",
                "protocol": "TCP",
            }
        ], f"{where}: its Service is not its metrics port"
        ingress = [rule for p in applying for rule in p["spec"].get("ingress", [])]
        assert ingress == [
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        }
                    }
                ],
                "ports": [{"port": "metrics", "protocol": "TCP"}],
            }
        ], f"{where}: ingress beyond metrics scraping from the monitoring namespace"


@KUSTOMIZATION_NAMES
def test_service_monitor_scrapes_every_service_as_job_mash(name: str) -> None:
    docs = render(name)
    (monitor,) = of_kind(docs, "ServiceMonitor")
    services = of_kind(docs, "Service")
    assert all(selects(monitor["spec"]["selector"], s["metadata"]["labels"]) for s in services)
    assert {s["metadata"]["labels"]["app.kubernetes.io/name"] for s in services} == set(PROCESSES)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    # The alert rules select job="mash" and name the process by the `service` label.
    assert {"action": "replace", "targetLabel": "job", "replacement": "mash"} in endpoint[
        "relabelings"
    ]
    assert {
        "action": "replace",
        "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"],
        "targetLabel": "service",
    } in endpoint["relabelings"]


@KUSTOMIZATION_NAMES
def test_images_come_from_the_kustomization(name: str) -> None:
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text(encoding="utf-8"))
    (image,) = base["images"]
    assert image["name"] == "mash-router"
    for workload in workloads(render(name)):
        for container in containers(workload["spec"]["template"]["spec"]):
            assert container["image"] == f"{image['newName']}:{image['newTag']}"


@KUSTOMIZATION_NAMES
def test_secrets_are_referenced_never_shipped(name: str) -> None:
    """No Secret is rendered; the example files (placeholders only, valid Secrets) name
    exactly the Secrets and keys the containers read."""
    docs = render(name)
    assert of_kind(docs, "Secret") == []
    examples = example_secrets(name)
    defined = {(secret, key) for secret, keys in examples.items() for key in keys}
    assert secret_references(docs) == defined
    for secret, keys in examples.items():
        for key, value in keys.items():
            assert "CHANGE-ME" in value or key == "username", f"{secret}.{key} is not a placeholder"
    kustomization = yaml.safe_load(
        (KUSTOMIZATIONS[name] / "kustomization.yaml").read_text(encoding="utf-8")
    )
    assert not any("example" in resource for resource in kustomization["resources"])
    for path in EXAMPLE_SECRETS[name]:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert schema_errors(doc, K8S_VERSIONS[-1]) == []


@KUSTOMIZATION_NAMES
def test_every_process_accepts_its_settings(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each container's environment names only real settings (or libpq's variables) and
    loads: the Secret files it mounts are written from the examples under tmp_path."""
    docs = render(name)
    examples = example_secrets(name)
    known = {env_var(field) for field in Settings.model_fields}
    for variable in list(os.environ):
        if variable.startswith(("MASH_", "PG")) or variable in known:
            monkeypatch.delenv(variable)
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        for container in containers(pod):
            where = f"{workload['metadata']['name']}/{container['name']}"
            env = container_env(container, docs)
            root = tmp_path / where
            files = {}
            for path, (secret, key) in mounted_secret_files(pod, container).items():
                files[path] = root / path.lstrip("/")
                files[path].parent.mkdir(parents=True, exist_ok=True)
                files[path].write_text(examples[secret][key], encoding="utf-8")
            overrides = {}
            for variable, value in env.items():
                if variable in LIBPQ_VARIABLES:
                    continue
                assert variable in known or variable == "DATABASE_URL", f"{where}: {variable}?"
                if isinstance(value, dict):
                    ref = value["secretKeyRef"]
                    value = examples[ref["name"]][ref["key"]]
                overrides[variable] = str(files.get(value, value))
            settings = load_settings(**overrides)
            assert settings.kafka_security_problem() is None, where


def test_secured_overlay_logs_in_as_each_principal() -> None:
    docs = render("secured")
    config = settings_map(docs)
    assert config["MASH_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["MASH_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    # Services cannot create the product's topics under the ACLs: the Job does, as operator.
    assert config["MASH_CREATE_TOPICS"] == "false"
    assert config["PGSSLMODE"] == "verify-full"
    names = {p.name for p in principals.load().principals if p.kind in ("service", "monitoring")}
    assert names == set(PROCESSES)
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        for container in containers(pod):
            where = f"{workload['metadata']['name']}/{container['name']}"
            env = container_env(container, docs)
            files = mounted_secret_files(pod, container)
            if "DATABASE_URL" in env:
                assert env["PGSSLMODE"] == "verify-full", where
                assert files.get(env["PGSSLROOTCERT"]) == ("mash-postgres-ca", "ca.crt"), where
            if container["args"][0] == "db":
                continue  # db migrate uses no Kafka
            assert files.get(config["MASH_KAFKA_SSL_CA_FILE"]) == ("mash-kafka-ca", "ca.crt"), where
            principal = label_of(workload)
            if principal == "migrate":
                assert env["MASH_KAFKA_SASL_USERNAME"] == {
                    "secretKeyRef": {"name": "mash-kafka-admin", "key": "username"}
                }
                principal = "admin"
            else:
                assert env["MASH_KAFKA_SASL_USERNAME"] == principal, where
                assert principal in names
            password = env["MASH_KAFKA_SASL_PASSWORD_FILE"]
            assert files.get(password) == (f"mash-kafka-{principal}", "password"), where
    # A DSN's own sslmode would win over PGSSLMODE.
    for dsn in example_secrets("secured")["mash-database"].values():
        assert "sslmode" not in dsn
    kafka = named(docs, "NetworkPolicy", "mash-allow-kafka")
    assert kafka["spec"]["egress"] == [{"ports": [{"port": 9093, "protocol": "TCP"}]}]
    assert config["KAFKA_BOOTSTRAP_SERVERS"].endswith(":9093")


def test_prometheus_rule_is_the_alert_rules_file() -> None:
    """deploy/k8s/base/prometheus-rule.yaml is the generator's output for the rules file,
    so the two cannot drift: rerun python -m deploy.k8s.prometheus_rule after a change."""
    committed = prometheus_rule.TARGET.read_text(encoding="utf-8")
    rules_text = prometheus_rule.RULES.read_text(encoding="utf-8")
    assert committed == prometheus_rule.render(rules_text), (
        "stale: python -m deploy.k8s.prometheus_rule"
    )
    rules = yaml.safe_load(rules_text)
    assert yaml.safe_load(committed)["spec"] == rules
    (rendered,) = of_kind(render("base"), "PrometheusRule")
    assert rendered["spec"] == rules
    assert prometheus_rule.main(["--check"]) == 0


def test_prometheus_rule_generator_rewrites_runbook_links(tmp_path: Path) -> None:
    rules_text = prometheus_rule.RULES.read_text(encoding="utf-8")
    text = prometheus_rule.render(rules_text, "https://git.example.org/mash/README.md")
    spec = yaml.safe_load(text)["spec"]
    links = [r["annotations"]["runbook_url"] for g in spec["groups"] for r in g["rules"]]
    assert links
    assert all(link.startswith("https://git.example.org/mash/README.md#") for link in links)
    stale = tmp_path / "stale.yaml"
    stale.write_text(text, encoding="utf-8")
    assert prometheus_rule.main(["--check", "--output", str(stale)]) == 1
