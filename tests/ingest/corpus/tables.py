"""Table cases: CSV manifests, ids already in the workspace, embeddings files and logits."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from backend.storage import Workspace
from tests.ingest.corpus.base import (
    Case,
    Expect,
    embeddings_case,
    good_folder,
    labels_are,
    manifest_case,
    png,
    stored,
    symlink,
    vectors,
)


def manifest_cases() -> list[Case]:
    def outside(tmp: Path) -> None:
        png(tmp / "secret" / "s.png", 7)

    def linked_out(tmp: Path) -> None:
        png(tmp / "secret" / "s.png", 7)
        symlink(tmp / "data" / "images" / "cat" / "link.png", tmp / "secret" / "s.png")

    def fifo(tmp: Path) -> None:
        os.mkfifo(tmp / "data" / "images" / "cat" / "pipe.png")

    def loop(tmp: Path) -> None:
        symlink(tmp / "data" / "images" / "cat" / "l1.png", tmp / "data" / "images" / "cat" / "l2.png")
        symlink(tmp / "data" / "images" / "cat" / "l2.png", tmp / "data" / "images" / "cat" / "l1.png")

    def extra_image(name: str, value: int = 11) -> Callable[[Path], None]:
        return lambda tmp: png(tmp / "data" / "images" / "cat" / name, value)

    markup = '<a href="https://example.com">click</a>'
    return [
        manifest_case("manifest-dotdot-path", "../secret/s.png,cat\n", extra=outside,
                      reported=(Expect(("outside the manifest's folder", "--allow-outside-root"), row=5),)),
        manifest_case("manifest-dotdot-path-allowed", "../secret/s.png,cat\n", extra=outside, kept=("s.png",),
                      allow_outside_root=True),
        manifest_case("manifest-dotdot-that-stays-inside", "images/dog/../cat/inside.png,cat\n",
                      extra=extra_image("inside.png"), kept=("inside.png",)),
        _manifest_absolute_case(),
        manifest_case("manifest-symlink-out-of-its-folder", "images/cat/link.png,cat\n", extra=linked_out,
                      reported=(Expect("outside the manifest's folder", row=5),)),
        manifest_case("manifest-missing-file", "images/cat/none.png,cat\n",
                      reported=(Expect("missing file", row=5),)),
        manifest_case("manifest-fifo", "images/cat/pipe.png,cat\n", extra=fifo,
                      reported=(Expect(("not a regular file", "FIFO"), row=5),)),
        manifest_case("manifest-symlink-loop", "images/cat/l1.png,cat\n", extra=loop,
                      reported=(Expect("symlink loop", row=5),)),
        manifest_case("manifest-label-with-comma-and-quotes", 'images/cat/q.png,"tabby, ""the"" cat"\n',
                      extra=extra_image("q.png"), kept=("q.png",),
                      check=labels_are({"cat", "dog", 'tabby, "the" cat'})),
        manifest_case("manifest-label-with-markup", f'images/cat/m.png,"{markup.replace(chr(34), 2 * chr(34))}"\n'
                      "images/cat/b.png,<b>bold</b>\n", extra=lambda t: (png(t / "data/images/cat/m.png", 3),
                                                                        png(t / "data/images/cat/b.png", 4)),
                      kept=("m.png", "b.png"), check=labels_are({"cat", "dog", markup, "<b>bold</b>"})),
        manifest_case("manifest-label-with-a-newline", 'images/cat/n.png,"two\nlines"\n', extra=extra_image("n.png"),
                      reported=(Expect(("line break or control character", "unclosed quote"), row=5),)),
        manifest_case("manifest-unicode-label", "images/cat/u.png,ネコ\n", extra=extra_image("u.png"),
                      kept=("u.png",), check=labels_are({"cat", "dog", "ネコ"})),
        manifest_case("manifest-duplicate-path", "images/cat/good_cat1.png,dog\n",
                      reported=(Expect(("same file as row 1",), row=5),)),
        manifest_case("manifest-empty-label-and-path", "images/cat/e.png,\n,cat\n", extra=extra_image("e.png"),
                      reported=(Expect("empty label", row=5), Expect("empty path", row=6))),
        Case("manifest-duplicate-ids", "manifest", _manifest_with_ids,
             (Expect(("duplicate id 'x1'", "first on row 1"), row=2),), ("good_cat1.png", "good_dog1.png")),
        Case("manifest-repeated-column", "manifest", _manifest_repeated_column,
             error="'label' appear more than once .*keep one of each"),
        Case("manifest-not-utf8", "manifest", _manifest_latin1,
             error=r"not UTF-8 text \(byte 0xe9 on line 2\): save it as UTF-8"),
        Case("manifest-one-class", "manifest", _manifest_one_class,
             (Expect(("one class", "at least 2 classes"), action="note"),), ("good_cat1.png", "good_cat2.png")),
        manifest_case("manifest-one-sample-class", "images/cat/solo.png,owl\n", extra=extra_image("solo.png"),
                      reported=(Expect(("class 'owl' has 1 sample",), "solo.png", action="note"),), kept=("solo.png",)),
    ]


def _manifest_absolute_case() -> Case:
    def build(tmp: Path) -> Path:
        data = tmp / "data"
        good_folder(data)
        secret = png(tmp / "secret" / "abs.png", 7)
        inside = png(data / "images" / "cat" / "absin.png", 8)
        manifest = data / "m.csv"
        manifest.write_text(f"path,label\n{inside},cat\n{secret},cat\nimages/dog/good_dog1.png,dog\n")
        return manifest

    return Case("manifest-absolute-paths", "manifest", build,
                (Expect(("outside the manifest's folder", "--allow-outside-root"), row=2),), ("absin.png", "good_dog1.png"))


def _manifest(tmp: Path, content: str | bytes) -> Path:
    """The good image folder under ``tmp/data`` and a manifest ``m.csv`` beside it."""
    data = tmp / "data"
    good_folder(data)
    manifest = data / "m.csv"
    manifest.write_bytes(content if isinstance(content, bytes) else content.encode())
    return manifest


def _manifest_with_ids(tmp: Path) -> Path:
    return _manifest(tmp, "path,label,id\nimages/cat/good_cat1.png,cat,x1\nimages/cat/good_cat2.png,cat,x1\n"
                        "images/dog/good_dog1.png,dog,x2\n")


def _manifest_repeated_column(tmp: Path) -> Path:
    return _manifest(tmp, "path,label, label\nimages/cat/good_cat1.png,cat,dog\n")


def _manifest_latin1(tmp: Path) -> Path:
    return _manifest(tmp, "path,label\nimages/cat/good_cat1.png,café\n".encode("latin-1"))


def _manifest_one_class(tmp: Path) -> Path:
    return _manifest(tmp, "path,label\nimages/cat/good_cat1.png,cat\nimages/cat/good_cat2.png,cat\n")


def existing_cases() -> list[Case]:
    """Inputs whose ids are already in the workspace."""

    def ingest_folder_first(ws: Workspace, tmp: Path) -> None:
        from backend.jobs.ingest_job import ingest
        from backend.storage import decisions

        ingest(ws, tmp / "data" / "images")
        first = ws.samples(columns=["id", "path"])
        cat1 = first[first["path"].str.endswith("good_cat1.png")]["id"].iloc[0]
        decisions.decide(ws, "tag", [cat1], tag="checked", source="cli")

    def relabel_manifest(tmp: Path) -> Path:
        return _manifest(tmp, "path,label\nimages/cat/good_cat1.png,dog\nimages/cat/good_cat2.png,cat\n")

    def decision_kept(ws: Workspace, tmp: Path) -> None:
        from backend.storage import decisions

        state = decisions.decided_states(ws)
        assert state["tags"].tolist() == ["checked"]
        curated = decisions.curated_samples(ws).set_index("id")
        assert curated.loc[state["id"].iloc[0], "label"] == "dog"

    def image_samples_first(ws: Workspace, tmp: Path) -> None:
        from backend.jobs.ingest_job import ingest

        root = good_folder(tmp / "imgs")
        ingest(ws, root)

    def features_for_stored_images(tmp: Path) -> Path:
        return tmp / "feats.parquet"

    def stored_image_fields_kept(ws: Workspace, tmp: Path) -> None:
        rows = stored(ws)
        assert len(rows) == 4 and rows["path"].notna().all() and rows["content_hash"].notna().all()
        assert rows["width"].notna().all() and set(rows["label"]) == {"cat", "dog"}
        assert len(ws.load_embeddings("imported-feats")[0]) == 4

    def write_features(ws: Workspace, tmp: Path) -> None:
        image_samples_first(ws, tmp)
        ids = sorted(ws.sample_ids())
        labels = dict(zip(*[ws.samples(columns=["id", "label"])[c] for c in ("id", "label")], strict=True))
        given = [labels[i] for i in ids]
        given[0] = "bird"  # differs from the stored label
        pd.DataFrame({"id": ids, "label": given, "embedding": vectors(4, 3)}).to_parquet(tmp / "feats.parquet")

    def wrong_width_first(ws: Workspace, tmp: Path) -> None:
        from backend.jobs.ingest_job import ingest

        pd.DataFrame({"id": ["s0", "s1"], "label": ["a", "b"], "embedding": vectors(2, 3)}).to_parquet(tmp / "f0.parquet")
        ingest(ws, tmp / "f0.parquet", embeddings=True, embedding_key="feats")
        pd.DataFrame({"id": ["n0", "n1"], "label": ["a", "b"], "embedding": vectors(2, 5)}).to_parquet(tmp / "f1.parquet")

    def nothing_written(ws: Workspace, tmp: Path) -> None:
        assert sorted(ws.sample_ids()) == ["s0", "s1"] and len(ws.load_embeddings("feats")[0]) == 2

    return [
        Case("manifest-id-already-stored-with-another-label", "manifest", relabel_manifest,
             (Expect(("already in the workspace", "label 'cat' -> 'dog'", "1 decision", "kept"),
                     row=1, action="updated"),),
             ("good_cat1.png", "good_cat2.png"), prepare=ingest_folder_first, check=decision_kept),
        Case("embeddings-for-stored-image-samples", "embeddings", features_for_stored_images,
             (Expect(("already in the workspace", "stored label", "kept", "thresher decide relabel"), row=1,
                     action="kept stored"),),
             (), n_kept=4, prepare=write_features, check=stored_image_fields_kept),
        Case("embeddings-new-ids-wrong-width-for-the-key", "embeddings", lambda tmp: tmp / "f1.parquet",
             error="--embedding-key", prepare=wrong_width_first, check=nothing_written,
             embedding_key="feats"),
    ]


def embedding_cases() -> list[Case]:
    good = vectors(6, 4)
    nan_row, inf_row, zero_row = [1.0, float("nan"), 0.0, 0.0], [float("inf"), 0.0, 0.0, 1.0], [0.0] * 4
    first_wrong = [[1.0, 2.0]] + vectors(119, 3)
    mixed = vectors(10, 4)
    for i in (2, 5, 7):
        mixed[i] = mixed[i][:3] + [0.5, 0.5]
    return [
        embeddings_case("embedding-nan-row", [*good, nan_row], (Expect("NaN or infinite", row=7),),
                        kept=tuple(f"e{i}" for i in range(6))),
        embeddings_case("embedding-inf-row", [inf_row, *good], (Expect("NaN or infinite", row=1),),
                        kept=tuple(f"e{i}" for i in range(1, 7))),
        embeddings_case("embedding-all-zero-row", [*good, zero_row],
                        (Expect(("all zeros", "no direction"), "e6", row=7, action="kept"),)),
        embeddings_case("embedding-first-row-wrong-width", first_wrong,
                        (Expect(("length 2 differs from 3", "119 of the 120 rows"), row=1),),
                        kept=tuple(f"e{i}" for i in range(1, 120))),
        embeddings_case("embedding-mixed-widths", mixed,
                        tuple(Expect("length 5 differs from 4", row=i + 1) for i in (2, 5, 7)),
                        kept=tuple(f"e{i}" for i in range(10) if i not in (2, 5, 7))),
        embeddings_case("embedding-fixed-size-list", good, (), arrow_type=pa.list_(pa.float32(), 4)),
        embeddings_case("embedding-null-and-empty", [*good, None, []],
                        (Expect("not a list of numbers", row=7), Expect("empty list", row=8)),
                        kept=tuple(f"e{i}" for i in range(6))),
        embeddings_case("embedding-duplicate-id", good, (Expect("duplicate id 'e1'", row=3),),
                        ids=["e0", "e1", "e1", "e3", "e4", "e5"], kept=("e0", "e1", "e3", "e4", "e5")),
        embeddings_case("embedding-empty-label", good, (Expect("empty label", row=2),),
                        labels=["a", "", "a", "b", "a", "b"], kept=("e0", "e2", "e3", "e4", "e5")),
        embeddings_case("embedding-path-outside-its-folder", good,
                        (Expect(("outside the embeddings file's folder", "--allow-outside-root"), row=1,
                                action="path dropped"),),
                        extra_columns={"path": ["../../etc/passwd", None, None, None, None, None]},
                        check=lambda ws, tmp: _no_path_outside(ws)),
    ]


def _no_path_outside(ws: Workspace) -> None:
    rows = stored(ws)
    assert rows["path"].isna().all(), rows["path"].tolist()


def logits_cases() -> list[Case]:
    def samples(ws: Workspace, tmp: Path) -> None:
        from backend.jobs.ingest_job import ingest

        pd.DataFrame({"id": [f"s{i}" for i in range(120)], "label": ["a", "b", "c"] * 40,
                      "embedding": vectors(120, 4)}).to_parquet(tmp / "s.parquet")
        ingest(ws, tmp / "s.parquet", embeddings=True)

    def first_row_two_classes(tmp: Path) -> Path:
        rows = [{"id": f"s{i}", "epoch": e, "logits": [0.1, 0.2, 0.3]} for e in (0, 1, 2) for i in range(120)]
        rows[0]["logits"] = [0.1, 0.2]
        path = tmp / "dyn.parquet"
        pd.DataFrame(rows).to_parquet(path)
        return path

    def nan_logits(tmp: Path) -> Path:
        rows = [{"id": f"s{i}", "epoch": e, "logits": [0.1, 0.2, 0.3]} for e in (0, 1) for i in range(120)]
        rows[5]["logits"] = [0.1, float("nan"), 0.3]
        path = tmp / "dyn.parquet"
        pd.DataFrame(rows).to_parquet(path)
        return path

    return [
        Case("logits-first-row-two-classes", "logits", first_row_two_classes,
             (Expect(("2 logits", "3 (the length of 359 of the 360 rows)"), row=1),
              Expect("missing for some of the 3 epochs", "s0")),
             tuple(f"s{i}" for i in range(1, 120)), prepare=samples),
        Case("logits-nan", "logits", nan_logits,
             (Expect("NaN or infinite", row=6), Expect("missing for some", "s5")),
             tuple(f"s{i}" for i in range(120) if i != 5), prepare=samples),
    ]
