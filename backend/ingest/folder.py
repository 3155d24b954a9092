"""Reader for an image folder with one sub-folder per class, optionally under train/val/test.

Everything in the folder is either read or reported; nothing is left out silently except hidden
names (``.name``). Symlinks are followed while they stay inside the folder (anywhere with
``allow_outside_root``); a link that leads back to a folder being read is a loop and is not
followed; a link to a file already found is the same sample (ids are the file's resolved path),
reported as a duplicate, and the file itself is preferred over the link. FIFOs, sockets and
devices are reported and never opened (reading a FIFO waits forever). A name that is not UTF-8
skips that one file or folder (shown with ``\\xNN`` escapes), not the whole source.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from backend.ingest.candidates import SPLIT_SYNONYMS, Candidate, normalise_split
from backend.ingest.images import IMAGE_EXTENSIONS, file_kind, sample_id_for_resolved
from backend.ingest.report import IngestReport, has_control_characters

OUTSIDE_HINT = "move it into the folder, or pass --allow-outside-root to read files outside it"


class SourceError(ValueError):
    """The source as a whole cannot be read (not a single sample); the message says what to do."""


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class _Entry:
    path: Path  # as walked (under root, possibly through symlinks)
    real: str  # resolved: no symlink, no '..'
    via_link: bool  # the walked path passes through a symlink


@dataclass
class _Walk:
    root: Path
    report: IngestReport
    allow_outside_root: bool
    ancestors: list[str] = field(default_factory=list)  # real paths of the folders being read

    def entries(self, folder: _Entry) -> tuple[list[_Entry], list[_Entry]]:
        """(sub-folders, regular files) of ``folder`` by name; everything else is reported."""
        dirs: list[_Entry] = []
        files: list[_Entry] = []
        try:
            with os.scandir(folder.path) as listing:
                found = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            self.report.add(self.root, f"unreadable folder: {exc.strerror or exc}", path=folder.path)
            return dirs, files
        for entry in found:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_link = entry.is_symlink()
                mode = os.stat(path).st_mode  # follows links
            except FileNotFoundError:
                target = os.readlink(path) if os.path.islink(path) else ""
                reason = f"dangling symlink: its target {target} does not exist" if target else \
                    "missing file: it disappeared while the folder was read"
                self.report.add(self.root, reason, path=path)
                continue
            except OSError as exc:
                reason = "symlink loop: the link never reaches a file" if exc.errno == errno.ELOOP else \
                    f"unreadable file: {exc.strerror or exc}"
                self.report.add(self.root, reason, path=path)
                continue
            is_dir = stat.S_ISDIR(mode)
            if not _is_utf8(entry.name):
                what = "folder" if is_dir else "file"
                self.report.add(self.root, f"{what} name is not UTF-8: rename it (shown with \\x escapes)", path=path)
                continue
            real = os.path.realpath(path) if is_link else os.path.join(folder.real, entry.name)
            if is_link and not self.allow_outside_root and not Path(real).is_relative_to(self.root):
                self.report.add(self.root, f"symlink outside the image folder: it points to {real}; {OUTSIDE_HINT}",
                                path=path)
                continue
            item = _Entry(path, real, folder.via_link or is_link)
            if is_dir:
                dirs.append(item)
            elif stat.S_ISREG(mode):
                files.append(item)
            else:
                self.report.add(self.root, f"not a regular file: {file_kind(mode)}; only image files are read",
                                path=path)
        return dirs, files

    def enter(self, folder: _Entry) -> bool:
        """False (and reported) when ``folder`` is, or holds, a folder being read: following it
        would read that folder again and again."""
        loop = next((a for a in self.ancestors if folder.real == a or a.startswith(folder.real + os.sep)), None)
        if loop is not None:
            self.report.add(self.root, f"symlink loop: it leads back to {folder.real}, a folder being read; "
                            "not followed", path=folder.path)
            return False
        return True

    def images(self, folder: _Entry) -> list[_Entry]:
        """Every image file under ``folder`` (recursively); non-image files are reported."""
        if not self.enter(folder):
            return []
        self.ancestors.append(folder.real)
        dirs, files = self.entries(folder)
        found = []
        for item in files:
            if item.path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(item)
            else:
                self.report.add(self.root, f"not an image file: extension {item.path.suffix or '(none)'!r}",
                                path=item.path)
        for sub in dirs:
            found.extend(self.images(sub))
        self.ancestors.pop()
        return found


def read_image_folder(root: str | Path, report: IngestReport, *, allow_outside_root: bool = False) -> list[Candidate]:
    """Find ``root/<class>/<image>`` or ``root/<split>/<class>/<image>`` files.

    The split level is recognised when every sub-folder of ``root`` is a split name (train, val,
    valid, validation, test, ...). Files that are not images, or that sit outside a class folder,
    are reported and skipped, and so is everything the module docstring lists. Ids are unique:
    each file is one candidate however many links lead to it.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SourceError(f"{root} is not a folder")
    if not _is_utf8(str(root)):
        raise SourceError(f"the path of {root!s} is not UTF-8; rename the folder")
    walk = _Walk(root, report, allow_outside_root)
    top = _Entry(root, str(root), False)
    walk.ancestors.append(top.real)
    subdirs, loose = walk.entries(top)
    if not subdirs:
        raise SourceError(
            f"{root} has no sub-folders; expected one folder per class (root/<class>/<image>), "
            "optionally under train/, val/, test/"
        )
    split_level = all(d.path.name.lower() in SPLIT_SYNONYMS for d in subdirs)
    groups: list[tuple[str, list[_Entry]]] = []
    if split_level:
        for split_dir in subdirs:
            if not walk.enter(split_dir):
                continue
            class_dirs, split_loose = walk.entries(split_dir)
            loose += split_loose
            groups.append((normalise_split(split_dir.path.name), class_dirs))
    else:
        groups.append(("", subdirs))
    for item in loose:
        report.add(root, "file outside a class folder: move it into root/<class>/", path=item.path)
    candidates: list[Candidate] = []
    kept: dict[str, tuple[int, _Entry]] = {}  # id -> (its position in candidates, its entry)
    for split, class_dirs in groups:
        for class_dir in class_dirs:
            label = class_dir.path.name
            if has_control_characters(label):
                report.add(root, "class folder name has a line break or control character: rename the folder",
                           path=class_dir.path)
                continue
            for item in walk.images(class_dir):
                _add_unique(candidates, kept, item, Candidate(sample_id_for_resolved(item.real), str(item.path),
                                                              label, split), root, report)
    return candidates


def _add_unique(candidates: list, kept: dict[str, tuple[int, _Entry]], item: _Entry, cand: Candidate,
                root: Path, report: IngestReport) -> None:
    """Add ``cand`` unless its file is already a candidate: the file reached without a symlink
    wins, the other path is reported as a duplicate of it."""
    first = kept.get(cand.id)
    if first is None:
        kept[cand.id] = (len(candidates), item)
        candidates.append(cand)
        return
    position, first_item = first
    if first_item.via_link and not item.via_link:  # the real file replaces the link found before it
        kept[cand.id] = (position, item)
        candidates[position] = cand
        item, first_item = first_item, item
    report.add(root, f"symlink to a file already ingested: duplicate of {first_item.path}", path=item.path)
