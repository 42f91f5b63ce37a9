"""Many clips at once: `optimize_many` runs jit(vmap(optimize)) with the clip axis sharded.

Clips are independent (no collectives): a clip that hits a NaN or diverges is flagged in its own
`Solution.diagnostics` and leaves the others untouched.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections

from josh_jax.optimize.solver import Solution, optimize
from josh_jax.prepare import Problem, dummy_problem, stack_problems


def make_clips_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D ("clips",) mesh over the first `num_devices` devices (default: all)."""
    n = num_devices or jax.device_count()
    return jax.make_mesh(
        (n,), ("clips",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:n]
    )


_CLIPS = jax.sharding.PartitionSpec("clips")


@functools.partial(jax.jit, static_argnames="config", in_shardings=_CLIPS, out_shardings=_CLIPS)
def _optimize_clips(problems: Problem, config) -> Solution:
    """vmap(optimize) over the leading clip axis, sharded over the "clips" axis of the mesh set
    with `jax.set_mesh`; `config` is static (hashable), so each config compiles once."""
    return jax.vmap(functools.partial(optimize, config=config))(problems)


@dataclasses.dataclass(frozen=True)
class BatchedOptimize:
    """The program `optimize_many` runs, for one config and mesh (`make_batched_optimize`).

    Attributes:
      config: the josh config, frozen.
      mesh: a jax Mesh with a "clips" axis.
    """

    config: ml_collections.FrozenConfigDict
    mesh: jax.sharding.Mesh

    def __call__(self, problems: Problem) -> Solution:
        """Solution [K, ...] of stacked Problems [K, ...] (K a multiple of the mesh size)."""
        with jax.set_mesh(self.mesh):
            return _optimize_clips(problems, self.config)

    def lower(self, problems: Problem) -> jax.stages.Lowered:
        """The program lowered for these shapes: `.compile()` compiles it ahead of time."""
        with jax.set_mesh(self.mesh):
            return _optimize_clips.lower(problems, self.config)


def make_batched_optimize(config, mesh: jax.sharding.Mesh) -> BatchedOptimize:
    """jit(vmap(optimize)) over stacked Problems, the clip axis sharded over `mesh`'s "clips" axis.

    The inputs must be placed on that sharding (`jax.device_put(problems,
    NamedSharding(mesh, PartitionSpec("clips")))`, as `optimize_many` does). Equal configs share
    one compiled program per input shape.
    """
    return BatchedOptimize(ml_collections.FrozenConfigDict(config), mesh)


def _pad_clips(problems: Problem, size: int) -> Problem:
    """Stacked problems padded to `size` clips with fully masked copies of the first."""
    num_clips = int(problems.cameras.frame_valid.shape[0])
    if size == num_clips:
        return problems
    dummy = dummy_problem(jax.tree_util.tree_map(lambda x: x[0], problems))
    extra = jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(x, (size - num_clips,) + x.shape), dummy
    )
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), problems, extra)


def optimize_many(problems: Problem | list[Problem], config, mesh=None) -> Solution:
    """jit(vmap(optimize)) over stacked Problems, the clip axis sharded on a ("clips",) mesh.

    The clip count is padded to a multiple of the mesh size with fully masked dummy clips; the
    returned Solution has the original clip count.

    Args:
      problems: a Problem with a leading clip axis (`stack_problems`), or a list of Problems.
      config: josh ConfigDict.
      mesh: a jax Mesh with a "clips" axis; None -> `make_clips_mesh()` over all devices.

    Returns:
      Solution with a leading clip axis.
    """
    if isinstance(problems, (list, tuple)):
        problems = stack_problems(problems)
    if mesh is None:
        mesh = make_clips_mesh()
    num_clips = int(problems.cameras.frame_valid.shape[0])
    num_devices = int(mesh.shape["clips"])
    padded = -(-num_clips // num_devices) * num_devices
    clips = jax.sharding.NamedSharding(mesh, _CLIPS)
    problems = jax.device_put(_pad_clips(problems, padded), clips)
    solutions = make_batched_optimize(config, mesh)(problems)
    if padded != num_clips:
        solutions = jax.tree_util.tree_map(lambda x: x[:num_clips], solutions)
    return solutions
