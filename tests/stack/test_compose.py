"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine needed)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
# Where code reads its environment: the Python packages and the compose entrypoint script.
CODE_DIRS = ("ecm_common", "db", "generator", "exporter", "stack")
CODE_FILES = [p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")] + [
    ROOT / "alertmanager" / "entrypoint.sh"
]
# Option models whose fields are read as ECM_<FIELD> (ecm_common.config.env_values).
SETTINGS_MODULES = ("exporter.config", "generator.config")
_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}")


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever compose syntax it uses."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def bind_sources(svc: dict[str, Any]) -> list[str]:
    """Host paths a service mounts (named volumes left out)."""
    out = []
    for vol in svc.get("volumes", []):
        src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
        if src.startswith((".", "/")):
            out.append(src)
    return out


def settings_fields() -> set[str]:
    """ECM_<FIELD> names of every option model."""
    names = set()
    for mod_name in SETTINGS_MODULES:
        mod = importlib.import_module(mod_name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == mod_name:
                names |= {"ECM_" + f.upper() for f in obj.model_fields}
    return names


def test_services_the_issue_lists() -> None:
    """postgres, schema init, generator, exporter, prometheus, alertmanager, grafana."""
    assert set(SERVICES) == {
        "postgres",
        "db-init",
        "generator",
        "exporter",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert "init-db" in SERVICES["db-init"]["command"]
    gen = SERVICES["generator"]["command"]
    assert gen[:3] == ["python", "-m", "generator"]
    assert gen[gen.index("--metrics-port") + 1] == "9743"
    assert SERVICES["db-init"]["restart"] == "no"


def test_every_mounted_path_exists() -> None:
    """Each bind mount names a file or folder of the repository."""
    for name, svc in SERVICES.items():
        for src in bind_sources(svc):
            assert (ROOT / src).exists(), f"{name} mounts missing {src}"


def test_config_folders_are_the_local_runs() -> None:
    """The tools read the same folders the local run renders from."""
    mounts = {name: bind_sources(svc) for name, svc in SERVICES.items()}
    assert "./prometheus" in mounts["prometheus"]
    assert "./alertmanager" in mounts["alertmanager"]
    assert {"./grafana/provisioning", "./grafana/dashboards"} <= set(mounts["grafana"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    assert SERVICES["alertmanager"]["entrypoint"][-1] == "/etc/alertmanager/entrypoint.sh"


def test_every_image_is_pinned() -> None:
    """A tag on every image, never latest; the versions the tests run against."""
    for name, svc in SERVICES.items():
        image = svc.get("image")
        assert image, f"{name} has no image name"
        repo, sep, tag = image.rpartition(":")
        assert sep and repo and "/" not in tag, f"{name}: untagged image {image}"
        assert tag != "latest", f"{name}: {image}"
        assert re.search(r"\d", tag), f"{name}: {image} is not a version"
    assert SERVICES["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert SERVICES["alertmanager"]["image"] == "prom/alertmanager:v0.25.0"
    assert SERVICES["postgres"]["image"].startswith("postgres:15.")


def test_start_order_follows_health() -> None:
    """Waiting on a service means waiting on its healthcheck or its successful exit."""
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, cond in deps.items():
            assert dep in SERVICES, f"{name} waits for unknown {dep}"
            condition = cond["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}'s health"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {dep}"
                assert SERVICES[dep].get("restart") == "no"
    for name in ("generator", "exporter"):
        assert SERVICES[name]["depends_on"] == {
            "db-init": {"condition": "service_completed_successfully"}
        }


def test_host_ports_are_unique_and_as_documented() -> None:
    """No two services publish the same host port; the ports of docs/CONTRACT.md."""
    host: dict[int, str] = {}
    for name, svc in SERVICES.items():
        for spec in svc.get("ports", []):
            port = int(str(spec).split(":")[-2])
            assert port not in host, f"{name} and {host.get(port)} both publish {port}"
            host[port] = name
    assert host == {
        5433: "postgres",
        9743: "generator",
        9742: "exporter",
        9093: "alertmanager",
        9090: "prometheus",
        3000: "grafana",
    }


def test_named_volumes_are_declared() -> None:
    """State lives in named volumes that the file declares."""
    declared = set(COMPOSE["volumes"])
    used = set()
    for svc in SERVICES.values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith((".", "/")):
                used.add(src)
    assert used == declared
    assert {"postgres-data", "prometheus-data", "alertmanager-data", "grafana-data"} <= declared


def test_every_ecm_variable_is_read_by_the_code() -> None:
    """Each ECM_* name compose sets is an option field or appears literally in the code."""
    code = "\n".join(p.read_text() for p in CODE_FILES)
    fields = settings_fields()
    names = {k for svc in SERVICES.values() for k in environment(svc)}
    names |= {m.group(1) for m in _INTERP.finditer(COMPOSE_TEXT)}
    ecm = {n for n in names if n.startswith("ECM_")}
    assert "ECM_DATABASE_URL" in ecm
    unread = sorted(n for n in ecm if n not in fields and n not in code)
    assert unread == []


def test_env_example_covers_every_required_variable() -> None:
    """Each ${VAR} compose needs has a line in .env.example, and that file sets nothing unused."""
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    required = {
        m.group(1)
        for m in _INTERP.finditer(COMPOSE_TEXT)
        if not (m.group(2) or "").lstrip(":").startswith("-")
    }
    referenced = {m.group(1) for m in _INTERP.finditer(COMPOSE_TEXT)}
    assert required <= example
    assert example <= referenced


@pytest.mark.parametrize(
    "name", ["postgres", "generator", "exporter", "prometheus", "alertmanager", "grafana"]
)
def test_long_running_services_restart_and_are_checked(name: str) -> None:
    """Every long-running service restarts on failure and has a healthcheck."""
    svc = SERVICES[name]
    assert svc["restart"] == "unless-stopped"
    assert svc["healthcheck"]["test"]


def test_dockerfile_is_pinned_installs_the_package_and_drops_root() -> None:
    """A pinned python:3.11 slim base, `pip install .`, a non-root user, existing COPY sources."""
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    (base,) = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    assert any(ln.startswith("RUN pip install .") for ln in lines)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    for ln in lines:
        if ln.startswith("COPY "):
            for src in ln.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored
