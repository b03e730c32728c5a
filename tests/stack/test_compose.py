"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine needed)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from ecm_common.config import read_yaml
from stack import promconfig
from tests.stack.conftest import env_example

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
# Where code reads its environment: the Python packages.
CODE_DIRS = ("ecm_common", "db", "generator", "exporter", "stack", "pager", "api")
CODE_FILES = [p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")]
# Option models whose fields are read as ECM_<FIELD> (ecm_common.config.env_values).
SETTINGS_MODULES = (
    "exporter.config",
    "generator.config",
    "pager.config",
    "api.config",
    "generator.pm_config",
)
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
        "alertmanager-config",
        "alertmanager",
        "grafana",
        "pager",
        "api",
        "pm-generator",
        "broadcast-sender",
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
    assert "./alertmanager" in mounts["alertmanager-config"]
    # Alertmanager reads the file the one-shot renderer wrote, once it has succeeded.
    assert SERVICES["alertmanager"]["depends_on"] == {
        "alertmanager-config": {"condition": "service_completed_successfully"}
    }
    assert "entrypoint" not in SERVICES["alertmanager"]


def test_api_rules_reach_prometheus() -> None:
    """The API writes its rules file on a volume Prometheus reads through its rule_files glob."""
    cmd = SERVICES["api"]["command"]
    rules_dir = cmd[cmd.index("--rules-dir") + 1]
    assert cmd[cmd.index("--prometheus-url") + 1] == "http://prometheus:9090"
    api_mounts = dict(v.split(":")[:2] for v in SERVICES["api"]["volumes"])
    volume = next(src for src, dst in api_mounts.items() if dst == rules_dir)
    assert volume in COMPOSE["volumes"]
    prom_mounts = {
        src: dst for src, dst, *_ in (v.split(":") for v in SERVICES["prometheus"]["volumes"])
    }
    seen_at = Path(prom_mounts[volume])
    # Prometheus resolves rule_files against the config file's folder, /etc/prometheus.
    globs = read_yaml(promconfig.PROMETHEUS_YML)["rule_files"]
    rules_file = seen_at / "ecm_user_rules.yml"
    assert any(rules_file.match(str(Path("/etc/prometheus", g))) for g in globs)
    # The mount point exists in the read-only ./prometheus mount.
    assert (ROOT / "prometheus" / seen_at.relative_to("/etc/prometheus")).is_dir()


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
        9744: "pager",
        9745: "api",
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
    """Each ECM_* name compose sets is an option field or is named (or built) by the code."""
    code = "\n".join(p.read_text() for p in CODE_FILES)
    fields = settings_fields()
    names = {k for svc in SERVICES.values() for k in environment(svc)}
    names |= {m.group(1) for m in _INTERP.finditer(COMPOSE_TEXT)}
    ecm = {n for n in names if n.startswith("ECM_")}
    assert "ECM_DATABASE_URL" in ecm
    # Names the code builds, such as f"ECM_{role.upper()}_PASSWORD", as patterns.
    built = [
        re.compile(re.sub(r"\\\{[^}]*\\\}", "[A-Z0-9_]+", re.escape(m.group(0))))
        for m in re.finditer(r"ECM_[A-Z0-9_]*\{[^}]*\}[A-Z0-9_]*", code)
    ]
    unread = sorted(
        n
        for n in ecm
        if n not in fields and n not in code and not any(p.fullmatch(n) for p in built)
    )
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
    "name",
    [
        *("postgres", "generator", "exporter", "prometheus", "alertmanager", "grafana", "pager"),
        *("api", "broadcast-sender"),
    ],
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
    assert any(ln.startswith("RUN pip install -c constraints.txt .") for ln in lines)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    for ln in lines:
        if ln.startswith("COPY "):
            for src in ln.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored


# --- the webhook URLs: compose runs the local run's renderer --------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """A compose value with ${VAR}, ${VAR:?msg} and ${VAR:-default} replaced as compose would."""

    def sub(m: re.Match[str]) -> str:
        default = (m.group(2) or "").lstrip(":")
        if m.group(1) in env:
            return env[m.group(1)]
        return default[1:] if default.startswith("-") else ""

    return _INTERP.sub(sub, value)


def host_path(svc: dict[str, Any], inside: str, volumes: dict[str, Path]) -> Path:
    """Where a path inside a service's container lives on this machine, through its mounts."""
    best: tuple[str, Path] | None = None
    for vol in svc.get("volumes", []):
        src, dst = vol.split(":")[:2]
        if (inside == dst or inside.startswith(dst + "/")) and (
            best is None or len(dst) > len(best[0])
        ):
            base = ROOT / src if src.startswith(".") else volumes[src]
            best = (dst, base)
    assert best is not None, f"{inside} is on no mount"
    return best[1] / os.path.relpath(inside, best[0])


def run_renderer(
    tmp_path: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, Path]]:
    """The alertmanager-config service's command, run here with its mounts mapped to folders."""
    svc = SERVICES["alertmanager-config"]
    volumes = {"alertmanager-config": tmp_path / "volume"}
    volumes["alertmanager-config"].mkdir()
    argv = list(svc["command"])
    assert argv[:3] == ["python", "-m", "stack.promconfig"]
    mapped = [sys.executable, *argv[1:3]]
    for arg in argv[3:]:
        name, eq, value = arg.partition("=")
        mapped.append(f"{name}={host_path(svc, value, volumes)}" if eq else arg)
    container_env = {k: interpolate(v, env) for k, v in environment(svc).items()}
    proc = subprocess.run(
        mapped,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **container_env},
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    return proc, volumes


