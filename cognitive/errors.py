"""User errors: bad input gets one line naming the file/line/key and a non-zero exit, no traceback; and the readers
of the user's files that raise them (YAML mappings, JSONL records)."""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path


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


_DASHED_FLAG = re.compile(r"--[a-z0-9]+(?:-[a-z0-9]+)+")


def deprecated_spelling(flag: str, known) -> str | None:
    """The flag a deprecated dashed spelling stands for ('--max-gen-toks' -> '--max_gen_toks') when `known` (option
    strings) has that one and not the dashed one; None for any other word."""
    name = flag.split("=", 1)[0]
    if not _DASHED_FLAG.fullmatch(name) or name in known:
        return None
    new = name.replace("-", "_").replace("__", "--", 1)
    return new if new in known else None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's conventions: a usage error is one line (`error: ... (see --help)`), exit 2; flags
    are written with TRL's underscores (`--max_gen_toks`), and the old dashed spelling of each (`--max-gen-toks`) is
    still accepted for one release, hidden from --help, with a one-line deprecation note on stderr."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        rewritten = []
        for i, arg in enumerate(args):
            if arg == "--":  # what follows is no option of ours
                rewritten += args[i:]
                break
            new = deprecated_spelling(arg, self._option_string_actions) if isinstance(arg, str) else None
            if new:
                old = arg.split("=", 1)[0]
                print(f"note: {old} is deprecated and goes in the next release; write {new}", file=sys.stderr)
                arg = new + arg[len(old) :]
            rewritten.append(arg)
        return super().parse_known_args(rewritten, namespace)


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


MAX_LINE_BYTES = 16 * 2**20  # the longest JSONL line read (a record of ours is a few kB; a longer line is no record)
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false"}


def read_jsonl(path) -> Iterator[tuple[str, dict]]:
    """(where, record) for every non-blank line of a JSONL file, `where` being 'file:line'; a `.json` file holds one
    record. The one reader of the project's JSONL inputs (training records, curated data, GRPO prompts, samples).

    Anything else is a one-line UserError naming the file and line: a missing or unreadable file, bytes that are not
    UTF-8, a line longer than MAX_LINE_BYTES (read in pieces of at most that, never whole), a line that is not JSON
    (or nested too deeply), a JSON value that is not an object. An empty file yields nothing: its caller says
    whether that is an error."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if path.suffix == ".json":
                raw = f.read(MAX_LINE_BYTES + 1)
                yield str(path), _record(raw, str(path), whole_file=True)
                return
            lineno = 0
            while raw := f.readline(MAX_LINE_BYTES + 1):
                lineno += 1
                if raw.strip():
                    yield f"{path}:{lineno}", _record(raw, f"{path}:{lineno}", first=lineno == 1)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a directory, not a JSONL file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None


def _record(raw: bytes, where: str, first: bool = True, whole_file: bool = False) -> dict:
    if len(raw) > MAX_LINE_BYTES:
        what = "the file is" if whole_file else "the line is"
        raise UserError(f"{where}: {what} over {MAX_LINE_BYTES // 2**20} MiB; no record is that long (is it JSONL?)")
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as e:
        of = "the file" if whole_file else "the line"
        raise UserError(f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of {of})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        at = f"line {e.lineno} column {e.colno}" if whole_file else f"column {e.colno}"
        raise UserError(f"{where}: not valid JSON ({e.msg} at {at})") from None
    except RecursionError:
        raise UserError(f"{where}: not valid JSON (nested too deeply)") from None
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
        raise UserError(f"{where}: {kind} where a record (a JSON object) belongs")
    return value
