"""How every command of the project ends: one error rule for the console scripts (:mod:`mit_talk.cli`) and for
``python -m training.cli`` (what ``accelerate launch`` runs, below the console scripts in the layering).

Any exception a command raises is printed as ONE line, ``NAME: error: MESSAGE`` on stderr, and the command exits
with status 2 (1 stays "ran, but the submission/results had problems"; argparse also uses 2 for bad arguments).
``debug=True`` (``--debug``) or ``MIT_TALK_DEBUG=1`` lets the traceback through instead. Ctrl-C exits with 130
and no traceback, a closed output pipe (``mit-talking info DATASET | head``) with 141 and no message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

DEBUG_ENV = "MIT_TALK_DEBUG"


def run_command(name: str, command: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``command`` (returning an exit status, ``None`` for 0) under the rule above; ``name`` (e.g.
    ``"covog train"``) starts the error line. Returns the exit status."""
    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        status = command()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away: not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # the one place errors become a line for the user
        if debug:
            raise
        print(f"{name}: error: {error_line(error)}", file=sys.stderr)
        return 2
    return 0 if status is None else int(status)


def error_line(error: BaseException) -> str:
    """One line for ``error``: its message (a ``KeyError``'s unquoted), prefixed by the exception type unless
    it is one of the input errors whose message already names the input (ValueError, OSError, KeyError)."""
    message = error.args[0] if isinstance(error, KeyError) and len(error.args) == 1 else error
    text = " ".join(str(message).split()) or repr(error)
    if not isinstance(error, (ValueError, OSError, KeyError)):
        text = f"{type(error).__name__}: {text}"
    return text
