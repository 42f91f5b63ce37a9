"""Reusable Flax NNX blocks for CroCo/DUSt3R/MASt3R-style models (ViT, RoPE2D, decoder, DPT)."""
