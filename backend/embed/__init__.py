"""Image and text embedders: resized pixels, or open_clip models, batch by batch to numpy.

Importing this package is light (numpy and PIL); torch and open_clip load only when a CLIP model
is asked for.

Examples
--------
>>> embedder = get_embedder("pixels-8")
>>> embedder.key, embedder.dim
('pixels-8', 192)
"""

from backend.embed.base import EmbeddedBatch, Embedder, EmbedderError
from backend.embed.factory import get_embedder

__all__ = ["EmbeddedBatch", "Embedder", "EmbedderError", "get_embedder"]
