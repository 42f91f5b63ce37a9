"""Fixed shapes for batching: bucket sizes, padding, stacking Problems on a clip axis.

Every variable-size set of a clip (keyframes, pairs, matches, tracks, contacts, vertices) is padded
to a bucket size (config `buckets`), so Problems of many clips share one compiled program and
stack on a leading axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from josh_jax.prepare.problem import Problem


def bucket_size(n: int, sizes: Sequence[int]) -> int:
    """Smallest bucket >= n; past the largest, the next multiple of the largest (n >= 1)."""
    n = max(int(n), 1)
    sizes = sorted(int(s) for s in sizes)
    for s in sizes:
        if s >= n:
            return s
    return -(-n // sizes[-1]) * sizes[-1]


def pad(x: np.ndarray, size: int, axis: int = 0, value=0) -> np.ndarray:
    """`x` padded with `value` to `size` along `axis` (never truncated)."""
    x = np.asarray(x)
    if x.shape[axis] > size:
        raise ValueError(f"cannot pad axis {axis} of size {x.shape[axis]} down to {size}")
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return np.pad(x, widths, constant_values=value)


def dummy_problem(problem: Problem) -> Problem:
    """A fully masked copy of `problem` (a padding clip): no matches, people or contacts."""
    zeros = jnp.zeros_like
    return dataclasses.replace(
        problem,
        matches=dataclasses.replace(problem.matches, conf=zeros(problem.matches.conf)),
        tracks=dataclasses.replace(problem.tracks, valid=zeros(problem.tracks.valid)),
        contacts=dataclasses.replace(problem.contacts, conf=zeros(problem.contacts.conf)),
        static=dataclasses.replace(problem.static, weight=zeros(problem.static.weight)),
    )


def stack_problems(problems: Sequence[Problem], pad_to: int | None = None) -> Problem:
    """Stacks Problems of equal bucket shapes on a new leading clip axis.

    Args:
      problems: Problems with identical array shapes (same buckets) and body model statics.
      pad_to: optional batch size; extra entries are dummy copies of the first clip with every
        mask cleared (they optimise nothing and are dropped by the caller).

    Returns:
      Problem whose arrays have a leading axis of len(problems) (or pad_to).

    Raises:
      ValueError: naming the first field whose shapes differ.
    """
    problems = list(problems)
    if not problems:
        raise ValueError("stack_problems: no problems given")
    ref = problems[0]
    ref_leaves, ref_tree = jax.tree_util.tree_flatten_with_path(ref)
    for k, p in enumerate(problems[1:], 1):
        leaves, tree = jax.tree_util.tree_flatten_with_path(p)
        if tree != ref_tree:
            raise ValueError(
                f"stack_problems: problem {k} has a different structure or body "
                f"model statics than problem 0"
            )
        for (path, a), (_, b) in zip(ref_leaves, leaves, strict=True):
            if np.shape(a) != np.shape(b):
                name = jax.tree_util.keystr(path, simple=True, separator=".")
                raise ValueError(
                    f"stack_problems: field {name!r} of problem {k} has shape {np.shape(b)}, "
                    f"expected {np.shape(a)} (use the same buckets for every clip)"
                )
    if pad_to is not None and pad_to > len(problems):
        problems = problems + [dummy_problem(ref)] * (pad_to - len(problems))
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *problems)
