"""Paths shared by the tests: the repo's test data and the reference files beside the checkout."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
REFERENCE_CLIP = os.path.join(ROOT, "..", "shared", "reference", "josh_synthetic_clip.npz")
SMPL_PATH = os.path.join(DATA, "synthetic_smpl_neutral.npz")
REF_INPUTS = os.path.join(DATA, "josh_reference_opt_inputs.npz")
SMALL_CLIP = os.path.join(DATA, "reference_clip_small.npz")
