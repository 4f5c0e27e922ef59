"""The Docker Compose stack (docker-compose.yml, the docker-compose.secure.yml overlay and
.env.example) is a valid Compose file and agrees with the code it runs.

No Docker engine is needed: the files are validated against the Compose Specification's
JSON Schema, as shipped by the Go module compose-go (the loader of `docker compose`
itself), fetched at a pinned version through the Go module proxy. The rest reads the files:
every MASH_* variable is a real setting, each healthcheck probes its service's metrics
port, Prometheus scrapes every service, Kafka's version is the local stack's, and the
secured overlay gives each service its own principal and nothing but its own secret.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from deploy.compose.secure_material import BROKER_NAMES, DEFAULT_DIR, TLS_FILES
from deploy.local.config import KAFKA_VERSION
from deploy.local.scram_users import ADMIN_USER, scram_user_names
from services.common.database_roles import SERVICES, load_roles
from services.common.settings import DEFAULT_METRICS_PORTS, Settings, load_settings
from tests.external_tools import go_module_dir

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "docker-compose.yml"
SECURE = ROOT / "docker-compose.secure.yml"
ENV_EXAMPLE = ROOT / ".env.example"

#: compose-go, the Compose Specification's reference loader; its schema/compose-spec.json
#: is the schema `docker compose` validates with.
COMPOSE_GO = "github.com/compose-spec/compose-go/v2"
COMPOSE_GO_VERSION = "v2.16.2"

#: The four services and the lag exporter: the containers Prometheus scrapes.
SCRAPED = (*SERVICES, "lag-exporter")
IMAGE = "mash-router:local"

#: ``${NAME}``, ``${NAME:-default}`` or ``${NAME-default}``.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")
_READYZ = re.compile(r"http://127\.0\.0\.1:(\d+)/readyz")


# ------------------------------------------------------------------------------ loading


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def _variables(text: str) -> dict[str, list[str | None]]:
    """Each interpolated variable of a compose file and the defaults written with it."""
    found: dict[str, list[str | None]] = {}
    for match in _VARIABLE.finditer(text):
        found.setdefault(match.group(1), []).append(match.group(3) if match.group(2) else None)
    return found


def _interpolate(node: Any) -> Any:
    """The document as compose sees it without a .env: every ``${NAME:-default}`` replaced
    by its default (a variable without one would make the file depend on a .env)."""
    if isinstance(node, dict):
        return {key: _interpolate(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value) for value in node]
    if isinstance(node, str):

        def default(match: re.Match[str]) -> str:
            assert match.group(2), f"${{{match.group(1)}}} has no default"
            return match.group(3)

        return _VARIABLE.sub(default, node)
    return node


#: Lists an overlay adds to (compose merges them by target or name); any other list, such
#: as a command or a healthcheck's test, is replaced.
_APPENDED = frozenset({"volumes", "secrets", "ports", "tmpfs"})


def _merge(base: Any, overlay: Any, key: str = "") -> Any:
    """A plain deep merge of a compose overlay onto its base file."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for name, value in overlay.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(overlay, list) and key in _APPENDED:
        return base + [item for item in overlay if item not in base]
    return copy.deepcopy(overlay)


@cache
def _base() -> dict[str, Any]:
    return _load(BASE)


@cache
def _secured() -> dict[str, Any]:
    merged: dict[str, Any] = _merge(_load(BASE), _load(SECURE))
    return merged


