"""User errors: bad input gets one line naming the file/line/key and a non-zero exit, no traceback."""

from __future__ import annotations

import argparse
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


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's error format: a usage error is one line (`error: ... (see --help)`), exit 2."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def load_yaml_mapping(path, what: str) -> dict:
    """A YAML file that must be a mapping (a recipe, a data config); a missing file, invalid YAML (with its line) or
    another shape is a one-line UserError naming the file."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a {what} must be a YAML mapping of keys to values")
    return data
