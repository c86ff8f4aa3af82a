"""zskit: zero-shot audio tagging, audio spectrogram transformers, hierarchical instrument tagging
and language-based audio retrieval, as a thin library under numbered notebooks.

Importing zskit has no side effects and imports no heavy module until it is used.
"""

from zskit.errors import ZskitError

__version__ = "0.1.0"

__all__ = ["ZskitError", "__version__"]
