"""Fuzzing both command lines: random flags, configuration and scenario documents.

Whatever the input, `--check-only` ends with exit 0 ("configuration OK") or exit 2 and exactly
one line on stderr: never a traceback, never another status, and in bounded time (hypothesis'
deadline per example). The suite runs a few dozen examples per command in-process (main(argv),
what the console script runs) and a few in real processes; `ECM_FUZZ_EXAMPLES=5000` (or
`make fuzz`) runs a long campaign.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exporter.__main__ import main as exporter_main
from generator.__main__ import OPTIONS as GENERATOR_OPTIONS
from generator.__main__ import main as generator_main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("ECM_FUZZ_EXAMPLES", "40"))
# A bound on the work one input may cause, generous for a loaded machine.
DEADLINE = timedelta(seconds=10)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize="ECM_FUZZ_EXAMPLES" not in os.environ,
    database=None,
)

EXPORTER_FLAGS = (
    "--database-url", "--port", "--listen-address", "--interval", "--windows", "--top-n",
    "--min-calls", "--min-tower-calls", "--warn-failure-ratio", "--alert-failure-ratio",
    "--warn-p95-seconds", "--alert-p95-seconds", "--log-level", "--log-format", "--window",
)  # fmt: skip
GENERATOR_FLAGS = tuple(GENERATOR_OPTIONS)
PHASE_KEYS = ("name", "start", "duration", "targets", "effects", "bogus")
TARGET_KEYS = ("towers", "all", "share", "group")
EFFECT_KEYS = (
    "failure_prob", "reason", "reasons", "latency_multiplier", "latency_sigma", "rate_multiplier",
)  # fmt: skip

# Values shaped like what users type, and the hostile ones.
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e308, 2**63, 10**400]),
)
words = st.sampled_from(
    ["5", "0", "-1", "inf", "-inf", "nan", "1e400", "0.01", "1h30m", "90", "30s", "7d",
     "99999999999d", "5m,10m,1h", "8d", "TOWER_1=2", "CORE_TIMEOUT=inf", "PSAP_BUSY=nan",
     "now", "1h", "2999-01-01", "0001-01-01", "9999-12-31T23:59:59", "mysql://x",
     "postgresql://u:pw@h:99999/d", "host=h bogus=1", "/etc/hostname/x", "", " ", "[1]",
     "null", "DEBUG", "json", "TOWER_99999999999=1", "1" * 300]
)  # fmt: skip
texts = st.text(max_size=40)
# Values that pass validation, so examples also reach the deeper checks.
plausible = st.one_of(
    st.integers(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1),
    st.sampled_from(
        ["5m", "1h", "90", "10s", "TOWER_1", "TOWER_2", "CORE_TIMEOUT", "PSAP_BUSY", "DEBUG"]
    ),
)
scalars = st.one_of(plausible, st.none(), st.booleans(), numbers, words, texts)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(words, texts), inner, max_size=4)
    ),
    max_leaves=12,
)
flag_value = st.one_of(plausible.map(str), words, texts, numbers.map(str))


def mapping(keys: tuple[str, ...], inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A dict over mostly known keys with arbitrary values."""
    return st.dictionaries(st.one_of(st.sampled_from(keys), texts), inner, max_size=len(keys))


def option_keys(flags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f.lstrip("-").replace("-", "_") for f in flags)


def document(doc: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """YAML text of a document, or a mangled version of it (bytes cut, junk appended)."""
    dumped = doc.map(lambda d: yaml.safe_dump(d, allow_unicode=True))
    return st.one_of(
        dumped,
        st.tuples(dumped, st.integers(min_value=0, max_value=200), texts).map(
            lambda t: t[0][: t[1]] + t[2]
        ),
        texts,
    )


targets = st.one_of(
    st.sampled_from([{"all": True}, {"towers": ["TOWER_1", "TOWER_3"]}, {"share": 0.3}]),
    st.fixed_dictionaries({"share": st.floats(0.01, 1), "group": st.sampled_from(["g", "h"])}),
    mapping(TARGET_KEYS, values),
    values,
)
effects = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "failure_prob": st.floats(0, 1),
            "reason": st.sampled_from(["PSAP_BUSY", "CORE_TIMEOUT"]),
            "latency_multiplier": st.floats(0.1, 20),
            "rate_multiplier": st.floats(0.1, 20),
        },
    ),
    mapping(EFFECT_KEYS, values),
    values,
)
phase = st.one_of(
    mapping(PHASE_KEYS, values),
    st.fixed_dictionaries(
        {
            "name": st.one_of(st.sampled_from(["a", "b", "c", "d"]), words, texts),
            "start": st.one_of(plausible, words, numbers),
            "duration": st.one_of(plausible, words, numbers),
        },
        optional={"targets": targets, "effects": effects},
    ),
)
scenario_doc = st.one_of(
    values,
    st.fixed_dictionaries(
        {"name": st.one_of(st.just("fuzz"), words), "description": st.one_of(st.just("d"), texts)},
        optional={
            "duration": st.one_of(words, numbers),
            "alerts": st.lists(st.one_of(words, st.just("EcmNoCalls")), max_size=3),
            "baseline": mapping(option_keys(GENERATOR_FLAGS), values),
            "phases": st.lists(phase, max_size=6),
        },
    ),
)


