"""The ``thresher`` command. ``main(argv)`` so tests can drive every subcommand in-process."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.config import DEFAULT_WORKSPACE, EmbedSettings, ProjectionSettings

log = logging.getLogger("thresher")

EXPORT_FORMATS = ("csv", "parquet", "jsonl")


def _workspace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", "-w", type=Path, default=DEFAULT_WORKSPACE,
                   help=f"workspace folder (one per dataset; default {DEFAULT_WORKSPACE})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thresher",
        description="Thresher: curate image datasets. Ingest images, embed them, map them in 2-D, "
        "review and export curated subsets. Every command works on a workspace folder.",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="add samples from an image folder, a manifest, an embeddings file or the demo",
                       description="Add samples to a workspace (created when missing). SOURCE is an image folder "
                       "(root/<class>/<img> or root/<split>/<class>/<img>), a .csv/.parquet manifest with columns "
                       "path, label and optional split, id (relative paths resolve against the manifest's folder), "
                       "or the word 'demo' (scikit-learn's 1,797 handwritten digits). Re-ingesting updates known "
                       "samples. Bad files are skipped and listed in a report kept in W/reports/.")
    _workspace_arg(p)
    p.add_argument("source", nargs="?", help="image folder, .csv/.parquet manifest, or 'demo'")
    p.add_argument("--embeddings", type=Path, metavar="FILE",
                   help="ingest precomputed embeddings instead: .parquet or .npz with id, label, embedding "
                   "(optional path, split)")
    p.add_argument("--embedding-key", help="name to store imported embeddings under (default imported-<file stem>); "
                   "with --classifier: the embedding the classifier reads")
    p.add_argument("--logits", type=Path, metavar="FILE",
                   help="import your own training dynamics: .parquet with id, epoch, logits (one row per sample "
                   "per epoch); scorers can then use them instead of Thresher's probes")
    p.add_argument("--classifier", type=Path, metavar="FILE",
                   help="import your model's linear classifier: .npz with weights (C, D) [, bias (C,), classes (C,)] "
                   "over the features given by --embedding-key (for neural-collapse NC3/NC4)")
    p.add_argument("--name", help="name for imported --logits or --classifier (default: the file stem)")

    p = sub.add_parser("embed", help="compute L2-normalised embeddings for every image (resumable)",
                       description="Encode every sample's image with an open_clip model or the 'pixels' embedder "
                       "and store the vectors per model. A rerun skips what is stored, so an interrupted run "
                       "loses at most one batch. Uses CUDA with autocast when available.")
    _workspace_arg(p)
    p.add_argument("--model", default=EmbedSettings.model,
                   help="'pixels' / 'pixels-<size>' (resized pixel vectors, offline) or an open_clip model name "
                   "such as ViT-B-32 (default %(default)s)")
    p.add_argument("--pretrained", default=None,
                   help="open_clip weights: a tag (e.g. openai; must be cached locally), a local checkpoint path, "
                   "or 'none' for random weights")
    p.add_argument("--batch-size", type=int, default=EmbedSettings.batch_size)
    p.add_argument("--num-workers", type=int, default=EmbedSettings.num_workers,
                   help="DataLoader worker processes that decode images (default %(default)s)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")

    p = sub.add_parser("project", help="map an embedding to 2-D with UMAP (stored as a run)",
                       description="UMAP to 2-D of one stored embedding. Above --fit-sample points UMAP is fitted "
                       "on a seeded sample and the rest are transformed.")
    _workspace_arg(p)
    p.add_argument("--embedding", help="embedding key (default: the only one, or the latest)")
    p.add_argument("--method", choices=("umap", "pca"), default=ProjectionSettings.method)
    p.add_argument("--n-neighbors", type=int, default=ProjectionSettings.n_neighbors)
    p.add_argument("--min-dist", type=float, default=ProjectionSettings.min_dist)
    p.add_argument("--seed", type=int, default=ProjectionSettings.seed)
    p.add_argument("--fit-sample", type=int, default=ProjectionSettings.fit_sample)

    p = sub.add_parser("app", help="start the web app on a workspace",
                       description="Start the Streamlit app. Honours STREAMLIT_SERVER_PORT, "
                       "STREAMLIT_SERVER_ADDRESS and STREAMLIT_SERVER_HEADLESS from the environment.")
    _workspace_arg(p)

    p = sub.add_parser("export", help="write a manifest of the dataset or of a saved subset",
                       description="Write one row per sample (id, path, label, split, width, height, content_hash) "
                       "for the whole dataset or for a saved subset.")
    _workspace_arg(p)
    p.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    p.add_argument("--out", type=Path, required=True, help="file to write")
    p.add_argument("--subset", help="a saved selection or pruned subset (default: the whole dataset)")

    p = sub.add_parser("demo", help="ingest the digits demo, embed (pixels), project, and start the app",
                       description="Set up the demo workspace from scikit-learn's digits: ingest, embed with the "
                       "offline 'pixels' embedder, project with UMAP, then start the app and print its URL.")
    _workspace_arg(p)
    p.add_argument("--no-app", action="store_true", help="stop after computing")

    p = sub.add_parser("runs", help="list the runs stored in a workspace")
    _workspace_arg(p)
    p.add_argument("--kind", help="only runs of this kind (ingest, embed, project, ...)")
    p.add_argument("--delete", metavar="RUN_ID", help="delete this run and the rows it produced")

    p = sub.add_parser("subsets", help="list saved subsets, or delete one")
    _workspace_arg(p)
    p.add_argument("--delete", metavar="NAME", help="delete this subset")

    p = sub.add_parser("search", help="find the images closest to a text query (CLIP models)",
                       description="Embed TEXT with the same open_clip model as the stored image embeddings and "
                       "print the nearest samples.")
    _workspace_arg(p)
    p.add_argument("text", help="the query, e.g. 'a photo of a dog'")
    p.add_argument("--embedding", help="embedding key of a CLIP model (default: the latest)")
    p.add_argument("--top", type=int, default=10)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from backend.commands import COMMANDS, user_errors

    try:
        return COMMANDS[args.command](args)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2



if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
