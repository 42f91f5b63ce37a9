"""Human3R in JAX: the parts added on top of CUT3R (spec `human3r_spec.md` §4).

Public API so far (pure functions, static shapes under jit):
- `detect.pad_image`: the Multi-HMR input image (§4.1).
- `detect.nms_scores`, `detect.detect_heads`: head detection with NMS and the 0.3 threshold, a fixed
  maximum of people per frame with a validity mask, row-major order as `torch.where` (§4.3, §4.13).
- `detect.unpad_uv`, `detect.cut3r_cells`: head location -> CUT3R token cell (§4.4).
- `tracking.log_optimal_transport`: SuperGlue Sinkhorn with masked (padded) rows/columns (§4.11).
"""
