"""Models that put encoders and heads together: ZeroShotTagger (paper 1), DualEncoder (papers 4, 5)."""
