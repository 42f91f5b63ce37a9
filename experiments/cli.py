"""What every binary shares: the error policy around `app.run`, and where the repo keeps files.

    from experiments import cli
    ...
    if __name__ == "__main__":
        cli.run(main)

Bad input (`josh_jax.errors.InputError`, a missing file) prints one line,
`error: <file>: <field>: expected ..., found ...`, on stderr and exits with status 2; so does a bad
flag (`error: command line: ...`). `--verbose` shows the traceback instead. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from absl import app, flags

from josh_jax.errors import InputError, format_message

_VERBOSE = flags.DEFINE_boolean("verbose", False, "Show the traceback of an input error.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "experiments", "configs")

# Body model files that clips name without a path: the reference clip's licence-free SMPL-format
# body, beside the shared reference files and copied into the repo's test data.
KNOWN_BODY_FILES = {
    "synthetic_smpl_neutral": (
        os.path.join(REPO, "..", "shared", "reference", "synthetic_smpl_neutral.npz"),
        os.path.join(REPO, "tests", "data", "synthetic_smpl_neutral.npz"),
    ),
}


def body_model_path(clip_body_name: str, path: str | None = None) -> str | None:
    """`path` if given, else the first existing known file for the body the clip names (or None)."""
    if path:
        return path
    for candidate in KNOWN_BODY_FILES.get(str(clip_body_name), ()):
        if os.path.exists(candidate):
            return candidate
    return None


def one_line(error: Exception) -> str:
    """The one-line message of an input error (a missing file in the same format)."""
    if isinstance(error, FileNotFoundError) and error.filename is not None:
        return format_message(error.filename, "(file)", "an existing file", "no such file")
    return " ".join(str(error).splitlines())


def guard(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """`main` with input errors turned into one line on stderr and exit status 2."""

    @functools.wraps(main)
    def guarded(argv):
        try:
            return main(argv)
        except (InputError, FileNotFoundError) as e:
            if _VERBOSE.value:
                raise
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(2)

    return guarded


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with a bad flag (unknown, malformed, failing its validator, a config
    file that does not load) as one line on stderr and exit status 2, not the usage text."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        if "--verbose" in argv:
            raise
        print(f"error: command line: {flag_error_line(e)}", file=sys.stderr)
        sys.exit(2)


def flag_error_line(error: Exception) -> str:
    """One line for a flag error; a traceback embedded in it (ml_collections' config files) is
    cut to its last line, the exception."""
    text = str(error)
    marker = "Traceback (most recent call last):"
    if marker in text:
        head, tail = text.split(marker, 1)
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        text = f"{head.strip()} {lines[-1] if lines else ''}"
    return " ".join(text.split())


def run(main: Callable[[list[str]], None]) -> None:
    """`app.run(main)`, with flag and input errors as one line on stderr and exit status 2."""
    app.run(guard(main), flags_parser=parse_flags)