def _services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = doc["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {str(name): str(value) for name, value in env.items()}


def _mash_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The containers of the project's image."""
    return {n: s for n, s in _services(doc).items() if s.get("image") == IMAGE}


@cache
def _compose_schema() -> dict[str, Any]:
    path = go_module_dir(COMPOSE_GO, COMPOSE_GO_VERSION) / "schema" / "compose-spec.json"
    schema = json.loads(path.read_text())
    assert isinstance(schema, dict)
    return schema


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = _compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return sorted(
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(doc)
    )


def _docs() -> list[tuple[str, dict[str, Any]]]:
    return [("docker-compose.yml", _base()), ("with docker-compose.secure.yml", _secured())]


# ------------------------------------------------------------------------------ the schema


@pytest.mark.parametrize("which", ["base", "secured"])
def test_compose_files_are_valid_against_the_compose_specification(which: str) -> None:
    doc = _base() if which == "base" else _secured()
    assert _schema_errors(_interpolate(doc)) == []


def test_the_schema_check_catches_a_broken_file() -> None:
    broken = copy.deepcopy(_interpolate(_base()))
    broken["services"]["intake"]["restart"] = ["always"]  # a string, not a list
    broken["services"]["routing"]["depends_on"]["kafka"]["condition"] = "service_ready"
    broken["services"]["screening"]["helthcheck"] = {"test": ["NONE"]}
    errors = _schema_errors(broken)
    assert any(e.startswith("services/intake/restart") for e in errors), errors
    assert any("services/routing/depends_on" in e for e in errors), errors
    assert any(e.startswith("services/screening") and "helthcheck" in e for e in errors), errors


def test_every_variable_has_a_default_and_env_example_lists_it() -> None:
    example: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            example[name.strip()] = value.strip()
    used: dict[str, set[str | None]] = {}
    for path in (BASE, SECURE):
        for name, written in _variables(path.read_text()).items():
            used.setdefault(name, set()).update(written)
    assert used, "no ${...} variables found: is the pattern wrong?"
    for name, defaults in sorted(used.items()):
        assert None not in defaults, f"${{{name}}} needs a default (${{{name}:-...}})"
        assert name in example, f"{name} is read by compose but not listed in .env.example"
        assert defaults == {example[name]}, (
            f"{name}: compose's default {sorted(d or '' for d in defaults)} differs from"
            f" .env.example's {example[name]!r}"
        )
    unread = sorted(set(example) - set(used))
    assert unread == [], f".env.example lists variables compose never reads: {unread}"


# ------------------------------------------------------------------------------ the settings


def _setting_variables() -> set[str]:
    """Every environment variable the settings object reads."""
    names = {f"MASH_{field.upper()}" for field in Settings.model_fields}
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        choices = getattr(alias, "choices", [alias] if isinstance(alias, str) else [])
        names.update(str(choice) for choice in choices)
    return names


def test_setting_variables_include_the_aliases() -> None:
    names = _setting_variables()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "MASH_METRICS_PORT"} <= names
    assert "MASH_NO_SUCH_SETTING" not in names


@pytest.mark.parametrize(("label", "doc"), _docs(), ids=["base", "secured"])
def test_every_mash_variable_is_a_setting(label: str, doc: dict[str, Any]) -> None:
    known = _setting_variables()
    aliases = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
    for name, service in _mash_services(doc).items():
        for variable in _environment(service):
            if variable.startswith("MASH_") or variable in aliases:
                assert variable in known, f"{label}: {name} sets {variable}, not a setting"


def test_the_base_settings_load() -> None:
    """Each container's settings are accepted as the service would read them."""
    for name, service in _mash_services(_interpolate(_base())).items():
        env = _environment(service)
        settings = load_settings(**env)
        if name == "migrate":
            assert urlsplit(settings.database_url).hostname == "postgres"
            continue
        assert settings.bootstrap_list == ["kafka:9092"], name
        if name in SCRAPED:
            assert settings.create_topics is False, f"{name}: the topics job creates them"


# ------------------------------------------------------------------------------ the services


def _probe_port(service: dict[str, Any]) -> int:
    test = service["healthcheck"]["test"]
    assert test[:2] == ["CMD", "/opt/mash/bin/python"], test
    match = _READYZ.search(test[-1])
    assert match, f"the healthcheck does not ask /readyz: {test}"
    return int(match.group(1))


def _metrics_port(name: str, service: dict[str, Any]) -> int:
    env = _environment(service)
    if name == "lag-exporter":
        default = Settings.model_fields["lag_exporter_port"].default
        return int(env.get("MASH_LAG_EXPORTER_PORT", default))
    return int(env.get("MASH_METRICS_PORT", DEFAULT_METRICS_PORTS[name]))


