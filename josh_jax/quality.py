"""Results that say when they are bad: per-clip quality diagnostics and the `suspect` reasons.

`input_diagnostics` measures what the method can see in a clip (trusted scene pixels, contacts per
track); `stage_convergence` reads a stage's loss curve; `quality_problems` turns the diagnostics
into reasons under the thresholds of `experiments/configs/josh.py` (config.quality). A result with
any reason is `suspect`. `input_warnings` logs (absl) the inputs that leave the method blind,
naming the field and what to change.
"""

from collections.abc import Mapping

import numpy as np
from absl import logging


def trusted_pixel_fraction(
    confidence: np.ndarray, human_mask: np.ndarray, conf_offset: float, conf_thres: float
) -> float:
    """Share of non-human pixels JOSH trusts as scene: conf - conf_offset > conf_thres.

    Args:
      confidence: float [T, H, W] raw pointmap confidence (`Clip.confidence`).
      human_mask: bool [T, H, W] human pixels (never scene).
      conf_offset, conf_thres: config.conf_offset (0.999) and config.conf_thres (0.1).
    """
    trusted = (np.asarray(confidence) - conf_offset > conf_thres) & ~np.asarray(human_mask, bool)
    return float(trusted.mean()) if trusted.size else 0.0


def contacts_per_track(contact: np.ndarray, smpl_valid: np.ndarray, thres: float) -> np.ndarray:
    """int [P] contact-labelled (> thres) vertices over the valid frames of each track.

    Args:
      contact: float [P, T, V] per-vertex contact probability (`Clip.contact`).
      smpl_valid: bool [P, T].
    """
    labelled = (np.asarray(contact) > thres) & np.asarray(smpl_valid, bool)[..., None]
    return labelled.sum(axis=(1, 2)).astype(np.int64)  # (P=0 gives an empty array)


def input_diagnostics(clip, config) -> dict[str, object]:
    """What the method can see in `clip` (a `josh_jax.clip.Clip`) under `config` (josh.py)."""
    return {
        "trusted_fraction": trusted_pixel_fraction(
            clip.confidence, clip.human_mask, config.conf_offset, config.conf_thres
        ),
        "contacts_per_track": contacts_per_track(
            clip.contact, clip.smpl_valid, config.contact_thres
        ).tolist(),
    }


def stage_convergence(curve: np.ndarray) -> float:
    """Relative change of the total loss over a stage's last 10 % of iterations (0 = flat).

    Args:
      curve: float [I, C] loss per iteration, column 0 the total (Diagnostics.curve_stage*).
    """
    total = np.asarray(curve, np.float64)[:, 0]
    total = total[np.isfinite(total)]
    if total.size < 2:
        return float("inf")
    back = max(1, total.size // 10)
    return float(abs(total[-1] - total[-1 - back]) / max(abs(total[-1]), 1e-12))


def _ran(curve, iters_run) -> np.ndarray:
    """The rows of a stage's curve that were computed: a stage that stopped early (convergence,
    NaN) repeats its last row after `iters_run` + 1 rows."""
    curve = np.asarray(curve)
    return curve[: min(int(iters_run) + 1, curve.shape[0])]


def result_diagnostics(clip, solver_diagnostics, config) -> dict[str, np.ndarray]:
    """The quality keys stored in `Result.diagnostics` (npz `diag_quality_*`).

    quality_trusted_fraction float32[], quality_contacts_per_track int32[P],
    quality_stage_rel_change float32[2] (`stage_convergence` of each stage's computed curve rows).
    """
    diag = input_diagnostics(clip, config)
    iters = (len(solver_diagnostics.curve_stage1), len(solver_diagnostics.curve_stage2))
    iters_run = np.asarray(getattr(solver_diagnostics, "iters_run", iters)).reshape(-1)
    return {
        "quality_trusted_fraction": np.float32(diag["trusted_fraction"]),
        "quality_contacts_per_track": np.asarray(diag["contacts_per_track"], np.int32),
        "quality_stage_rel_change": np.asarray(
            [stage_convergence(_ran(solver_diagnostics.curve_stage1, iters_run[0])),
             stage_convergence(_ran(solver_diagnostics.curve_stage2, iters_run[1]))], np.float32),
    }


def result_quality_problems(result_diagnostics: Mapping[str, object], thresholds) -> list[str]:
    """`quality_problems` of a Result's diagnostics (keys of `result_diagnostics`; [] without)."""
    if "quality_trusted_fraction" not in result_diagnostics:
        return []
    return quality_problems(
        {
            "trusted_fraction": float(np.asarray(result_diagnostics["quality_trusted_fraction"])),
            "contacts_per_track": np.asarray(
                result_diagnostics["quality_contacts_per_track"]).tolist(),
            "stage_rel_change": np.asarray(
                result_diagnostics["quality_stage_rel_change"]).tolist(),
        },
        thresholds,
    )


def quality_problems(diagnostics: Mapping[str, object], thresholds) -> list[str]:
    """Reasons a result is suspect ([] = none), one short sentence each.

    Args:
      diagnostics: keys from `input_diagnostics` ("trusted_fraction", "contacts_per_track") and,
        optionally, "stage_rel_change" (sequence, one `stage_convergence` per stage), "nan",
        "diverged".
      thresholds: config.quality (min_trusted_fraction, min_contacts_per_track,
        max_stage_rel_change).
    """
    problems = []
    if diagnostics.get("nan"):
        problems.append("a non-finite loss or parameter was met")
    if diagnostics.get("diverged"):
        problems.append("a stage ended above twice its initial loss (diverged)")
    frac = diagnostics.get("trusted_fraction")
    if frac is not None and frac < thresholds.min_trusted_fraction:
        problems.append(
            f"trusted scene pixels {frac:.1%} < {thresholds.min_trusted_fraction:.1%}"
        )
    for t, n in enumerate(diagnostics.get("contacts_per_track", ())):
        if n < thresholds.min_contacts_per_track:
            problems.append(f"track {t}: {n} contact vertices < {thresholds.min_contacts_per_track}")
    for s, change in enumerate(diagnostics.get("stage_rel_change", ()), start=1):
        if not change <= thresholds.max_stage_rel_change:
            problems.append(
                f"stage {s} not converged: loss still changing {change:.1%} over its last 10 %"
            )
    return problems


def input_warnings(clip, config) -> list[str]:
    """Log (absl warning) and return the inputs that make the method blind to scene or contacts."""
    diag = input_diagnostics(clip, config)
    msgs = []
    if diag["trusted_fraction"] == 0.0:
        msgs.append(
            "confidence: no trusted scene pixel (JOSH keeps conf - "
            f"{config.conf_offset} > {config.conf_thres}); write the depth model's raw confidence"
            f" (MASt3R's is >= 1), at least {config.conf_offset + config.conf_thres:.3f} on scene"
            " pixels, or lower config.conf_offset"
        )
    for t, n in enumerate(diag["contacts_per_track"]):
        if n == 0:
            msgs.append(
                f"contact: track {t} has no vertex above contact_thres={config.contact_thres}; the"
                " human scale is unconstrained: give per-vertex contact probabilities (e.g. DECO)"
            )
    for m in msgs:
        logging.warning("%s", m)
    return msgs
