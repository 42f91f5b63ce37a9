"""Layer factories with host-side (numpy) initialisation.

Flax's default initialisers compile one small XLA program per parameter shape when run eagerly
(~90 compilations for MASt3R, tens of seconds on a small CPU), and under `nnx.eval_shape` every
draw grows the trace. These initialisers draw LeCun-normal values (truncated at 2 std, the Flax
default for Linear/Conv) with numpy, seeded from the JAX key: eagerly no compilation happens, and
under tracing (jit, eval_shape) the draw is one `pure_callback` with the same values.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
_SHAPES_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("shapes_only", default=False)


@contextlib.contextmanager
def shapes_only():
    """Within this context the host initialisers draw nothing and return
    `jax.ShapeDtypeStruct`s: an eager build gives a model whose weights are shapes (to be
    filled from a checkpoint) in about the time of building the Python objects, without the
    trace of `nnx.eval_shape` (whose RNG bookkeeping grows quadratically with the model).
    Small constant-initialised variables (biases, norms) stay concrete."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def _host_truncated_normal(key_data: np.ndarray, shape: tuple[int, ...], std: float,
                           dtype: Any) -> np.ndarray:
    seed = np.asarray(key_data, dtype=np.uint32).reshape(-1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    bad = np.abs(x) > 2
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()), dtype=np.float32)
        bad = np.abs(x) > 2
    return (x * np.float32(std / _TRUNC_STD)).astype(dtype)


def lecun_normal_host(in_axes: tuple[int, ...]):
    """LeCun normal initialiser with fan_in = product of `in_axes` sizes (host RNG)."""

    def init(key, shape, dtype=jnp.float32):
        shape = tuple(int(s) for s in shape)
        fan_in = int(np.prod([shape[a] for a in in_axes]))
        std = float(np.sqrt(1.0 / max(fan_in, 1)))
        dtype = np.dtype(dtype)
        if _SHAPES_ONLY.get():
            return jax.ShapeDtypeStruct(shape, dtype)
        if isinstance(key, jax.core.Tracer):
            return jax.pure_callback(
                lambda kd: _host_truncated_normal(kd, shape, std, dtype),
                jax.ShapeDtypeStruct(shape, dtype), jax.random.key_data(key))
        return jnp.asarray(_host_truncated_normal(np.asarray(jax.random.key_data(key)), shape,
                                                  std, dtype))

    return init


def linear(in_features: int, out_features: int, *, use_bias: bool = True, zero: bool = False,
           dtype: Any = None, rngs: nnx.Rngs) -> nnx.Linear:
    """nnx.Linear (kernel [in, out]) with host init; zero=True gives a zero kernel."""
    kernel_init = nnx.initializers.zeros if zero else lecun_normal_host((0,))
    return nnx.Linear(in_features, out_features, use_bias=use_bias, dtype=dtype,
                      kernel_init=kernel_init, rngs=rngs)


def conv2d(in_features: int, out_features: int, kernel: int, *, stride: int = 1,
           padding: int | None = None, use_bias: bool = True, dtype: Any = None,
           rngs: nnx.Rngs) -> nnx.Conv:
    """nnx.Conv (HWIO kernel) with host init; padding defaults to (kernel - 1) // 2."""
    pad = (kernel - 1) // 2 if padding is None else padding
    return nnx.Conv(in_features, out_features, (kernel, kernel), strides=(stride, stride),
                    padding=((pad, pad), (pad, pad)), use_bias=use_bias, dtype=dtype,
                    kernel_init=lecun_normal_host((0, 1, 2)), rngs=rngs)
