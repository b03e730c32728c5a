"""Logging setup shared by every part: plain text for people, JSON lines for containers."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

LogFormat = Literal["text", "json"]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


# A config field type: names are accepted in any case (--log-level debug).
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]


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
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Configure the root logger once for a command."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler logs every run at INFO; keep it to warnings unless debugging.
    if level.upper() != "DEBUG":
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
