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
import fcntl
import hashlib
import json
import os
import re
import shutil
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


# ---------------------------------------------------------------------------------------------
# Result sets: several files of one clip that appear together (docs/outputs.md, "Result sets")
# ---------------------------------------------------------------------------------------------
#
#     with result_set(folder, "clip") as staging:      # a fresh temporary folder
#         write_all(staging, "clip", result, ...)      # any files named "clip.*"
#     # now folder/clip.* is the new set, and folder/clip.manifest.json lists it (written last)
#
# Commit, under the folder's lock: (1) a journal `.josh-commit.<name>.json` names the staged
# files and the old set; (2) the old manifest and every old file are removed; (3) the staged
# files are renamed into place; (4) the new manifest is written; (5) journal and staging folder
# are removed. At any instant the final names hold files of one set only (old or new, maybe
# incomplete, and then without a manifest); after a crash the next `recover(folder)` rolls the
# journal forward (the staged files are complete before the journal exists) and removes staging
# folders and temporary files of dead processes.

LOCK_NAME = ".josh.lock"
STAGING_PREFIX = ".josh-staging."
JOURNAL_PREFIX = ".josh-commit."
MANIFEST_SUFFIX = ".manifest.json"
# Temporary files of `atomic_write`: ".<name>.<8 random characters of mkstemp>.tmp[.ext]".
_TMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9.]+)?$")


@contextlib.contextmanager
def folder_lock(folder: str) -> Iterator[None]:
    """An exclusive lock on `folder` (flock on `folder/.josh.lock`), across processes."""
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def manifest_path(folder: str, name: str) -> str:
    return os.path.join(folder, name + MANIFEST_SUFFIX)


def read_manifest(folder: str, name: str) -> dict | None:
    """The manifest of the complete set `name` in `folder`, or None (absent or unreadable)."""
    try:
        with open(manifest_path(folder, name)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


@contextlib.contextmanager
def result_set(folder: str, name: str, *, old_files: list[str] = ()) -> Iterator[str]:
    """Yields a fresh staging folder; on success its files replace the set `name` in `folder`.

    Args:
      folder: the destination folder (created).
      name: the set's name; its manifest is `folder/<name>.manifest.json`.
      old_files: file names in `folder` of a previous set without a manifest (removed on
        commit, so that no old file stays next to the new set).
    On failure the staging folder is removed and `folder` is untouched.
    """
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}.", dir=folder)
    try:
        yield staging
        commit(staging, folder, name, old_files=list(old_files))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def commit(staging: str, folder: str, name: str, *, old_files: list[str] = ()) -> dict:
    """Moves every file of `staging` into `folder` as the set `name` (see above); the manifest."""
    files = sorted(f for f in os.listdir(staging) if not f.startswith("."))
    journal = {"name": name, "staging": os.path.basename(staging), "files": files,
               "manifest": _manifest(staging, files)}
    with folder_lock(folder):
        old = read_manifest(folder, name)
        journal["old"] = sorted(set(old_files) | set(old["files"] if old else ()))
        write_text(_journal_path(folder, name), json.dumps(journal))
        _apply(folder, journal, fresh=True)
    return journal["manifest"]


def _journal_path(folder: str, name: str) -> str:
    return os.path.join(folder, f"{JOURNAL_PREFIX}{name.replace(os.sep, '_')}.json")


def _manifest(staging: str, files: list[str]) -> dict:
    entries = {}
    for f in files:
        h = hashlib.sha256()
        with open(os.path.join(staging, f), "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
        entries[f] = {"bytes": os.path.getsize(os.path.join(staging, f)), "sha256": h.hexdigest()}
    return {"format": "josh_jax.result_set/1", "files": entries}


def _apply(folder: str, journal: dict, *, fresh: bool) -> None:
    """Steps 2-5 of a commit (idempotent when `fresh` is False: a roll-forward after a crash)."""
    name, staging = journal["name"], os.path.join(folder, journal["staging"])
    _remove(manifest_path(folder, name))
    for f in journal["old"]:
        if fresh or f not in journal["files"]:
            _remove(os.path.join(folder, f))
    if fresh:  # no old file may stay under a new name while the new ones move in
        for f in journal["files"]:
            _remove(os.path.join(folder, f))
    for f in journal["files"]:
        src = os.path.join(staging, f)
        if os.path.exists(src):
            os.replace(src, os.path.join(folder, f))
    write_text(manifest_path(folder, name), json.dumps(journal["manifest"], indent=1) + "\n")
    _remove(_journal_path(folder, name))
    shutil.rmtree(staging, ignore_errors=True)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(folder: str) -> list[str]:
    """Finishes interrupted commits and removes dead processes' temporaries; returns what it did.

    Safe while other runs write to `folder`: it takes the folder lock (commits hold it) and
    keeps staging folders of live processes.
    """
    if not os.path.isdir(folder):
        return []
    done = []
    with folder_lock(folder):
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if entry.startswith(JOURNAL_PREFIX) and entry.endswith(".json"):
                try:
                    with open(path) as f:
                        journal = json.load(f)
                    _apply(folder, journal, fresh=False)
                    done.append(f"finished the interrupted commit of {journal['name']}")
                except (OSError, ValueError, KeyError, TypeError):
                    _remove(path)  # a torn journal: its commit had not started
                    done.append(f"removed the torn journal {entry}")
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if entry.startswith(STAGING_PREFIX) and os.path.isdir(path):
                pid = entry[len(STAGING_PREFIX):].split(".")[0]
                if not (pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid()):
                    shutil.rmtree(path, ignore_errors=True)
                    done.append(f"removed the stale staging folder {entry}")
            elif _TMP_FILE.match(entry) and os.path.isfile(path):
                _remove(path)  # only summary/manifest writes (under this lock) make these here
                done.append(f"removed the stale temporary file {entry}")
    return done


def update_json(path: str, update) -> dict:
    """Read-modify-write of a JSON file under its folder's lock: `update(old or {}) -> new`.

    An unreadable old file is kept as `<path>.corrupt` and treated as empty.
    """
    folder = os.path.dirname(os.path.abspath(path))
    with folder_lock(folder):
        old = {}
        if os.path.exists(path):
            try:
                with open(path) as f:
                    old = json.load(f)
            except (OSError, ValueError):
                os.replace(path, path + ".corrupt")
        new = update(old if isinstance(old, dict) else {})
        write_text(path, json.dumps(new, indent=1, sort_keys=True, allow_nan=True) + "\n")
    return new
