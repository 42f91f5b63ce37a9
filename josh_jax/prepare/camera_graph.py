"""The camera kinematic chain: a maximum spanning tree of the match graph (docs/method.md §1.5.10).

Every camera is parametrised relative to its parent in this tree (docs/method.md §2.4). The tree,
its root and its edge order follow MASt3R-SfM: scipy's minimum spanning tree of the negated pair
scores, rooted near the tree's centre, edges in breadth-first order.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph


def _bfs_ranks(tree: scipy.sparse.csr_array, start: int) -> np.ndarray:
    order = scipy.sparse.csgraph.breadth_first_order(
        tree, start, directed=False, return_predecessors=False
    )
    ranks = np.full(tree.shape[0], -1, np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def max_spanning_tree(
    num_images: int, pairs: np.ndarray, scores: np.ndarray
) -> tuple[int, np.ndarray]:
    """Maximum spanning tree of pair scores with MASt3R-SfM's root and BFS edge order.

    scipy's minimum spanning tree of -S; the root is argmax min(r1, r2) of BFS ranks from the two
    ends of a double sweep (an approximate tree centre); edges are (parent, child) in BFS order.

    Args:
        num_images: N.
        pairs: int[E, 2] image pairs (unordered).
        scores: float[E] pair score (number of valid matches).

    Returns:
        (root, edges int32[N-1, 2]).

    Raises:
        ValueError: if the match graph is disconnected (naming the unreachable images).
    """
    S = np.zeros((num_images, num_images), np.float64)
    for (i, j), sc in zip(np.asarray(pairs), np.asarray(scores, np.float64), strict=True):
        if i != j and sc > 0:
            S[i, j] = S[j, i] = max(S[i, j], sc)
    msp = scipy.sparse.csgraph.minimum_spanning_tree(scipy.sparse.csr_array(-S))
    ranks = _bfs_ranks(msp, 0)
    if np.any(ranks < 0):
        missing = np.nonzero(ranks < 0)[0].tolist()
        raise ValueError(
            f"max_spanning_tree: the match graph is disconnected; images {missing} "
            f"share no match with image 0"
        )
    r2 = _bfs_ranks(msp, int(np.argmax(ranks)))
    r1 = _bfs_ranks(msp, int(np.argmax(r2)))
    root = int(np.argmax(np.minimum(r1, r2)))
    order, pred = scipy.sparse.csgraph.breadth_first_order(
        msp, root, directed=False, return_predecessors=True
    )
    edges = np.array([(pred[i], i) for i in order[1:]], np.int32).reshape(-1, 2)
    return root, edges


def chain_parents(edges: np.ndarray, size: int) -> np.ndarray:
    """int32[size] parent of each camera in the tree (-1 for the root and padding slots).

    Args:
      edges: int[N-1, 2] (parent, child) edges of `max_spanning_tree`.
      size: number of slots (N, or the padded frame bucket).
    """
    parent = np.full(size, -1, np.int32)
    for a, b in np.asarray(edges).tolist():
        parent[b] = a
    return parent
