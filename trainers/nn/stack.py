"""Stacked layers: n identical blocks as one module whose variables carry a leading layer axis,
applied with `jax.lax.scan` (the compiled program holds one block, whatever the depth), with
optional rematerialisation (`jax.checkpoint`) of the scanned body for training.

Same approach as `trainers/cut3r/layers.py` (`stack_modules`, `scan_stack`), plus extra
per-layer inputs and a remat policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

# Config string -> `jax.checkpoint` policy (None: save nothing, recompute the whole block).
REMAT_POLICIES: dict[str, Any] = {
    "full": None,
    "dots": jax.checkpoint_policies.dots_saveable,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def check_remat(remat: str) -> str:
    """Validates a remat policy name ('none', 'full', 'dots', 'dots_no_batch')."""
    if remat != "none" and remat not in REMAT_POLICIES:
        raise ValueError(f"model.remat: expected 'none' or one of {sorted(REMAT_POLICIES)}, "
                         f"found {remat!r}")
    return remat


def stack_modules(make: Callable[[], nnx.Module], n: int) -> nnx.Module:
    """n modules from `make()` merged into one whose every variable has a leading axis of n.

    Under tracing (`nnx.eval_shape`: the abstract build before loading a checkpoint) one module
    is made and broadcast: the values are placeholders and the trace stays small.
    """
    first = make()
    graphdef, state = nnx.split(first)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(state)):
        return nnx.merge(graphdef, jax.tree.map(
            lambda x: jnp.broadcast_to(x, (n,) + x.shape), state))
    states = [state] + [nnx.state(make()) for _ in range(n - 1)]
    return nnx.merge(graphdef, jax.tree.map(_stack, *states))


def _stack(*xs):
    if isinstance(xs[0], jax.ShapeDtypeStruct):  # `layers.shapes_only` builds
        return jax.ShapeDtypeStruct((len(xs),) + tuple(xs[0].shape), xs[0].dtype)
    return jnp.stack(xs)


def num_layers(stack: nnx.Module) -> int:
    """Depth of a stacked module (the leading axis of its variables)."""
    return int(jax.tree.leaves(nnx.state(stack))[0].shape[0])


def scan_layers(stacks: tuple[nnx.Module, ...], body: Callable, carry: Any, xs: Any = None, *,
                remat: str = "none"):
    """lax.scan of `body(blocks, carry, x) -> (carry, y)` over the layers of equally deep stacks.

    Args:
      stacks: stacked modules (`stack_modules`), read only (no state is written back).
      body: one layer; `blocks` are the layer's modules, `x` the layer's slice of `xs`.
      carry: initial carry.
      xs: optional per-layer inputs (leading axis = depth).
      remat: 'none', or a `REMAT_POLICIES` name: the body is wrapped in `jax.checkpoint`, so
        the backward pass recomputes the block's activations instead of storing them.

    Returns:
      (final carry, ys stacked on a leading layer axis).
    """
    splits = [nnx.split(s) for s in stacks]
    graphdefs = [g for g, _ in splits]
    states = tuple(s for _, s in splits)

    def step(c, layer):
        layer_states, x = layer
        blocks = [nnx.merge(g, s) for g, s in zip(graphdefs, layer_states, strict=True)]
        return body(blocks, c, x)

    if check_remat(remat) != "none":
        step = jax.checkpoint(step, policy=REMAT_POLICIES[remat])
    return jax.lax.scan(step, carry, (states, xs))
