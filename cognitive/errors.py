"""User errors: bad input gets one line naming the file/line/key and a non-zero exit, no traceback."""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """Bad input from the user (a file, line or key that is wrong). Recipes print it as one line."""


def exit_on_user_error(main):
    """Decorator for recipe entry points: a UserError becomes `error: <message>` on stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
