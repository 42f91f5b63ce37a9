"""josh_jax.quality: inputs that blind the method and unconverged stages mark a result suspect."""

import types

import numpy as np
from absl.testing import absltest

from experiments.configs import josh as josh_config
from josh_jax import quality
from josh_jax.clip import load_any
from tests.paths import SMALL_CLIP


def _clip(confidence=3.0, contact=1.0, T=3, H=8, W=12, P=1, V=20):
    return types.SimpleNamespace(
        confidence=np.full((T, H, W), confidence, np.float32),
        human_mask=np.zeros((T, H, W), bool),
        contact=np.full((P, T, V), contact, np.float32),
        smpl_valid=np.ones((P, T), bool),
    )


def _converged_curve(n=100):
    return np.stack([10.0 * np.exp(-np.arange(n) / 5.0) + 1.0] * 6, -1)


class QualityTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.config = josh_config.get_config("default")

    def _problems(self, clip, curves=(None, None)):
        diag = quality.input_diagnostics(clip, self.config)
        curves = [_converged_curve() if c is None else c for c in curves]
        diag["stage_rel_change"] = [quality.stage_convergence(c) for c in curves]
        return quality.quality_problems(diag, self.config.quality)

    def test_good_clip_not_suspect(self):
        self.assertEqual(self._problems(_clip()), [])
        self.assertEqual(quality.input_warnings(_clip(), self.config), [])

    def test_all_zero_and_all_one_confidences_suspect(self):
        for conf in (0.0, 1.0):
            problems = self._problems(_clip(confidence=conf))
            self.assertLen(problems, 1)
            self.assertIn("trusted scene pixels", problems[0])
            with self.assertLogs(level="WARNING"):
                warnings = quality.input_warnings(_clip(confidence=conf), self.config)
            self.assertIn("confidence:", warnings[0])

    def test_no_contacts_suspect(self):
        problems = self._problems(_clip(contact=0.0))
        self.assertEqual(len(problems), 1)
        self.assertIn("track 0", problems[0])
        with self.assertLogs(level="WARNING"):
            self.assertIn("contact:", quality.input_warnings(_clip(contact=0.0), self.config)[0])

    def test_unconverged_stage_suspect(self):
        ramp = np.stack([np.linspace(10.0, 1.0, 100)] * 6, -1)
        problems = self._problems(_clip(), curves=(None, ramp))
        self.assertLen(problems, 1)
        self.assertIn("stage 2 not converged", problems[0])

    def test_nan_and_diverged_reported(self):
        diag = quality.input_diagnostics(_clip(), self.config)
        diag.update(nan=True, diverged=True)
        self.assertLen(quality.quality_problems(diag, self.config.quality), 2)

    def test_reference_clip_inputs_are_good_and_broken_copies_are_not(self):
        clip, _ = load_any(SMALL_CLIP)
        thresholds = self.config.quality
        good = quality.input_diagnostics(clip, self.config)
        self.assertEqual(quality.quality_problems(good, thresholds), [])
        self.assertGreater(good["trusted_fraction"], 0.5)
        for broken, field in (
            (clip.replace(confidence=np.zeros_like(clip.confidence)), "trusted scene pixels"),
            (clip.replace(confidence=np.ones_like(clip.confidence)), "trusted scene pixels"),
            (clip.replace(contact=np.zeros_like(clip.contact)), "contact vertices"),
        ):
            problems = quality.quality_problems(quality.input_diagnostics(broken, self.config),
                                                thresholds)
            self.assertTrue(any(field in p for p in problems), problems)

    def test_result_diagnostics_round_trip(self):
        clip = _clip()
        solver = types.SimpleNamespace(curve_stage1=_converged_curve(),
                                       curve_stage2=np.stack([np.linspace(10.0, 1.0, 50)] * 6, -1))
        diag = quality.result_diagnostics(clip, solver, self.config)
        self.assertEqual(diag["quality_contacts_per_track"].tolist(), [60])
        problems = quality.result_quality_problems(diag, self.config.quality)
        self.assertEqual(len(problems), 1)
        self.assertIn("stage 2", problems[0])
        self.assertEqual(quality.result_quality_problems({}, self.config.quality), [])
        # A stage that stopped early (convergence) is judged on the rows it computed: stage 2
        # stopped after 10 steps of its falling curve, its tail rows repeating the last one.
        curve2 = np.array(solver.curve_stage2)
        curve2[11:] = curve2[10]
        solver.curve_stage2, solver.iters_run = curve2, np.array([50, 10])
        diag = quality.result_diagnostics(clip, solver, self.config)
        self.assertGreater(float(diag["quality_stage_rel_change"][1]), 0.01)  # 0 on all rows


if __name__ == "__main__":
    absltest.main()
