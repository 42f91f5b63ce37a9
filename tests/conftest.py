"""Test-session setup: CPU, absl flags parsed, and as many CPU devices as the selected tests need.

Most tests run on one CPU device (on more, every default mesh pads its batch to the device count
and each jitted step pays for it). A test that needs several devices says so:

    @pytest.mark.devices(8)
    def test_sharded_step(): ...

and the session gets the largest count any selected test asks for. JAX fixes the CPU device
count when it initialises its backends (jax 0.10.2 raises if `jax_num_cpu_devices` changes
later), so it is set once, after collection and before the first test; a test module must not run
JAX operations at import. An `XLA_FLAGS=--xla_force_host_platform_device_count=N` of the caller
wins.

Compiled programmes are kept in JAX's persistent compilation cache under pytest's cache folder
(`.pytest_cache/d/jax_compile`), so a second run of the inner loop loads what the first compiled;
`JOSH_JAX_TEST_CACHE=<folder>` moves it, `JOSH_JAX_TEST_CACHE=off` turns it off. Under CI (`CI` set) it is off unless that variable names a folder.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()


TEST_CACHE_ENV = "JOSH_JAX_TEST_CACHE"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "devices(n): the test needs n CPU devices (the session gets the largest n)")
    folder = os.environ.get(TEST_CACHE_ENV)
    # CI starts from a fresh clone: a cache there is only written, never read again.
    if folder is None and not os.environ.get("CI") and getattr(config, "cache", None) is not None:
        folder = str(config.cache.mkdir("jax_compile"))
    if folder:
        from experiments import compile_cache

        compile_cache.enable(folder, min_compile_time_s=0.2)


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected
def pytest_collection_modifyitems(config, items):
    needed = max((int(m.args[0]) for item in items for m in item.iter_markers("devices")),
                 default=1)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", needed)
    except RuntimeError as e:
        raise pytest.UsageError(
            f"a test module ran a JAX operation at import, so conftest can no longer set the "
            f"CPU device count ({e}); build JAX arrays inside the tests or fixtures") from None
