"""experiments.compile_cache: folder choice (fast) and a second process reading the cache (slow)."""

import json
import os
import subprocess
import sys

import pytest

from experiments import compile_cache
from tests.paths import ROOT

# A child process: enable the cache in argv[1], compile one programme that takes a while to compile
# (a scan of matrix products, so it passes the minimum compile time), count the cache events.
_CHILD = r"""
import json, sys
import jax, jax.numpy as jnp
from jax import monitoring
from experiments import compile_cache

events = {}
monitoring.register_event_listener(lambda name, **kw: events.__setitem__(name, events.get(name, 0) + 1))
compile_cache.enable(sys.argv[1] or None, min_compile_time_s=0.0)

def f(x):
    def body(c, _):
        return jnp.tanh(c @ c.T) + jnp.sin(c), None
    return jax.lax.scan(body, x, None, length=7)[0].sum()

value = float(jax.jit(jax.grad(f))(jnp.ones((16, 16)) * 0.01).sum())
print(json.dumps({"value": value,
                  "hits": events.get("/jax/compilation_cache/cache_hits", 0),
                  "misses": events.get("/jax/compilation_cache/cache_misses", 0)}))
"""


def test_cache_dir_off_and_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    assert compile_cache.cache_dir("off") is None
    assert compile_cache.cache_dir(" OFF ") is None
    assert compile_cache.cache_dir(str(tmp_path)) == str(tmp_path)
    default = compile_cache.cache_dir()
    assert default == os.path.abspath(os.path.expanduser(compile_cache.DEFAULT_DIR))
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
    assert compile_cache.cache_dir() == str(tmp_path / "env")
    assert compile_cache.cache_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")  # arg wins
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.cache_dir() is None


def _child(folder, **env_vars):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop(compile_cache.ENV, None)
    env.update(env_vars)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_second_process_reads_the_cache(tmp_path):
    folder = tmp_path / "xla"
    first = _child(folder)
    files_after_first = sorted(p.name for p in folder.iterdir())
    second = _child(folder)
    assert first["misses"] >= 1 and first["hits"] == 0
    assert files_after_first, "the first process wrote nothing to the cache"
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["value"] == first["value"]
    assert sorted(p.name for p in folder.iterdir()) == files_after_first  # nothing new compiled


@pytest.mark.slow
def test_off_from_the_environment_writes_nothing(tmp_path):
    result = _child("", HOME=str(tmp_path), **{compile_cache.ENV: "off"})
    assert result["hits"] == 0 and result["misses"] == 0
    assert not any(tmp_path.iterdir())  # not even the default folder under $HOME
