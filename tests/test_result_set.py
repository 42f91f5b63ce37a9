"""Result sets under kill -9: a writer process replacing one clip's set again and again is killed at
several delays; the final names must never hold files of two sets, a manifest must always match
its files, and after a rerun (recover + write) the set is complete with no temporary left."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from josh_jax.io import atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("npz", "glb", "tum.txt", "mp4", "metrics.json")

# Writes versions start, start+1, ... of the set "c" forever; each file starts with its version.
WRITER = rf"""
import os, sys
from josh_jax.io import atomic
out, start = sys.argv[1], int(sys.argv[2])
version = start
while True:
    with atomic.result_set(out, "c") as staging:
        for kind in {KINDS!r}:
            with open(os.path.join(staging, "c." + kind), "wb") as f:
                f.write(f"v{{version}} ".encode() + os.urandom(256 * 1024))
    version += 1
"""


def _start_writer(out, start):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(start)], cwd=REPO,
                            env=env)


def _versions(out) -> dict[str, str]:
    found = {}
    for name in os.listdir(out):
        if name.startswith("c.") and not name.endswith(".manifest.json"):
            with open(os.path.join(out, name), "rb") as f:
                found[name] = f.read(16).split(b" ")[0].decode()
    return found


def _check_manifest(out) -> bool:
    """The manifest, when present, lists exactly the files there, with their hashes."""
    path = os.path.join(out, "c.manifest.json")
    if not os.path.exists(path):
        return False
    manifest = json.load(open(path))
    present = {n for n in os.listdir(out) if n.startswith("c.") and n != "c.manifest.json"}
    assert set(manifest["files"]) == present
    for name, entry in manifest["files"].items():
        data = open(os.path.join(out, name), "rb").read()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    return True


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.7, 1.1, 1.6, 2.3, 3.1])
def test_kill_9_never_leaves_a_mixed_set(tmp_path, delay):
    out = tmp_path / "out"
    out.mkdir()
    with atomic.result_set(str(out), "c") as staging:  # an old, complete set
        for kind in KINDS:
            (tmp_path / "out" / os.path.basename(staging) / f"c.{kind}").write_bytes(b"v0 old")
    proc = _start_writer(out, 1)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    versions = _versions(out)
    assert len(set(versions.values())) <= 1, f"a mixed set under the final names: {versions}"
    if _check_manifest(out):
        assert sorted(versions) == sorted(f"c.{k}" for k in KINDS)

    # The rerun: recover (finish or drop the killed commit), then write a fresh set.
    atomic.recover(str(out))
    versions = _versions(out)
    assert len(set(versions.values())) <= 1, versions
    assert not [n for n in os.listdir(out) if n.startswith(".josh-") or ".tmp" in n]
    with atomic.result_set(str(out), "c") as staging:
        for kind in KINDS:
            with open(os.path.join(staging, f"c.{kind}"), "wb") as f:
                f.write(b"v999 rerun")
    assert set(_versions(out).values()) == {"v999"} and _check_manifest(out)
    assert sorted(os.listdir(out)) == sorted(
        [".josh.lock", "c.manifest.json"] + [f"c.{k}" for k in KINDS])
