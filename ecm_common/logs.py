"""Logging setup shared by every part: plain text for people, JSON lines for containers, and no
connection-string password in any record (``RedactFilter`` on the handler)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from ecm_common.db import redact

LogFormat = Literal["text", "json"]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


# A config field type: names are accepted in any case (--log-level debug).
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]


_TRACEBACKS = logging.Formatter()


class RedactFilter(logging.Filter):
    """Rewrites each record, message, arguments and traceback, with passwords masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A bad format would make the handler print the raw arguments: show them redacted.
            message = f"{record.msg!s} (arguments: {record.args!r})"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, message and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc)


def setup_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Configure the root logger once for a command, every record redacted."""
    handler = logging.StreamHandler(sys.stderr)
    # On the handler, not the root logger: a logger's filters skip records from its children.
    handler.addFilter(RedactFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # A crash's traceback is printed, not logged: it gets the same masking.
    sys.excepthook = _print_redacted
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _print_thread_redacted
    root.setLevel(level.upper())
    # APScheduler logs every run at INFO; keep it to warnings unless debugging.
    if level.upper() != "DEBUG":
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _print_redacted(
    kind: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: the usual traceback, passwords masked."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def _print_thread_redacted(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook: the usual report of a dying thread, passwords masked."""
    if args.exc_value is None or args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    sys.stderr.write(redact(f"Exception in thread {name}:\n{text}"))
