"""Entry-point wrapper: user-caused errors become one line on stderr and an exit status."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ecm_common.config import one_line
from ecm_common.db import redact
from ecm_common.errors import ConfigError, EcmError

log = logging.getLogger(__name__)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ConfigError line (exit 2), no abbreviations."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # An abbreviation would let a removed flag (--exporter-password) match a longer one.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage."""
        raise ConfigError(f"{one_line(message, 200)} (see --help)")


def run(main: Callable[[], int], prog: str) -> int:
    """Run a command's main function, turning EcmError and Ctrl-C into exit statuses."""
    try:
        return main()
    except EcmError as exc:
        print(f"{prog}: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
