"""Image-folder cases: broken and unusual image files, file and folder names, symlinks, FIFOs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from backend.storage import Workspace
from tests.ingest.corpus.base import (
    Case,
    Expect,
    bytes_name,
    folder_case,
    jpeg,
    labels_are,
    png,
    png_header_only,
    size_of,
    stored,
    symlink,
)


def image_cases() -> list[Case]:
    def add(write: Callable[[Path], object]) -> Callable[[Path, Path], None]:
        return lambda root, tmp: write(root)

    def truncated_png(root: Path) -> None:
        data = png(root / "cat" / "whole.png", 3, size=(64, 64)).read_bytes()
        (root / "cat" / "whole.png").unlink()
        (root / "cat" / "truncated.png").write_bytes(data[: len(data) // 2])

    def truncated_jpeg(root: Path) -> None:
        data = jpeg(root / "cat" / "whole.jpg", size=(64, 64)).read_bytes()
        (root / "cat" / "whole.jpg").unlink()
        (root / "cat" / "truncated.jpg").write_bytes(data[: len(data) // 2])

    def png_16bit(root: Path) -> None:
        (root / "dog").mkdir(exist_ok=True)
        Image.fromarray(np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000).save(root / "dog" / "deep16.png")
        with Image.open(root / "dog" / "deep16.png") as img:
            assert img.mode.startswith("I")

    def animated(root: Path) -> None:
        frames = [Image.new("RGB", (8, 8), color=(c, 255 - c, 0)) for c in (0, 120, 240)]
        frames[0].save(root / "cat" / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)

    return [
        folder_case("truncated-png", add(truncated_png), (Expect("corrupt image", "truncated.png"),)),
        folder_case("truncated-jpeg", add(truncated_jpeg), (Expect("corrupt image", "truncated.jpg"),)),
        folder_case("zero-byte-png", add(lambda r: (r / "cat" / "empty.png").write_bytes(b"")),
                    (Expect(("corrupt image", "empty"), "empty.png"),)),
        folder_case("text-named-png", add(lambda r: (r / "cat" / "fake.png").write_text("hello")),
                    (Expect("not a format PIL can read", "fake.png"),)),
        folder_case("non-image-extension", add(lambda r: (r / "cat" / "notes.txt").write_text("x")),
                    (Expect("not an image file", "notes.txt"),)),
        folder_case("cmyk-jpeg", add(lambda r: jpeg(r / "cat" / "cmyk.jpg", mode="CMYK", size=(9, 7))),
                    kept=("cmyk.jpg",), check=size_of("cmyk.jpg", 9, 7)),
        folder_case("16-bit-png", add(png_16bit), kept=("deep16.png",), check=size_of("deep16.png", 7, 5)),
        folder_case("rgba-png", add(lambda r: png(r / "cat" / "alpha.png", 9, mode="RGBA")), kept=("alpha.png",)),
        folder_case("palette-png-with-transparency",
                    add(lambda r: Image.new("P", (4, 4), 3).save(r / "dog" / "pal.png", transparency=3)),
                    kept=("pal.png",)),
        folder_case("animated-gif", add(animated),
                    (Expect(("animated", "first frame"), "anim.gif", action="kept"),), kept=("anim.gif",)),
        folder_case("exif-rotated-jpeg",  # stored 16 x 12, displayed 12 x 16: the stored size is kept
                    add(lambda r: jpeg(r / "dog" / "rotated.jpg", size=(16, 12), exif_orientation=6)),
                    kept=("rotated.jpg",), check=size_of("rotated.jpg", 16, 12)),
        folder_case("png-header-50000x50000", add(lambda r: png_header_only(r / "cat" / "bomb.png", 50_000, 50_000)),
                    (Expect(("image too large", "2,500,000,000 pixels", "downscale"), "bomb.png"),)),
        folder_case("png-header-above-the-limit-below-pils-error",  # 144M pixels: PIL only warns
                    add(lambda r: png_header_only(r / "cat" / "big.png", 12_000, 12_000)),
                    (Expect(("image too large", "144,000,000 pixels"), "big.png"),)),
        folder_case("png-with-garbage-after-the-signature",
                    add(lambda r: (r / "dog" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))),
                    (Expect("corrupt image", "garbage.png"),)),
    ]


def name_cases() -> list[Case]:
    def non_utf8_file(root: Path, tmp: Path) -> None:
        with open(bytes_name(root / "cat", b"bad\xff name.png"), "wb") as fh:
            fh.write((root / "cat" / "good_cat1.png").read_bytes())

    def non_utf8_folder(root: Path, tmp: Path) -> None:
        folder = bytes_name(root, b"caf\xe9")
        os.mkdir(folder)
        with open(folder + b"/x.png", "wb") as fh:
            fh.write((root / "cat" / "good_cat1.png").read_bytes())

    def control_char_folder(root: Path, tmp: Path) -> None:
        png(root / "two\nlines" / "x.png", 4)

    return [
        folder_case("unicode-file-name", lambda r, t: png(r / "cat" / "猫 café ü.png", 5), kept=("猫 café ü.png",)),
        folder_case("unicode-class-folder", lambda r, t: png(r / "чайка" / "bird.png", 5), kept=("bird.png",),
                    check=labels_are({"cat", "dog", "чайка"})),
        folder_case("non-utf8-file-name", non_utf8_file,
                    (Expect(("file name is not UTF-8", "rename"), "bad\\xff name.png"),)),
        folder_case("non-utf8-class-folder", non_utf8_folder,
                    (Expect(("folder name is not UTF-8", "rename"), "caf\\xe9"),)),
        folder_case("class-folder-with-a-line-break", control_char_folder,
                    (Expect(("line break or control character", "rename"), "two\\nlines"),)),
        folder_case("file-outside-any-class-folder", lambda r, t: png(r / "loose.png", 1),
                    (Expect("outside a class folder", "loose.png"),)),
    ]


def link_cases() -> list[Case]:
    def fifo(root: Path, tmp: Path) -> None:
        os.mkfifo(root / "cat" / "pipe.png")

    def outside_dir(root: Path, tmp: Path) -> None:
        png(tmp / "elsewhere" / "secret.png", 9)
        symlink(root / "bird", tmp / "elsewhere")

    def outside_file(root: Path, tmp: Path) -> None:
        symlink(root / "cat" / "escape.png", png(tmp / "elsewhere" / "secret.png", 9))

    def loop_dir(root: Path, tmp: Path) -> None:
        symlink(root / "cat" / "again", root / "cat")

    def loop_links(root: Path, tmp: Path) -> None:
        symlink(root / "cat" / "a.png", root / "cat" / "b.png")
        symlink(root / "cat" / "b.png", root / "cat" / "a.png")

    def reingest_keeps_one(ws: Workspace, tmp: Path) -> None:
        from backend.jobs.ingest_job import ingest

        again = ingest(ws, tmp / "images")  # a second ingest of the same folder works and adds nothing
        assert (again.n_new, again.n_updated) == (0, 4)
        assert len(stored(ws)) == 4 and stored(ws)["id"].is_unique

    return [
        folder_case("symlink-to-a-file-in-the-folder",
                    lambda r, t: symlink(r / "dog" / "alias.png", r / "cat" / "good_cat1.png"),
                    (Expect(("duplicate of", "good_cat1.png"), "alias.png"),), check=reingest_keeps_one),
        folder_case("symlink-to-a-file-outside", outside_file,
                    (Expect(("outside the image folder", "--allow-outside-root"), "escape.png"),)),
        folder_case("symlink-to-a-file-outside-allowed", outside_file, kept=("escape.png",),
                    allow_outside_root=True),
        folder_case("symlinked-class-folder-outside", outside_dir,
                    (Expect(("outside the image folder", "--allow-outside-root"), "bird"),)),
        folder_case("symlinked-class-folder-outside-allowed", outside_dir, kept=("secret.png",),
                    allow_outside_root=True, check=labels_are({"cat", "dog", "bird"})),
        folder_case("dangling-symlink", lambda r, t: symlink(r / "cat" / "gone.png", r / "cat" / "nothing.png"),
                    (Expect(("dangling symlink", "nothing.png"), "gone.png"),)),
        folder_case("symlink-loop", loop_links, (Expect("symlink loop", "a.png"), Expect("symlink loop", "b.png"))),
        folder_case("folder-symlink-loop", loop_dir, (Expect(("symlink loop", "not followed"), "again"),)),
        folder_case("fifo", fifo, (Expect(("not a regular file", "FIFO"), "pipe.png"),)),
    ]