def argv(flags: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """A few flags with values (now and then an unknown one)."""
    pair = st.tuples(st.sampled_from((*flags, "--bogus")), flag_value)
    return st.lists(pair, max_size=5).map(lambda ps: [x for p in ps for x in p])


@contextlib.contextmanager
def clean_env() -> Iterator[None]:
    """No ECM_* variable of the machine leaks into the examples."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("ECM_")]:
            mp.delenv(key)
        yield


def run_in_process(main: Callable[[list[str]], int], args: list[str]) -> tuple[int, str, str]:
    """main(argv) with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with clean_env(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(args)
    return status, out.getvalue(), err.getvalue()


def run_process(module: str, args: list[str]) -> tuple[int, str, str]:
    """python -m module args --check-only in a real process, without ECM_* variables."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--check-only"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("ECM_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def assert_clean(prog: str, status: int, out: str, err: str) -> None:
    """Exit 0 with 'configuration OK', or exit 2 with one error line."""
    event(f"exit {status}: {err.split(': ')[2][:30] if status == 2 else 'OK'}")
    assert status in (0, 2), (status, out, err)
    if status == 0:
        assert out.rstrip().endswith("configuration OK") or out.startswith("configuration OK")
        assert err == ""
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
        assert len(lines[0]) < 1000
        assert "Traceback" not in err


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return str(path)


@FUZZ
@given(
    command=st.one_of(
        st.sampled_from([[], ["run"], ["init-db"]]),
        st.tuples(flag_value, flag_value).map(lambda t: ["backfill", "--from", t[0], "--to", t[1]]),
    ),
    flags=argv(GENERATOR_FLAGS),
    config=st.none() | document(mapping(option_keys(GENERATOR_FLAGS), values)),
    scenario=st.none() | document(scenario_doc),
)
def test_generator_check_only(
    files: Path, command: list[str], flags: list[str], config: str | None, scenario: str | None
) -> None:
    args = [*command, *flags, "--check-only", "--spool-dir", str(files / "spool")]
    if config is not None:
        args += ["--config", write(files / "gen.yml", config)]
    if scenario is not None:
        args += ["--scenario", write(files / "scenario.yaml", scenario)]
    assert_clean("ecm-generator", *run_in_process(generator_main, args))


@FUZZ
@given(scenario=document(scenario_doc), towers=st.sampled_from(["3", "50", "100000"]))
def test_generator_scenario_check_only(files: Path, scenario: str, towers: str) -> None:
    """Scenario documents alone, so that most examples reach the phase and timeline checks."""
    path = write(files / "alone.yaml", scenario)
    args = ["--scenario", path, "--towers", towers, "--check-only"]
    assert_clean("ecm-generator", *run_in_process(generator_main, args))


@FUZZ
@given(
    flags=argv(EXPORTER_FLAGS),
    config=st.none() | document(mapping(option_keys(EXPORTER_FLAGS), values)),
)
def test_exporter_check_only(files: Path, flags: list[str], config: str | None) -> None:
    args = [*flags, "--check-only"]
    if config is not None:
        args += ["--config", write(files / "exporter.yml", config)]
    assert_clean("ecm-exporter", *run_in_process(exporter_main, args))


@settings(max_examples=3, deadline=None, derandomize=True, database=None)
@given(flags=argv(GENERATOR_FLAGS), config=document(mapping(option_keys(GENERATOR_FLAGS), values)))
def test_generator_as_a_process(files: Path, flags: list[str], config: str) -> None:
    """What a user sees: the same statuses and one line from a real process."""
    cfg = write(files / "proc.yml", config)
    assert_clean("ecm-generator", *run_process("generator", [*flags, "--config", cfg]))


@settings(max_examples=3, deadline=None, derandomize=True, database=None)
@given(flags=argv(EXPORTER_FLAGS))
def test_exporter_as_a_process(flags: list[str]) -> None:
    assert_clean("ecm-exporter", *run_process("exporter", flags))
