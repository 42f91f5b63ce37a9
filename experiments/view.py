r"""Look at a result in 3D: an interactive viser viewer with a timeline, or an offline HTML page.

    # Interactive (open the printed address in a browser; Ctrl-C stops)
    python -m experiments.view --result=out/josh/synthetic_seed0.npz

    # Offline recording: one self-contained .html that replays every frame (no Python needed)
    python -m experiments.view --result=out/josh/synthetic_seed0.npz --record=out/josh/view.html

    # A still of one frame, seen from the estimated camera of that frame
    python -m experiments.view --result=out/x.npz --record=out/x_f50.html --frame=50

What is drawn: docs/outputs.md ("Viewer"). Results on a body other than the built-in mannequin
need the model file (--body_model). Bad input: one line on stderr, exit code 2 (--verbose: the
traceback).
"""

from __future__ import annotations

import os

from absl import flags

from experiments import cli
from josh_jax import pipeline
from josh_jax.errors import InputError
from josh_jax.io import outputs, viewer
from josh_jax.io.result_npz import ResultFormatError, load_result_npz

_RESULT = flags.DEFINE_string("result", None, "Result .npz written by run_josh / run_human3r.")
_BODY_MODEL = flags.DEFINE_string(
    "body_model", None, "Body model file of the result (default: from the result's body_model).")
_RECORD = flags.DEFINE_string("record", None, "Write a self-contained .html recording and exit.")
_FRAME = flags.DEFINE_integer("frame", None, "With --record: a still of this frame row, seen from "
                              "its estimated camera.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Interactive server address.")
_PORT = flags.DEFINE_integer("port", 8080, "Interactive server port.")
_MAX_POINTS = flags.DEFINE_integer("max_points", 100_000, "Cap on scene points shown.")


def _load():
    path = _RESULT.value
    if not path:
        raise InputError("command line", "--result", "a result .npz", "none")
    if not os.path.isfile(path):
        raise InputError(path, "--result", "an existing result .npz", "no such file")
    try:
        result = load_result_npz(path)
    except ResultFormatError:
        raise
    except (ValueError, OSError) as e:  # not an npz at all
        raise InputError(path, "--result", "a result .npz", f"an unreadable file ({e})") from e
    if _FRAME.value is not None and not 0 <= _FRAME.value < result.num_frames:
        raise InputError("command line", "--frame", f"a row in [0, {result.num_frames})",
                         str(_FRAME.value))
    return result, pipeline.resolve_body_model(
        result.body_model, cli.body_model_path(result.body_model, _BODY_MODEL.value))


def main(argv):
    del argv
    if _RECORD.value:
        if os.path.isdir(_RECORD.value):
            raise InputError(_RECORD.value, "--record", "an .html file name", "a folder")
        outputs.check_writable_folder(os.path.dirname(os.path.abspath(_RECORD.value)), "--record")
    result, body_model = _load()
    if _RECORD.value:
        frame = _FRAME.value
        viewer.record_html(_RECORD.value, result, body_model, max_points=_MAX_POINTS.value,
                           frames=None if frame is None else [frame], view_frame=frame,
                           cameras=frame is None)
        print(f"wrote {_RECORD.value} (open it in a browser)")
        return
    print(f"viewer on http://{_HOST.value}:{_PORT.value} (Ctrl-C stops)")
    try:
        viewer.serve(result, body_model, host=_HOST.value, port=_PORT.value,
                     max_points=_MAX_POINTS.value)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    cli.run(main)
