"""JAX's persistent compilation cache, shared by every binary.

    from experiments import compile_cache
    compile_cache.enable(FLAGS.compilation_cache)   # before the first jit

A second run of the same programme (same shapes, same config, same JAX) reads its compiled
executables from disk instead of compiling again. The folder is, in order: the argument, the
environment variable `JOSH_JAX_CACHE_DIR`, `~/.cache/josh_jax/xla`. The value "off" (argument or
environment) turns the cache off. Only programmes that took at least `min_compile_time_s` to
compile are stored, so tiny helpers do not fill the folder.
"""

from __future__ import annotations

import os

import jax
from absl import flags, logging

ENV = "JOSH_JAX_CACHE_DIR"
DEFAULT_DIR = os.path.join("~", ".cache", "josh_jax", "xla")
OFF = "off"

COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None,
    f"Folder of JAX's persistent compilation cache ('{OFF}': none). Default: ${ENV}, else "
    f"{DEFAULT_DIR}.")


def cache_dir(path: str | None = None) -> str | None:
    """The folder the cache would use for `path` (None: off)."""
    chosen = path or os.environ.get(ENV) or DEFAULT_DIR
    if chosen.strip().lower() == OFF:
        return None
    return os.path.abspath(os.path.expanduser(chosen))


def enable(path: str | None = None, min_compile_time_s: float = 0.1) -> str | None:
    """Turn the persistent cache on (see the module docstring); returns the folder, or None if off.

    `path` defaults to the `--compilation_cache` flag when flags are parsed.
    """
    if path is None and flags.FLAGS.is_parsed():
        path = COMPILATION_CACHE.value
    folder = cache_dir(path)
    if folder is None:
        logging.info("compilation cache: off")
        return None
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:  # an unwritable cache must not stop a run
        logging.warning("compilation cache: %s is not usable (%s); running without it", folder, e)
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    logging.info("compilation cache: %s", folder)
    return folder
