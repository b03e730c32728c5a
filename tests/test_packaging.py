"""The lock (constraints.txt) covers every declared dependency, and the image holds every part."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins() -> dict[str, str]:
    """Package name -> pinned version, from constraints.txt."""
    out: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not pinned with =="
            out[canonicalize_name(name)] = version
    return out


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml: runtime and every extra."""
    project = PYPROJECT["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts.extend(extra)
    return [Requirement(t) for t in texts]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    locked = pins()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in constraints.txt: run `make lock`"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={locked[name]}, outside {req.specifier}"
        )


def test_make_and_the_image_install_with_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[dev,embedded\]'", makefile)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN pip install -c constraints.txt ." in dockerfile
    assert re.search(r"^COPY .*constraints\.txt", dockerfile, re.M)


def test_the_image_holds_every_package_compose_runs() -> None:
    """Each `python -m X` of a compose service built from the ECM image is copied into it."""
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    run = set()
    for service in compose["services"].values():
        command = service.get("command") or []
        if isinstance(command, list) and command[:2] == ["python", "-m"]:
            run.add(command[2].split(".")[0])
    assert run, "no compose service runs an ECM module"
    assert run <= copied, f"compose runs {sorted(run - copied)} that the image does not hold"
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        name = pattern.rstrip("*")
        if name != "bench":
            assert name in copied, f"the image does not hold the package {name}"
