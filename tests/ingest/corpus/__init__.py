"""The broken-input corpus: every case writes its inputs into a tmp folder at test time (no binary
files are committed) and says what the ingest must do with them.

Each :class:`Case` names the files or rows the report must name, with a fragment of the reason
(and of what to do, where the message should say it), the action taken, and the good inputs that
must be kept. ``tests/ingest/test_broken_inputs.py`` runs them all; :data:`CASES` is the corpus.

Decisions the cases pin down:

- EXIF-rotated JPEG: width and height are the stored ones (before rotation), the pixels the
  embedder and the app's thumbnails read; the file is kept.
- Animated images: kept, the first frame is what gets embedded; the report notes it.
- Labels: commas, quotes, markup and any Unicode are kept verbatim (escaping is the display's
  job); a line break or other control character in a label refuses the row (usually an
  unclosed quote in the CSV).
- All-zero embedding rows are kept (their unit vector stays zero) with a note; NaN / inf rows
  are skipped.
- A symlink to a file already in the folder is one sample (the file's), the link reported.
- An embeddings file's ``path`` that leaves its folder is dropped (the vector is kept).
"""

from __future__ import annotations

from tests.ingest.corpus.base import Case, Expect
from tests.ingest.corpus.folders import image_cases, link_cases, name_cases
from tests.ingest.corpus.tables import embedding_cases, existing_cases, logits_cases, manifest_cases

CASES: list[Case] = [*image_cases(), *name_cases(), *link_cases(), *manifest_cases(), *existing_cases(),
                     *embedding_cases(), *logits_cases()]

__all__ = ["CASES", "Case", "Expect"]