@pytest.mark.parametrize(("label", "doc"), _docs(), ids=["base", "secured"])
def test_each_healthcheck_probes_the_services_metrics_port(label: str, doc: dict[str, Any]) -> None:
    services = _services(doc)
    for name in SCRAPED:
        service = services[name]
        port = _metrics_port(name, service)
        assert _probe_port(service) == port, f"{label}: {name}'s healthcheck is not on {port}"
        published = [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
        assert published == [str(port)], f"{label}: {name} publishes {published}, not {port}"
        assert service.get("restart") == "unless-stopped", f"{label}: {name} is not restarted"
    assert set(SCRAPED) == {n for n, s in _mash_services(doc).items() if "healthcheck" in s}, (
        "a container of the image with a healthcheck is missing from SCRAPED"
    )


def test_the_services_run_the_image_read_only_with_their_own_data_volume() -> None:
    doc = _base()
    volumes = doc["volumes"]
    seen = set()
    for name in SERVICES:
        service = _services(doc)[name]
        assert service["command"] == [name]
        assert service["read_only"] is True, name
        data_dir = _environment(service)["MASH_DATA_DIR"]
        mounts = [str(v).split(":") for v in service["volumes"]]
        sources = [source for source, target, *_ in mounts if target == data_dir]
        assert len(sources) == 1, f"{name}: not one volume at {data_dir}"
        assert sources[0] in volumes, f"{name}: {sources[0]} is not a named volume"
        seen.add(sources[0])
    assert len(seen) == len(SERVICES), "two services share a Faust data volume"


def test_start_up_order() -> None:
    services = _services(_base())
    for name in SERVICES:
        after = services[name]["depends_on"]
        assert after["kafka"]["condition"] == "service_healthy"
        for job in ("migrate", "db-logins", "topics"):
            assert after[job]["condition"] == "service_completed_successfully", (name, job)
    assert services["migrate"]["command"] == ["db", "migrate"]
    assert services["topics"]["command"] == ["topics", "--apply"]
    assert services["db-logins"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["simulator"]["profiles"] == ["simulate"]
    assert "--to-kafka" in services["simulator"]["command"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on a missing {dependency}"


def test_the_lag_exporter_runs_without_the_database() -> None:
    """It reads offsets from the broker only: a database outage must not take it down."""
    exporter = _services(_base())["lag-exporter"]
    assert exporter["command"] == ["lag-exporter"]
    assert set(exporter["depends_on"]) == {"kafka", "topics"}
    assert "DATABASE_URL" not in _environment(exporter)


def test_kafka_image_is_the_local_stacks_version() -> None:
    for label, doc in _docs():
        assert _services(doc)["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}", label


def test_each_service_logs_in_to_postgres_as_its_own_role() -> None:
    """Least privilege: mash_<service>_login, a member of the roles file's mash_<service>,
    made by the db-logins job; only the migrate job uses the superuser."""
    roles = {role.role: role.service for role in load_roles().roles}
    script = (ROOT / "deploy" / "compose" / "db-logins.sh").read_text()
    listed = re.search(r"^for service in ([a-z ]+); do$", script, re.MULTILINE)
    assert listed, "db-logins.sh: its loop over the services is not found"
    assert tuple(listed.group(1).split()) == SERVICES
    services = _services(_interpolate(_base()))
    for name in SERVICES:
        url = urlsplit(_environment(services[name])["DATABASE_URL"])
        assert url.username == f"mash_{name}_login", name
        assert roles.get(f"mash_{name}") == name, f"mash_{name} is not {name}'s role"
    migrate = urlsplit(_environment(services["migrate"])["DATABASE_URL"])
    assert migrate.username == services["postgres"]["environment"]["POSTGRES_USER"]


# ------------------------------------------------------------------------------ monitoring


def _mount(service: dict[str, Any], target: str) -> Path:
    for volume in service["volumes"]:
        source, mounted, *_ = str(volume).split(":")
        if mounted == target:
            assert source.startswith("./"), f"{target} is not a bind mount of the repository"
            path = ROOT / source
            assert path.exists(), f"{source} (mounted at {target}) does not exist"
            return path
    raise AssertionError(f"nothing is mounted at {target}")


def test_prometheus_scrapes_every_service_by_its_compose_name() -> None:
    doc = _base()
    prometheus = _services(doc)["prometheus"]
    config_path = _mount(prometheus, "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load(config_path.read_text())
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    targets = {
        target: group["labels"]["service"]
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    services = _services(doc)
    wanted = {f"{name}:{_metrics_port(name, services[name])}": name for name in SCRAPED}
    assert targets == wanted
    # The rules load from the shipped folder, mounted beside the config.
    rules = _mount(prometheus, "/etc/prometheus/rules")
    assert rules == ROOT / "deploy" / "prometheus" / "rules"
    assert config["rule_files"] == ["rules/*.yml"]
    assert list(rules.glob("*.yml"))


def test_compose_prometheus_config_is_the_shipped_one_but_for_the_targets() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    shipped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    for job in shipped["scrape_configs"]:
        for group in job["static_configs"]:
            ports = [t.rsplit(":", 1)[1] for t in group["targets"]]
            group["targets"] = [f"{group['labels']['service']}:{port}" for port in ports]
    assert compose == shipped


def test_grafana_provisions_the_dashboard_and_the_compose_prometheus() -> None:
    doc = _base()
    grafana = _services(doc)["grafana"]
    providers = yaml.safe_load(
        _mount(grafana, "/etc/grafana/provisioning/dashboards/mash.yml").read_text()
    )
    for provider in providers["providers"]:
        dashboards = _mount(grafana, provider["options"]["path"])
        assert list(dashboards.glob("*.json")), f"no dashboard in {dashboards}"
    datasource_file = _mount(grafana, "/etc/grafana/provisioning/datasources/mash.yml")
    compose = yaml.safe_load(datasource_file.read_text())
    shipped = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/mash.yml").read_text()
    )
    (source,) = compose["datasources"]
    port = str(_services(doc)["prometheus"]["ports"][0]).rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{port}"
    shipped["datasources"][0]["url"] = source["url"]
    assert compose == shipped, "keep the compose data source as the shipped one, but its url"


# ------------------------------------------------------------------------------ secured


def test_secured_clients_each_log_in_as_their_own_principal() -> None:
    doc = _secured()
    secrets = doc["secrets"]
    principals = set(scram_user_names())
    users = {}
    for name, service in _mash_services(doc).items():
        env = _environment(service)
        if name in ("migrate", "acls"):  # no Kafka; acls logs in by its options (below)
            continue
        assert env["MASH_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["MASH_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert "MASH_KAFKA_SASL_PASSWORD" not in env, f"{name}: a password in the environment"
        user = env["MASH_KAFKA_SASL_USERNAME"]
        assert user in principals, f"{name} logs in as {user}, who has no SCRAM user"
        users[name] = user
        granted = set(service["secrets"])
        for variable in ("MASH_KAFKA_SASL_PASSWORD_FILE", "MASH_KAFKA_SSL_CA_FILE"):
            secret = env[variable].removeprefix("/run/secrets/")
            assert env[variable] == f"/run/secrets/{secret}", f"{name}: {variable}"
            assert secret in granted, f"{name}: {variable} is not one of its secrets"
        assert secrets[env["MASH_KAFKA_SSL_CA_FILE"].removeprefix("/run/secrets/")] == {
            "file": f"./{(DEFAULT_DIR / 'tls' / 'ca.pem').relative_to(ROOT)}"
        }
        password = env["MASH_KAFKA_SASL_PASSWORD_FILE"].removeprefix("/run/secrets/")
        assert secrets[password] == {
            "file": f"./{(DEFAULT_DIR / 'credentials' / f'{user}.password').relative_to(ROOT)}"
        }, f"{name}'s password secret is not {user}'s"
        # Nothing but its own password and the CA.
        assert granted == {password, "kafka-ca"}, f"{name} has secrets it does not use"
    # The services and the lag exporter under their own names; the operator's jobs as admin.
    assert {n: users[n] for n in SCRAPED} == {n: n for n in SCRAPED}
    assert users["topics"] == users["simulator"] == ADMIN_USER
    for name in SCRAPED:
        after = _services(doc)[name]["depends_on"]
        assert after["acls"]["condition"] == "service_completed_successfully", name


def test_secured_broker_mounts_what_secure_material_makes() -> None:
    kafka = _services(_secured())["kafka"]
    material = f"./{DEFAULT_DIR.relative_to(ROOT)}"
    for volume in kafka["volumes"]:
        source, target, *_ = str(volume).split(":")
        if source.startswith(material):
            inside = source.removeprefix(material + "/")
            assert inside == "credentials" or inside.removeprefix("tls/") in TLS_FILES, source
            assert target.startswith("/etc/kafka/mash/"), target
        elif source.startswith("./"):
            assert (ROOT / source).exists(), source
    assert kafka["command"] == ["/bin/bash", "/etc/kafka/mash/kafka-secure.sh"]
    assert "dns:kafka" in BROKER_NAMES.split(","), "clients reach the broker as kafka"
    script = (ROOT / "deploy" / "compose" / "kafka-secure.sh").read_text()
    assert "super.users=User:broker;User:admin" in script
    assert "allow.everyone.if.no.acl.found=false" in script


def test_acls_job_applies_the_principals_file_as_admin() -> None:
    acls = _services(_secured())["acls"]
    assert acls["entrypoint"][-2:] == ["-m", "deploy.security.acls"]
    command = acls["command"]
    assert command[0] == "apply"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--username"] == ADMIN_USER
    assert options["--bootstrap-servers"] == "kafka:9092"
    assert _mount(acls, f"{acls['working_dir']}/deploy") == ROOT / "deploy"
