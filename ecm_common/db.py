"""Finding and connecting to the database: one URL, one error type for 'cannot reach it', and no
password ever shown: every text that may hold a connection string goes through ``redact``."""

from __future__ import annotations

import logging
import os
import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ecm_common.errors import ConfigError, DatabaseUnavailable

log = logging.getLogger(__name__)

URL_ENV = "ECM_DATABASE_URL"
CONNECT_TIMEOUT_S = 5
# Far above any real URL; keeps a pasted file or a runaway variable out of libpq and messages.
MAX_URL_CHARS = 4096
MASK = "***"

# postgresql://user:secret@host: the password runs to the last '@' of the word, so one holding
# an unencoded '@' or '/' is still covered (found by _mask_userinfo, in one pass).
_URL_USER = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{0,30}://[^\s:/@]*:")
_WORD_END = re.compile(r"\s|\Z")
# Each pattern keeps what names the secret (group 1) and masks the value after it. Names are
# bounded or anchored so that no input makes a pattern scan the text more than a few times.
_PATTERNS = (
    # ...?password=secret&... and sslpassword: a query value ends at '&' or '#'.
    re.compile(r"(?i)([?&][a-z_]{0,30}password=)[^\s&#]*"),
    # --some-password secret / --some-password=secret, e.g. echoed by an argument parser.
    re.compile(r"(?i)(?<![\w-])(--(?:[a-z0-9]+-){0,10}password(?:=|\s+))(?!-)\S+"),
    # password=secret, password = 'se cret' (libpq key/value), PGPASSWORD=..., 'password': '...'.
    re.compile(
        r"""(?i)(?<![?&\w-])(\w{0,60}password['"]?\s*[=:]\s*)"""
        r"""('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|\S+)"""
    ),
)
_QUOTED = re.compile(r'"([^"]*)"')


def _mask_userinfo(text: str) -> str:
    out, kept, start = [], 0, 0
    while m := _URL_USER.search(text, start):
        end = _WORD_END.search(text, m.end())
        word_end = end.start() if end else len(text)
        at = text.rfind("@", m.end(), word_end)
        if at < 0:
            start = word_end  # no '@' in this word: no password in it
            continue
        out += [text[kept : m.end()], MASK]
        kept = start = at
    return "".join(out) + text[kept:]


def redact(text: str) -> str:
    """The text with the password of every connection string in it masked."""
    text = _mask_userinfo(text)
    for pattern in _PATTERNS:
        text = pattern.sub(r"\g<1>" + MASK, text)
    return text


def _secret_parts(url: str) -> list[str]:
    """Stretches of url that may hold a password, read loosely (url may not even parse)."""
    parts = []
    _, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo = rest.rpartition("@")[0]
        if ":" in userinfo:
            parts.append(userinfo.partition(":")[2])
    # libpq reads 'password=se cret' as 'se' and then a stray 'cret': up to the next '='.
    for m in re.finditer(r"(?i)password\s*=\s*([^=]*)", url):
        parts.append(m.group(1))
    return [p for p in parts if p]


def scrub(reason: str, url: str) -> str:
    """A libpq message about url with any quoted piece of its password masked, then redacted."""
    parts = _secret_parts(url)

    def mask(m: re.Match[str]) -> str:
        piece = m.group(1)
        return f'"{MASK}"' if piece and any(piece in p for p in parts) else m.group(0)

    return redact(_QUOTED.sub(mask, reason))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """A one-line reason from a psycopg error, with any connection string redacted."""
    return redact(_first_line(exc))


def database_url(explicit: str | None = None) -> str:
    """The libpq URL from a flag, else ECM_DATABASE_URL; ConfigError unless libpq can parse it."""
    url = explicit or os.environ.get(URL_ENV, "")
    if not url:
        raise ConfigError(f"no database given: set {URL_ENV} or pass --database-url")
    check_url(url)
    return url


def check_url(url: str) -> None:
    """Raise ConfigError (never echoing the password) unless url is a libpq URL or DSN."""
    if len(url) > MAX_URL_CHARS:
        raise ConfigError(f"database URL is longer than {MAX_URL_CHARS} characters")
    if not re.match(r"^(postgres|postgresql)://", url) and "=" not in url:
        raise ConfigError(
            "database URL must be a libpq URL (postgresql://user@host:port/dbname) "
            "or a key=value string (host=... dbname=...)"
        )
    try:
        conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ConfigError(f"database URL is not valid: {scrub(_first_line(exc), url)}") from None


def connect(url: str, *, autocommit: bool = False, app: str = "ecm") -> psycopg.Connection:
    """Open a connection or raise DatabaseUnavailable with one clear line."""
    try:
        return psycopg.connect(
            url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S, application_name=app
        )
    except psycopg.ProgrammingError as exc:
        # libpq could not even parse the URL: a configuration problem, not an outage.
        raise ConfigError(f"database URL is not valid: {scrub(_first_line(exc), url)}") from None
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {redact(url)}: {scrub(_first_line(exc), url)}"
        ) from None
