"""The project's one error format: `<file>: <field>: expected <what>, found <what>`, on one line.

`InputError` is the base class of every error that bad input can cause, in every layer (a body
model file here; clips, results and checkpoints above). It lives in the lowest layer so that all
of them derive from it (as the SO(3) converters live in `rotations.py`); `josh_jax.errors`
re-exports it. The binaries catch it, print the message and exit with status 2.
"""

from __future__ import annotations

from typing import Any


def format_message(file: Any, field: str, expected: Any, found: Any) -> str:
    """`<file>: <field>: expected <expected>, found <found>`, with newlines folded into spaces."""
    message = f"{file}: {field}: expected {expected}, found {found}"
    return " ".join(message.splitlines())


class InputError(ValueError):
    """Bad input the user can fix; the message names the file, the field, expected and found.

    Attributes:
      file: the offending file (or a description of an in-memory source, or a flag).
      field: the offending key, field or flag (`(file)` when the file itself is unreadable).
      expected: what was expected.
      found: what was found.
    """

    def __init__(self, file: Any, field: str, expected: Any, found: Any):
        self.file = str(file)
        self.field = str(field)
        self.expected = str(expected)
        self.found = str(found)
        super().__init__(format_message(self.file, self.field, self.expected, self.found))
