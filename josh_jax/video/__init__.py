"""From a video to a Clip and from chunks to one trajectory (docs/video.md).

Modules (one concept each):
  sampling  keyframes, chunks and window pairs as JOSH samples them (spec §1.5.2, §1.5.4, §1.7).
  sim3      weighted similarity transforms (Umeyama) and per-chunk global alignment.
  contacts  per-vertex contact probabilities from bodies and scene alone (no DECO).
"""
