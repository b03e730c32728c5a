"""Entry-point wrapper: user-caused errors become one line on stderr and an exit status."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from ecm_common.db import redact
from ecm_common.errors import EcmError

log = logging.getLogger(__name__)


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
