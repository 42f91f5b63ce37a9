"""From a video to a Clip and from chunks to one trajectory (docs/video.md).

Modules (one concept each):
  sampling  keyframes, chunks and window pairs as JOSH samples them (spec §1.5.2, §1.5.4, §1.7).
  sim3      weighted similarity transforms (Umeyama) and per-chunk global alignment.
  contacts  per-vertex contact probabilities from bodies and scene alone (no DECO).
  chunks    overlapping chunks of a long clip (the oracle front end of long videos).
  stitch    chunk Results -> one Result: Sim(3) alignment or JOSH's concatenation, assembly.
  long_video  the long-video driver: chunks in one `optimize_many` batch, then `stitch`.
"""
