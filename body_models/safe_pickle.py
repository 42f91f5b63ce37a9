"""A restricted unpickler for the official SMPL/SMPL-H/MANO `.pkl` files, without chumpy.

The official files were pickled under Python 2 with chumpy arrays (`chumpy.ch.Ch`) and scipy sparse
matrices inside. `SafeUnpickler.find_class` resolves only:

  * chumpy classes (any `chumpy.*` module): a stand-in that keeps the pickled state; its value is
    the state's `x` array (what `Ch.r` returns for a plain Ch);
  * scipy sparse csc/csr matrices: a stand-in that rebuilds a dense numpy array from
    `data`/`indices`/`indptr`/`_shape` (scipy is not imported);
  * numpy's array/dtype/scalar reconstructors, and copyreg's `_reconstructor` restricted to the
    stand-ins above;
  * harmless builtins (object, set, frozenset, slice, complex) and `_codecs.encode` restricted to
    str -> latin1 bytes (how Python 3 writes bytes at protocol < 3).

Every other global is refused with `UnsafePickleError` before anything is called, so a payload such
as `os.system` never runs.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from body_models.errors import InputError


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list."""


class UnsafePickleFileError(InputError, UnsafePickleError):
    """`UnsafePickleError` naming the file (`<file>: (file): expected ..., found ...`): an input
    error, so the binaries print one line (`body_models.load_model` raises it)."""


class ChumpyStandIn:
    """Holds the pickled state of a chumpy object; `to_numpy()` returns its value."""

    chumpy_type = "Ch"

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_state": state}

    def to_numpy(self) -> np.ndarray:
        x = self.state.get("x")
        if x is None:
            raise pickle.UnpicklingError(
                f"chumpy object of type {self.chumpy_type!r} has no stored value 'x' "
                f"(state keys: {sorted(map(str, self.state))})"
            )
        return np.asarray(to_numpy(x))


class SparseStandIn:
    """Holds the pickled state of a scipy.sparse csc/csr matrix; `to_numpy()` densifies it."""

    sparse_format = "csc"

    def __setstate__(self, state):
        self.state = state

    def to_numpy(self) -> np.ndarray:
        s = self.state
        try:
            shape = tuple(int(n) for n in s["_shape" if "_shape" in s else "shape"])
            data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
        except KeyError as e:
            raise pickle.UnpicklingError(f"sparse matrix state misses key {e}") from None
        # csc: indptr runs over columns and indices are rows; csr the other way round.
        major = shape[1] if self.sparse_format == "csc" else shape[0]
        dense = np.zeros((major, shape[0] if self.sparse_format == "csc" else shape[1]), data.dtype)
        counts = np.diff(indptr)
        dense[np.repeat(np.arange(major), counts), indices] = data
        return dense.T if self.sparse_format == "csc" else dense


def _chumpy_class(name: str) -> type:
    return type(f"Chumpy_{name}", (ChumpyStandIn,), {"chumpy_type": name})


def _sparse_class(fmt: str) -> type:
    return type(f"Sparse_{fmt}", (SparseStandIn,), {"sparse_format": fmt})


_SPARSE = {"csc_matrix": _sparse_class("csc"), "csr_matrix": _sparse_class("csr")}
_STAND_INS: dict[str, type] = {}


def _numpy_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"numpy _reconstruct of {subtype!r} refused (only numpy.ndarray)")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype, *args):
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray

    return multiarray.scalar(dtype, *args)


def _copyreg_reconstructor(cls, base, state):
    if base is not object or not issubclass(cls, (ChumpyStandIn, SparseStandIn)):
        raise UnsafePickleError(f"copyreg._reconstructor({cls!r}, {base!r}) refused")
    return object.__new__(cls)


def _codecs_encode(text, encoding="latin1"):
    # Python 3 pickles (protocol < 3) store bytes (numpy buffers) as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode with {type(text).__name__} / {encoding!r} refused")
    return text.encode("latin1")


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_BUILTINS = {
    "object": object,
    "set": set,
    "frozenset": frozenset,
    "slice": slice,
    "complex": complex,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals described in the module docstring."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            if name not in _STAND_INS:
                _STAND_INS[name] = _chumpy_class(name)
            return _STAND_INS[name]
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _SPARSE[name]
        if module in _NUMPY_MODULES and name == "_reconstruct":
            return _numpy_reconstruct
        if module in _NUMPY_MODULES and name == "scalar":
            return _numpy_scalar
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _copyreg_reconstructor
        if module == "_codecs" and name == "encode":
            return _codecs_encode
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return _BUILTINS[name]
        raise UnsafePickleError(
            f"refusing to load global '{module}.{name}': only chumpy arrays, scipy sparse "
            "matrices and numpy arrays are allowed in a body model pickle"
        )


def to_numpy(x: Any) -> Any:
    """Converts stand-ins (recursively inside dicts/lists) to numpy arrays; others unchanged."""
    if isinstance(x, (ChumpyStandIn, SparseStandIn)):
        return x.to_numpy()
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(v) for v in x)
    return x


def load(path: str) -> Any:
    """Safely unpickles `path` (Python 2 pickles decoded as latin1) and converts to numpy."""
    with open(path, "rb") as f:
        obj = SafeUnpickler(f, encoding="latin1").load()
    return to_numpy(obj)
