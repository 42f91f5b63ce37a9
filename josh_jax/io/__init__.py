"""Writers and readers of files on disk: results, trajectories, scenes, previews, reports, animated
glTF, AMASS-style motion, the offline viewer, and the streaming video frame reader.

Every file is written through `josh_jax.io.atomic`: a reader never sees a partial file under the
final name, and a failure leaves the previous file (if any) untouched. `josh_jax.io.outputs` picks
the writers of one clip by name.
"""
