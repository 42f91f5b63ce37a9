"""The README's Python snippets run as written (in a temporary folder)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_snippets():
    assert _python_blocks(), "README.md lost its Python snippets"


def test_readme_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    import trimesh

    mesh = trimesh.load(tmp_path / "mannequin.ply")
    assert mesh.vertices.shape == (6890, 3) and mesh.faces.shape == (13776, 3)
    # Posed, standing on the ground: lowest point at y ~ 0, head ~ 1.7 m.
    assert abs(mesh.bounds[0, 1]) < 0.02 and 1.5 < mesh.bounds[1, 1] < 1.9
