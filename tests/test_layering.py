"""The import graph of the project: no cycles, arrows only in the allowed directions.

Every import of every module is read from the source (AST, including imports inside functions, so
that a deferred import cannot hide an arrow). Rules (docs/architecture.md):

- `losses` imports only jax and the Python standard library (not even numpy);
- `body_models` imports nothing of the project;
- `josh_jax` never imports `trainers`, `experiments`, `benchmarks` or `tests`;
- library code (`josh_jax`, `body_models`, `losses`, `trainers`) never imports `experiments`,
  `benchmarks` or `tests`; the binaries (`experiments`) never import `benchmarks` or `tests`;
- inside `josh_jax`, the stages import only earlier stages, in the order of the data flow
  (`JOSH_JAX_STAGES`); `synthetic` stands beside them and imports only the foundations and the
  clip; nothing downstream of the `Result` reads the optimizer;
- the project's modules form no import cycle.
"""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("josh_jax", "body_models", "losses", "trainers", "experiments", "benchmarks", "tests")
LIBRARY = ("josh_jax", "body_models", "losses", "trainers")

# The data flow inside josh_jax: a module may import its own stage and earlier ones. A module
# belongs to the stage of its longest matching prefix.
JOSH_JAX_STAGES = (
    ("foundations", ("josh_jax", "josh_jax.errors", "josh_jax.interpolation", "josh_jax.geometry",
                     "josh_jax.convex", "josh_jax.io.atomic")),
    ("clip", ("josh_jax.clip", "josh_jax.preflight", "josh_jax.video.chunks")),
    ("prepare", ("josh_jax.prepare",)),
    ("optimize", ("josh_jax.optimize",)),
    ("result", ("josh_jax.result", "josh_jax.world", "josh_jax.result_checks",
                "josh_jax.video.stitch", "josh_jax.video.seam_refine")),
    ("outputs", ("josh_jax.io", "josh_jax.evaluate", "josh_jax.metrics")),
    ("pipeline", ("josh_jax.pipeline", "josh_jax.video.long_video")),
)
SYNTHETIC = "josh_jax.synthetic"
SYNTHETIC_MAY_IMPORT = ("foundations", "clip")
OPTIMIZER = ("prepare", "optimize")
DOWNSTREAM_OF_RESULT = ("result", "outputs")


def project_modules() -> dict[str, str]:
    """{dotted module name: file path} of every project module."""
    modules = {}
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "data")]
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


MODULES = project_modules()


def imports_of(module: str) -> set[str]:
    """Top-level names and project modules imported anywhere in `module` (functions included).

    `from a.b import c` counts as importing `a.b.c` when that is a module, else `a.b`.
    """
    path = MODULES[module]
    is_package = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base == "__future__":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return found


GRAPH = {m: {i for i in imports_of(m) if i in MODULES} for m in MODULES}
EXTERNAL = {m: {i.split(".")[0] for i in imports_of(m)} - set(PACKAGES) for m in MODULES}


def top(module: str) -> str:
    return module.split(".")[0]


def stage_of(module: str) -> str | None:
    best, stage = "", None
    for name, prefixes in JOSH_JAX_STAGES:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, stage = prefix, name
    return stage


def test_the_walk_sees_the_project():
    assert len(MODULES) > 60 and "josh_jax.pipeline" in MODULES and "losses.robust" in MODULES
    # Imports inside functions are seen too.
    assert "josh_jax.result" in imports_of("josh_jax.pipeline")


def test_losses_import_only_jax_and_the_standard_library():
    for m in (m for m in MODULES if top(m) == "losses"):
        outside = {i for i in EXTERNAL[m] if i != "jax" and i not in sys.stdlib_module_names}
        project = {top(i) for i in GRAPH[m]} - {"losses"}
        assert not outside and not project, (m, outside | project)


@pytest.mark.parametrize("package,forbidden", [
    ("body_models", set(PACKAGES) - {"body_models"}),
    ("josh_jax", {"trainers", "experiments", "benchmarks", "tests"}),
    ("trainers", {"experiments", "benchmarks", "tests"}),
    ("experiments", {"benchmarks", "tests"}),
])
def test_forbidden_directions(package, forbidden):
    bad = {m: sorted(i for i in GRAPH[m] if top(i) in forbidden)
           for m in MODULES if top(m) == package}
    assert not {m: b for m, b in bad.items() if b}


def test_josh_jax_stages_follow_the_data_flow():
    order = [name for name, _ in JOSH_JAX_STAGES]
    bad = []
    for m in (m for m in MODULES if top(m) == "josh_jax"):
        for i in (i for i in GRAPH[m] if top(i) == "josh_jax"):
            if m.startswith(SYNTHETIC):
                ok = i.startswith(SYNTHETIC) or stage_of(i) in SYNTHETIC_MAY_IMPORT
            elif i.startswith(SYNTHETIC):
                ok = False  # synthetic stands beside the pipeline: nothing of it depends on it
            else:
                ms, is_ = stage_of(m), stage_of(i)
                assert ms is not None and is_ is not None, f"declare the stage of {m} / {i}"
                ok = order.index(is_) <= order.index(ms)
                if ms in DOWNSTREAM_OF_RESULT and is_ in OPTIMIZER:
                    ok = False  # the Result is the contract: nothing after it reads the optimizer
            if not ok:
                bad.append(f"{m} -> {i}")
    assert not bad, bad


def test_no_import_cycles():
    # Tarjan's strongly connected components over the module graph.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in GRAPH[v]:
                cycles.append(sorted(component))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    assert not cycles, cycles


# Files that still write with their own temporary-name-and-rename code instead of
# `josh_jax.io.atomic` (body_models may not import the project).
OWN_ATOMIC_WRITERS = {"body_models/loaders.py"}


def test_one_atomic_writer():
    writers = {os.path.relpath(path, ROOT) for m, path in MODULES.items()
               if top(m) != "tests" and "os.replace(" in open(path).read()}
    assert writers == {"josh_jax/io/atomic.py"} | OWN_ATOMIC_WRITERS


# Sizes (docs/architecture.md, "Sizes"): no module over ~400 lines, no function over ~80, outside
# the tests. Exceptions, each with its reason:
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80
LONG_FUNCTIONS = {
    # Long only by its keyword signature, its docstring and the Result's fields; the body is three
    # named steps.
    "josh_jax/result.py:assemble_result",
}


def test_modules_and_functions_stay_short():
    long_modules, long_functions = [], []
    for m, path in MODULES.items():
        if top(m) == "tests":
            continue
        source = open(path).read()
        rel = os.path.relpath(path, ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(rel)
        for node in ast.walk(ast.parse(source, path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{rel}:{node.name}"
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES and (
                        name not in LONG_FUNCTIONS):
                    long_functions.append(name)
    assert not long_modules and not long_functions, (long_modules, long_functions)
