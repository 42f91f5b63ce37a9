"""Importers: other on-disk layouts to a `Clip` (and its `GroundTruth`).

- `reference.py`: the reference synthetic clip (`josh_synthetic_clip.npz`);
- `josh_folder.py`: JOSH's preprocessing folder plus the user's front-end `.npz`;
- `auto.py`: `load_any(path)`, which picks the right reader (also for our own clip `.npz`).
"""
