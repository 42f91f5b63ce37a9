"""The two data-parallel drivers of the JOSH3R train step, and their data placement.

* **jit + mesh** (`make_jit_step`, the default; current JAX practice): `jax.jit` over a named
  `("data",)` mesh, the batch sharded `P("data")`, the state replicated `P()`. XLA inserts the
  gradient all-reduce; BatchNorm statistics are computed over the *global* batch. With several
  processes the mesh spans every process's devices and the replicated state is one global array
  (what a multi-host orbax save needs).
* **pmap** (`make_pmap_step`): the same step under `jax.pmap(axis_name="data")`. The loss returns
  each device's share of the global mean (`pair_loss.reduce_losses(axis_name=...)`), gradients
  and metrics are `psum`-ed, and every BatchNorm gets `axis_name="data"`. `pmap_replicate` puts
  one copy of the state on each local device *from that device's own replica* (never an
  `n x state` array on device 0), `pmap_to_global` turns the pmap state back into globally
  replicated arrays without a copy (each device's buffer becomes that device's shard).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from trainers.train_step import DATA_AXIS, StepFns, train_step


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D `("data",)` mesh over all (or the first `num_devices`) devices, Auto axis type."""
    n = jax.device_count() if num_devices is None else int(num_devices)
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def shard_batch(mesh: jax.sharding.Mesh, local_batch: Mapping[str, np.ndarray]) -> dict:
    """Place this process's slice of the global batch on the mesh, split along `"data"`."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def replicate(mesh: jax.sharding.Mesh, tree: Any) -> Any:
    """Put a pytree on every device of the mesh (replicated): one global array per leaf.

    Every process must pass the same values (e.g. the state built from the same seed or file);
    each process fills only its own devices, from host memory.
    """
    sharding = NamedSharding(mesh, P())

    def one(x):
        host = np.asarray(jax.device_get(x))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def make_jit_step(fns: StepFns, mesh: jax.sharding.Mesh):
    """`step(state, batch) -> (state, metrics)`: `jax.jit` over the mesh; the state is donated."""
    replicated = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P(DATA_AXIS))
    return jax.jit(
        functools.partial(train_step, fns),
        in_shardings=(replicated, data),
        out_shardings=(replicated, replicated),
        donate_argnums=(0,),
    )


def make_pmap_step(fns: StepFns, devices: list | None = None):
    """`step(state, batch) -> (state, metrics)` with `jax.pmap` (leading device axis on both).

    Use `pmap_replicate` / `pmap_split_batch` to add the device axis, `pmap_unreplicate` to drop it.
    """
    return jax.pmap(
        functools.partial(train_step, fns, axis_name=DATA_AXIS),
        axis_name=DATA_AXIS,
        devices=devices,
        donate_argnums=(0,),
    )


def _local_mesh(devices: list | None) -> jax.sharding.Mesh:
    devices = list(jax.local_devices() if devices is None else devices)
    return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,))


def pmap_replicate(tree: Any, devices: list | None = None) -> Any:
    """The pmap input layout `[n, ...]` of a pytree, one replica per device, built per device.

    A leaf already replicated on those devices (e.g. from `replicate`) lends each device its own
    buffer (`[None]` on that device); any other leaf is first put on every device. Nothing
    gathers `n` copies on one device.

    Args:
      tree: arrays (jax or numpy).
      devices: the pmap devices (default: this process's devices, pmap's default).
    """
    mesh = _local_mesh(devices)
    devs = list(mesh.devices.flat)
    replicated = NamedSharding(mesh, P())

    def one(x):
        if not (isinstance(x, jax.Array) and x.is_fully_replicated
                and {d for d in devs} <= {s.device for s in x.addressable_shards}):
            x = jax.device_put(np.asarray(x), replicated)
        buffers = {s.device: s.data for s in x.addressable_shards}
        return jax.make_array_from_single_device_arrays(
            (len(devs),) + x.shape, NamedSharding(mesh, P(DATA_AXIS)),
            [buffers[d][None] for d in devs])

    return jax.tree.map(one, tree)


def pmap_to_global(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Globally replicated arrays on `mesh` from a pmap-replicated pytree (`[n_local, ...]`).

    Each device's replica becomes that device's shard (no copy across devices); with several
    processes the result is one global array per leaf, as a multi-host orbax save needs.
    Assumes the replicas are equal (they are after a pmap step: every update is `psum`-ed).
    """
    replicated = NamedSharding(mesh, P())

    def one(x):
        buffers = {s.device: s.data for s in x.addressable_shards}
        shape = x.shape[1:]
        local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
        return jax.make_array_from_single_device_arrays(
            shape, replicated, [buffers[d].reshape(shape) for d in local])

    return jax.tree.map(one, tree)


def pmap_unreplicate(tree: Any) -> Any:
    """Device 0's copy of a pmap-replicated pytree (for small trees such as metrics)."""
    return jax.tree.map(lambda x: x[0], tree)


def pmap_split_batch(batch: Mapping[str, np.ndarray], num_devices: int) -> dict:
    """Reshape every [B, ...] array to [num_devices, B // num_devices, ...]."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        if v.shape[0] % num_devices:
            raise ValueError(
                f"pmap_split_batch: batch key '{k}' has {v.shape[0]} examples, expected a "
                f"multiple of {num_devices} devices"
            )
        out[k] = v.reshape((num_devices, v.shape[0] // num_devices) + v.shape[1:])
    return out
