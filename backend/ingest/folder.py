"""Reader for an image folder with one sub-folder per class, optionally under train/val/test."""

from __future__ import annotations

from pathlib import Path

from backend.ingest.candidates import SPLIT_SYNONYMS, Candidate, normalise_split
from backend.ingest.images import IMAGE_EXTENSIONS, sample_id_for_path
from backend.ingest.report import IngestReport


class SourceError(ValueError):
    """The source as a whole cannot be read (not a single sample); the message says what to do."""


def read_image_folder(root: str | Path, report: IngestReport) -> list[Candidate]:
    """Find ``root/<class>/<image>`` or ``root/<split>/<class>/<image>`` files.

    The split level is recognised when every sub-folder of ``root`` is a split name (train, val,
    valid, validation, test, ...). Files that are not images, or that sit outside a class folder,
    are reported and skipped. Hidden files and folders (``.name``) are ignored.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SourceError(f"{root} is not a folder")
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if not subdirs:
        raise SourceError(
            f"{root} has no sub-folders; expected one folder per class (root/<class>/<image>), "
            "optionally under train/, val/, test/"
        )
    split_level = all(d.name.lower() in SPLIT_SYNONYMS for d in subdirs)
    groups = [(normalise_split(d.name), d) for d in subdirs] if split_level else [("", root)]
    candidates: list[Candidate] = []
    for split, split_dir in groups:
        for loose in sorted(p for p in split_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            report.add(root, "file outside a class folder: move it into root/<class>/", path=loose)
        for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for path in sorted(class_dir.rglob("*")):
                if not path.is_file() or any(part.startswith(".") for part in path.relative_to(class_dir).parts):
                    continue
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    report.add(root, f"not an image file: extension {path.suffix or '(none)'!r}", path=path)
                    continue
                candidates.append(Candidate(sample_id_for_path(path), str(path), class_dir.name, split))
    return candidates
