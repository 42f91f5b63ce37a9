"""Writers and readers of files on disk: results, trajectories, scenes, previews, reports.

Every file is written through `josh_jax.io.atomic`: a reader never sees a partial file under the
final name, and a failure leaves the previous file (if any) untouched.
"""
