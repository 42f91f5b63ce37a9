"""Writers and readers of result files (animated glTF, AMASS-style npz, viewer recordings, ...)."""