def test_compose_fills_webhook_urls_with_the_local_runs_renderer(tmp_path: Path) -> None:
    """What Alertmanager reads under compose is what the local run renders, URLs and all."""
    env = {
        **env_example(),
        # Characters a shell or YAML substitution would mangle.
        "ECM_PAGER_WEBHOOK_URL": "http://pager:1/hook?a=1&b=2|3&c='q'#x:y",
    }
    proc, volumes = run_renderer(tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    am = SERVICES["alertmanager"]
    (config_flag,) = [a for a in am["command"] if a.startswith("--config.file=")]
    rendered = host_path(am, config_flag.partition("=")[2], volumes)
    compose_cfg = yaml.safe_load(rendered.read_text())
    urls = {name: env[name] for name in promconfig.WEBHOOK_ENV}
    local = promconfig.render_alertmanager_config(tmp_path / "local", urls)
    local_cfg = yaml.safe_load(local.read_text())
    # Templates: the committed container path, which Alertmanager's mount makes the local folder.
    (template,) = compose_cfg.pop("templates")
    assert host_path(am, template, volumes) == ROOT / "alertmanager" / "templates" / "*.tmpl"
    assert [str(ROOT / "alertmanager" / "templates" / "*.tmpl")] == local_cfg.pop("templates")
    assert compose_cfg == local_cfg
    got = {r["name"]: r["webhook_configs"][0]["url"] for r in compose_cfg["receivers"]}
    assert got["pager"] == "http://pager:1/hook?a=1&b=2|3&c='q'#x:y"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ECM_HEARTBEAT_WEBHOOK_URL": ""}, "set ECM_HEARTBEAT_WEBHOOK_URL to the webhook URL"),
        (
            {"ECM_TICKETS_WEBHOOK_URL": "ftp://user:hunter2@tickets/"},
            "ECM_TICKETS_WEBHOOK_URL must be an http:// or https:// URL with a host",
        ),
    ],
)
def test_compose_renderer_refuses_a_missing_or_bad_url(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    """One line naming the variable (never its value), exit 2; Alertmanager does not start."""
    env = {k: v for k, v in {**env_example(), **change}.items() if v}
    proc, volumes = run_renderer(tmp_path, env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "hunter2" not in proc.stderr
    assert not (volumes["alertmanager-config"] / "alertmanager.yml").exists()
