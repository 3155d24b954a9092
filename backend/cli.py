"""The ``thresher`` command. ``main(argv)`` so tests can drive every subcommand in-process."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from backend.config import DEFAULT_WORKSPACE, LABEL_ISSUE_CHOICES, EmbedSettings, ProjectionSettings

log = logging.getLogger("thresher")

EXPORT_FORMATS = ("csv", "parquet", "jsonl", "imagefolder")


def _workspace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", "-w", type=Path, default=DEFAULT_WORKSPACE,
                   help=f"workspace folder (one per dataset; default {DEFAULT_WORKSPACE})")


def _app_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="where the app listens (default 127.0.0.1, or "
                   "$STREAMLIT_SERVER_ADDRESS); 0.0.0.0 listens on every interface: the app has no login, "
                   "put authentication in front (README: Running it for others)")
    p.add_argument("--export-dir", type=Path, default=None, metavar="DIR", help="the folder the Export page "
                   "writes into (default W/exports, or $THRESHER_EXPORT_DIR); it writes nowhere else")
    p.add_argument("--any-workspace", action="store_true", help="let the sidebar open any folder on the server "
                   "as a workspace (default: only folders under the data root $THRESHER_DATA and --workspace)")


def _score_names() -> list[str]:
    from backend.scoring.pruning.registry import SCORES

    return sorted(SCORES)


def _method_names() -> list[str]:
    from backend.scoring.pruning.registry import METHODS

    return sorted(METHODS)


def _count_or_auto(text: str) -> int | None:
    """A whole number >= 0 from the command line, or None for "auto"."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


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
    p.add_argument("--allow-outside-root", action="store_true",
                   help="read files outside the source's folder: a manifest's ../ or absolute paths elsewhere, "
                   "symlinks out of an image folder, an embeddings file's paths elsewhere (refused by default, "
                   "each one named in the report)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that decode, hash and measure the image files of a folder or manifest "
                   "(default: the CPU cores; 1: one process, the least memory; the result is the same)")

    p = sub.add_parser("embed", help="compute L2-normalised embeddings for every image (resumable)",
                       description="Encode every sample's image with an open_clip model or the 'pixels' embedder "
                       "and store the vectors per model. A rerun skips what is stored, so an interrupted run "
                       "loses at most the batches in flight. Uses CUDA (bfloat16 autocast, channels-last) when available; "
                       "decodes in worker processes while the model runs.")
    _workspace_arg(p)
    p.add_argument("--model", default=EmbedSettings.model,
                   help="'pixels' / 'pixels-<size>' (resized pixel vectors, offline) or an open_clip model name "
                   "such as ViT-B-32 (default %(default)s)")
    p.add_argument("--pretrained", default=None,
                   help="open_clip weights: a tag (e.g. openai; must be cached locally), a local checkpoint path, "
                   "or 'none' for random weights")
    p.add_argument("--batch-size", type=_count_or_auto, default=None, metavar="N|auto",
                   help="images per batch (default auto: 64 on the CPU, on CUDA the largest power of two "
                   "up to 1024 whose forward pass fits in GPU memory)")
    p.add_argument("--num-workers", type=_count_or_auto, default=None, metavar="N|auto",
                   help="DataLoader worker processes that decode images while the model runs; 0 decodes in "
                   "this process (default auto: the CPU cores less one, at most 16)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--gpu-decode", action="store_true",
                   help="decode JPEG files on the GPU (torchvision.io's nvJPEG decoder); without CUDA the log "
                   "says so and decoding stays on the CPU")
    _runner_args(p, "shards of images are encoded by workers that each hold the model (one per GPU)")

    p = sub.add_parser("project", help="map an embedding to 2-D with UMAP (stored as a run)",
                       description="UMAP to 2-D of one stored embedding. Above --fit-sample points UMAP is fitted "
                       "on a seeded sample and the rest are transformed.")
    _workspace_arg(p)
    p.add_argument("--embedding", help="embedding key (default: the only one, or the latest)")
    p.add_argument("--method", choices=("umap", "pca"), default=ProjectionSettings.method)
    p.add_argument("--n-neighbors", type=int, default=ProjectionSettings.n_neighbors)
    p.add_argument("--min-dist", type=float, default=ProjectionSettings.min_dist)
    p.add_argument("--seed", type=int, default=ProjectionSettings.seed)
    p.add_argument("--fit-sample", type=int, default=ProjectionSettings.fit_sample, metavar="N",
                   help="above N points, fit UMAP on a seeded sample of N and transform the rest in batches "
                   "(default %(default)s; a larger N is a better map and a slower fit)")

    p = sub.add_parser("app", help="start the web app on a workspace",
                       description="Start the Streamlit app. It listens on 127.0.0.1 (this machine only) unless "
                       "--address or STREAMLIT_SERVER_ADDRESS says otherwise; it has no login, so put "
                       "authentication in front before listening wider (README: Running it for others). Honours "
                       "STREAMLIT_SERVER_PORT and STREAMLIT_SERVER_HEADLESS from the environment.")
    _workspace_arg(p)
    _app_args(p)

    p = sub.add_parser("score", help="label-noise flags, pruning scores and neural-collapse metrics (a run)",
                       description="Train proxy probes on the stored embeddings (K-fold out-of-fold probabilities "
                       "and per-epoch training dynamics), then compute the combined label-issue verdict "
                       "(confident learning + kNN vote + AUM), the pruning scores and neural-collapse metrics, "
                       "stored as one run.")
    _workspace_arg(p)
    p.add_argument("--scorers", help="comma-separated pruning scores (default: all): " + ", ".join(_score_names()))
    p.add_argument("--embedding", help="embedding key (default: the only one, or the latest)")
    p.add_argument("--logits", metavar="NAME", help="use imported per-epoch logits NAME instead of probe dynamics")
    p.add_argument("--classifier", metavar="NAME", help="also compute neural collapse with imported classifier NAME")
    p.add_argument("--device", default=None, help="cuda / cpu for the probes (default: cuda when available)")
    _runner_args(p, "the probes' folds and seeds train in parallel on Ray workers (same numbers as without)")

    p = sub.add_parser("prune", help="make a named subset by removing a fraction of the samples",
                       description="Create a named subset of the KEPT samples. --ratio is the fraction REMOVED "
                       "(0.3 removes 30% and keeps 70%). Uses the latest score run. With no --method the "
                       "recommended default for the ratio is used.")
    _workspace_arg(p)
    p.add_argument("--method", help="procedure, optionally with the score it runs on after a colon: "
                   + ", ".join(_method_names()) + " (e.g. ccs:aum, keep_hard:el2n, sims:forgetting)")
    p.add_argument("--ratio", type=float, required=True, help="fraction of samples REMOVED, in [0, 1)")
    p.add_argument("--per-class", default="proportional",
                   help="per-class budget: proportional (default), balanced, or min:N (at least N per class)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", required=True, help="name of the subset to create")
    p.add_argument("--split", help="prune only this split (e.g. train); other samples are not in the subset")
    p.add_argument("--label-issues", choices=LABEL_ISSUE_CHOICES, default="exclude",
                   help="exclude (default): remove the samples the score run flags as label issues first, "
                   "the most suspicious first when they outnumber what the ratio removes (they count towards "
                   "it; hardness scores rank mislabeled samples hardest, so keep-hard methods would keep "
                   "them); keep: leave them to the method")
    p.add_argument("--dedup", action="store_true", help="remove the score run's duplicates first, one kept per group (after label issues)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="a parameter of the procedure, repeatable: sims (the default) takes its sampling "
                   "shape (e.g. knee=0.8, coverage_start=0.5, beta=0.01, class_tilt=1), ccs takes beta and "
                   "n_strata, d2 takes k, gamma_forward and gamma_reverse; an unknown key lists the known ones")
    p.add_argument("--score-run", help="score run id (default: the latest)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing subset of that name")

    p = sub.add_parser("evaluate", help="what training on a subset costs: held-out accuracy, with and without "
                       "distillation, against all samples and a random subset of the same size (a run)",
                       description="K-fold held-out accuracy of the engine's probe trained on the subset's samples, "
                       "on every sample of its pool (the split it was pruned from, else all), on a random subset "
                       "of the same size per class, and on both subsets with knowledge distillation from the "
                       "full-data probe (Ben-Baruch et al. 2024: KD weight tied to the kept fraction). Every "
                       "pool sample is tested once, on the fold where it is held out.")
    _workspace_arg(p)
    p.add_argument("--subset", required=True, help="a saved subset (thresher prune --name, or one saved in the app)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kd-weight", type=float, default=None, metavar="ALPHA",
                   help="weight of the distillation term in [0, 1] (default: the fraction the subset removes, "
                   "1 - kept fraction; chosen on validation splits, see bench/results/distillation_tuning.json)")
    p.add_argument("--temperature", type=float, default=None, help="softmax temperature of the distillation term (default 4)")
    p.add_argument("--embedding", help="embedding key (default: the one the subset's score run used)")
    p.add_argument("--device", default=None, help="cuda / cpu for the probes (default: cuda when available)")
    _runner_args(p, "the folds train in parallel on Ray workers (same numbers as without)")

    p = sub.add_parser("export", help="write a manifest, the scores, or the neural-collapse metrics",
                       description="--what manifest (default): the curated manifest, one row per sample of the "
                       "dataset or of --subset: id, path, label (the current label, after relabel decisions), "
                       "original_label (as ingested), split, decision, tags, width, height, content_hash; samples "
                       "dropped by a decision are left out unless --include-dropped. --format imagefolder writes "
                       "OUT/[split/]label/<file> (symbolic links, or copies with --copy). --what scores: one row per "
                       "sample with id, label, suggested_label, label_issue_score, is_label_issue and one column per "
                       "score (<name>_score; the label-noise detectors' <detector>_issue_score), from the latest "
                       "score run. --what collapse: the latest neural-collapse metrics as JSON. Every export writes "
                       "a provenance record beside it (<out>.provenance.json, or OUT/provenance.json): workspace, "
                       "subset, the run that made it, decisions applied, code version, time.")
    _workspace_arg(p)
    p.add_argument("--what", choices=("manifest", "scores", "collapse"), default="manifest")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="csv",
                   help="csv, parquet, jsonl, or imagefolder (manifest only; collapse: json)")
    p.add_argument("--out", type=Path, required=True, help="file to write (imagefolder: a new folder); never a "
                   "workspace's own folders (lance/, locks/, jobs/), a symbolic link or a device")
    p.add_argument("--overwrite", action="store_true", help="replace --out (and its provenance record) when it "
                   "exists (an image folder is always new)")
    p.add_argument("--include-dropped", action="store_true",
                   help="keep the samples dropped by decisions in the manifest (their decision column says so)")
    p.add_argument("--copy", action="store_true", help="with --format imagefolder: copy the image files instead "
                   "of linking them")
    p.add_argument("--subset", help="a saved selection or pruned subset (default: the whole dataset)")
    p.add_argument("--score-run", help="score run id for --what scores/collapse (default: the latest)")
    p.add_argument("--soft-labels", action="store_true", help="with --what manifest and --subset: add soft labels "
                   "to distil from in your own training (Ben-Baruch et al. 2024): teacher_logit_<class> from the "
                   "engine's probe trained on the subset's whole pool, kd_weight (the fraction the subset removes) "
                   "and kd_temperature")

    p = sub.add_parser("demo", help="ingest the digits demo, embed (pixels), project, score, and start the app",
                       description="Set up the demo workspace from scikit-learn's digits: ingest, embed with the "
                       "offline 'pixels' embedder, project with UMAP, score (label issues, pruning scores, "
                       "neural collapse), then start the app and print its URL. Steps already done are skipped.")
    _workspace_arg(p)
    p.add_argument("--no-app", action="store_true", help="stop after computing")
    _app_args(p)
    p.add_argument("--label-noise", type=float, default=None, metavar="FRACTION",
                   help="move this fraction of the train labels to a wrong digit (seeded; once per workspace; "
                   "the true labels are kept in W/reports/demo-label-noise.csv): something for the review "
                   "queue to find. Use a new --workspace for it")
    p.add_argument("--no-score", action="store_true", help="skip the scoring step (faster; the Review, Prune and "
                   "Collapse pages then ask for `thresher score`)")

    p = sub.add_parser("runs", help="list, compare or delete the runs stored in a workspace",
                       description="List the runs (every computation is one, stored with its config, embedding, "
                       "seed, time and code version); --compare shows what differs between two runs of one kind "
                       "and, for score runs, how far their flags, scores and neural-collapse metrics agree.")
    _workspace_arg(p)
    p.add_argument("--kind", help="only runs of this kind (ingest, embed, project, score, prune, evaluate)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="compare two runs of one kind")
    action.add_argument("--delete", metavar="RUN_ID", help="delete this run and the rows it produced "
                        "(subsets made from it are kept)")
    p.add_argument("--force", action="store_true", help="with --delete: delete a run still marked running "
                   "(only when its process has died)")

    p = sub.add_parser("subsets", help="list saved subsets, or rename, delete or compare them")
    _workspace_arg(p)
    action = p.add_mutually_exclusive_group()
    action.add_argument("--delete", metavar="NAME", help="delete this subset")
    action.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"), help="rename a subset (refused when NEW exists)")
    action.add_argument("--compare", nargs=2, metavar=("A", "B"), help="samples in both / only one, Jaccard, "
                        "and per class")

    p = sub.add_parser("search", help="find the images closest to a sample, an image file or a text query",
                       description="Give exactly one of TEXT, --like ID or --image FILE. The query is embedded with "
                       "the model and weights that made the embedding (text needs a CLIP model); the nearest "
                       "samples come from the embedding's LanceDB vector index.")
    _workspace_arg(p)
    p.add_argument("text", nargs="?", help="a text query, e.g. 'a photo of a dog' (CLIP models only)")
    p.add_argument("--like", metavar="ID", help="the samples most similar to this sample (its stored vector)")
    p.add_argument("--image", metavar="FILE", type=Path, help="the samples most similar to this image file")
    p.add_argument("--embedding", help="embedding key to search (default: the latest)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="json: one record per result (id, label, similarity, path), for scripts and the app")

    p = sub.add_parser("maintain", help="compact the workspace's tables and remove their old versions",
                       description="Merge each table's small fragments and delete its old versions and the files "
                       "only they used (nothing reads old versions: undo and run history are rows of the latest). "
                       "The subsets, activity and decisions tables are also compacted as they are written, every "
                       "50 commits. Refused while a run is still running.")
    _workspace_arg(p)
    p.add_argument("--keep-versions", type=int, default=10, metavar="N",
                   help="versions of each table to keep, newest first (default %(default)s)")

    from backend.decide_cli import add_parsers as add_decision_parsers

    add_decision_parsers(sub)
    return parser


def _runner_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help=f"run on Ray: {what}. Alone: a Ray instance on this machine's cores; 'auto': the "
                   "cluster started with `ray start --head` (or $RAY_ADDRESS); HOST:6379: that cluster, from one of its nodes "
                   "(ray://HOST:10001 from outside, with ray[client]). Needs pip install 'thresher[ray]' on every node")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="with --ray: at most N tasks at once (default: what the cluster has)")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. gamma_reverse=3), got {text!r}")
    return key.strip(), value.strip()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from backend.commands import COMMANDS, user_errors
    from backend.jobs.tracking import JobCancelled, Terminated

    try:
        with _sigterm_interrupts():
            return COMMANDS[args.command](args)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if isinstance(exc, JobCancelled) and not isinstance(exc, Terminated):
            raise  # a job's Cancel: backend.jobs.job_child records it as such
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "stopped (Ctrl-C)"
        print(f"interrupted: {what}; a run it had started is marked failed and its rows removed; rerun the same "
              "command to start again (embed goes on from the batches it stored)", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a command runs, SIGTERM stops it the way Ctrl-C does (``tracking.Terminated``), so
    it marks its run failed and exits without a traceback. Left alone where a handler is already
    set (a job's process: ``backend.jobs.job_child``) and off the main thread (no handlers there)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    from backend.jobs.tracking import Terminated

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the run must be marked failed in peace
        raise Terminated("interrupted: terminated (SIGTERM); rerun the same command to start again")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)



if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
