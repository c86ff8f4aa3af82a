"""Heads on top of (frozen or fine-tuned) encoders: the zero-shot projection and hierarchical heads."""
