"""The project's errors: one base class, one message format, for every layer.

    <file>: <field>: expected <what>, found <what>

`InputError` is the base of every error that bad input can cause: `body_models.ModelFormatError`
(a body model file), `josh_jax.clip.ClipFormatError` (a clip), `josh_jax.io.result_npz.
ResultFormatError` (a result file), the trainers' checkpoint errors. The binaries
(`experiments/cli.py`) catch it, print its one line and exit with status 2 (`--verbose` shows the
traceback). It is defined in `body_models.errors`, the lowest layer, so that the body model
errors can derive from it too (as the SO(3) converters are defined in `body_models.rotations`);
this module is where the rest of the project imports it from.
"""

from body_models.errors import InputError, format_message

__all__ = ["InputError", "format_message"]
