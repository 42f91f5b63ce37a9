"""From a video to a Clip and from chunks to one trajectory (docs/video.md).

Modules (one concept each):
  sampling  keyframes, chunks and window pairs as JOSH samples them (spec §1.5.2, §1.5.4, §1.7).
  sim3      weighted similarity transforms (Umeyama, with orientations) and per-chunk alignment.
  seams     joint refinement across chunk seams: smooth per-frame corrections (quadratic, CG).
  contacts  per-vertex contact probabilities from bodies and scene alone (no DECO).
  chunks    overlapping chunks of a long clip (the oracle front end of long videos).
  stitch    chunk Results -> one Result: alignment + seam refinement or JOSH's concatenation.
  long_video  the long-video driver: chunks in one `optimize_many` batch, then `stitch`.
"""
