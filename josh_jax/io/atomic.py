"""The one atomic writer of the project: write under a temporary name, then rename.

    with atomic_write("out/clip.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

The temporary file lives in the destination folder (so the rename is atomic), starts with a dot
(globs over the folder do not pick it up) and keeps the extension (writers such as imageio pick
the format from it). On success it gets the permissions a plain `open()` would give and replaces
`path`; on any failure it is deleted and `path` is left as it was. Nothing else in the folder is
touched. (`body_models` keeps its own few lines for `save_model_npz`: it imports nothing of the
project.)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path next to `path`; on success renames it to `path`, else deletes it.

    The destination folder is created if needed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    _, ext = os.path.splitext(base)
    if base.endswith(".tar.gz"):
        ext = ".tar.gz"
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Writes `data` to `path` atomically; returns `path`."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return os.fspath(path)


def write_text(path: str | os.PathLike, text: str) -> str:
    """Writes `text` to `path` atomically; returns `path`."""
    with atomic_write(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return os.fspath(path)
