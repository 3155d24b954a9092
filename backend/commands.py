"""What each ``thresher`` subcommand does; :mod:`backend.cli` only parses arguments."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from backend.config import EmbedSettings, ProjectionSettings
from backend.storage import Workspace

log = logging.getLogger("thresher")


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the input or the request is wrong": printed as one line, exit code 2."""
    from backend.embed import EmbedderError
    from backend.ingest.folder import SourceError
    from backend.jobs.runner import RunnerError
    from backend.storage.errors import StorageError

    return (StorageError, SourceError, EmbedderError, RunnerError, ValueError, FileNotFoundError)


def cmd_ingest(args: argparse.Namespace) -> int:
    from backend.jobs.ingest_job import ingest

    given = [x for x in (args.source, args.embeddings, args.logits, args.classifier) if x]
    if len(given) != 1:
        raise ValueError("give exactly one of SOURCE (image folder, .csv/.parquet manifest, or 'demo'), "
                         "--embeddings FILE, --logits FILE, --classifier FILE")
    if args.logits or args.classifier:
        return _ingest_model_outputs(args)
    ws = Workspace.open(args.workspace, create=True)
    outside = getattr(args, "allow_outside_root", False)
    if args.embeddings is not None:
        result = ingest(ws, args.embeddings, embeddings=True, embedding_key=args.embedding_key,
                        allow_outside_root=outside)
        print(f"ingested {result.n_ingested} samples ({result.n_new} new, {result.n_updated} already in the "
              f"workspace: vectors added, their stored fields kept) into {ws.root}")
    else:
        result = ingest(ws, args.source, allow_outside_root=outside, workers=getattr(args, "workers", None))
        print(f"ingested {result.n_ingested} samples ({result.n_new} new, {result.n_updated} updated) into {ws.root}")
    if result.embedding_key:
        print(f"stored their embeddings as {result.embedding_key!r}")
    print(f"skipped {result.n_skipped}" + (": " + ", ".join(f"{n} {why}" for why, n in result.reasons.items())
                                           if result.reasons else ""))
    for line in result.report.lines()[:20]:
        print(f"  {line}")
    if len(result.report.problems) > 20:
        print(f"  ... {len(result.report.problems) - 20} more")
    print(f"report: {result.report_path}")
    return 0


def _ingest_model_outputs(args: argparse.Namespace) -> int:
    from backend.jobs.ingest_job import ingest_classifier, ingest_logits

    ws = Workspace.open(args.workspace)
    if args.logits:
        name, n_samples, n_epochs, report = ingest_logits(ws, args.logits, name=args.name)
        print(f"stored logits {name!r}: {n_samples} samples x {n_epochs} epochs; skipped {len(report.problems)} rows")
        for line in report.lines()[:20]:
            print(f"  {line}")
    else:
        name, shape = ingest_classifier(ws, args.classifier, name=args.name, embedding_key=args.embedding_key)
        print(f"stored classifier {name!r} with weights {shape[0]} x {shape[1]}")
    return 0


def _embed_settings(args: argparse.Namespace) -> EmbedSettings:
    return EmbedSettings(model=args.model, pretrained=args.pretrained, batch_size=args.batch_size,
                         num_workers=args.num_workers, device=args.device,
                         gpu_decode=getattr(args, "gpu_decode", False))


def cmd_embed(args: argparse.Namespace) -> int:
    from backend.jobs.embed_job import embed

    ws = Workspace.open(args.workspace)
    with _runner(args) as runner:
        result = embed(ws, _embed_settings(args), runner=runner)
    print(f"embedded {result.n_embedded} images with {result.embedding_key} in {result.seconds:.1f} s "
          f"({result.n_already} already stored, {result.n_failed} failed)")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from backend.jobs.project_job import project

    ws = Workspace.open(args.workspace)
    settings = ProjectionSettings(method=args.method, n_neighbors=args.n_neighbors, min_dist=args.min_dist,
                                  seed=args.seed, fit_sample=args.fit_sample)
    result = project(ws, settings, embedding_key=args.embedding)
    print(f"projected {result.n_points} points of {result.embedding_key} in {result.seconds:.1f} s "
          f"(run {result.run_id})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from backend.storage.export import export_manifest
    from backend.storage.export_paths import check_output

    ws = Workspace.open(args.workspace)
    if args.what != "manifest" and (args.format == "imagefolder" or args.include_dropped or args.copy):
        raise ValueError("--format imagefolder, --include-dropped and --copy go with --what manifest")
    # the target is checked before any work (soft labels train probes); each writer checks it again
    check_output(args.out, overwrite=args.overwrite, folder=args.format == "imagefolder")
    if args.soft_labels:
        return _export_soft_labels(ws, args)
    if args.what == "manifest":
        written = export_manifest(ws, args.format, args.out, subset=args.subset, include_dropped=args.include_dropped,
                                  copy=args.copy, overwrite=args.overwrite)
        counts = written.record["decisions"]
        left_out = f", {counts['dropped_left_out']} dropped samples left out" if counts["dropped_left_out"] else ""
        what = "files" if args.format == "imagefolder" else "rows"
        print(f"wrote {written.rows} {what} to {written.path} ({counts['applied']} decisions applied, "
              f"{counts['relabeled']} relabeled{left_out})")
        print(f"provenance: {written.provenance_path}")
        return 0
    from backend.jobs.prune_job import latest_score_run
    from backend.storage import runs
    from backend.storage.score_export import export_collapse, export_scores

    run_id = runs.get_run(ws, args.score_run)["run_id"] if args.score_run else latest_score_run(ws)["run_id"]
    if args.what == "collapse":
        written = export_collapse(ws, run_id, args.out, overwrite=args.overwrite)
        print(f"wrote the neural-collapse metrics of {run_id} ({written.record['headline_source']}) to {written.path}")
    else:
        written = export_scores(ws, run_id, args.format, args.out, subset=args.subset, overwrite=args.overwrite)
        print(f"wrote {written.rows} rows of {run_id} to {written.path}")
    print(f"provenance: {written.provenance_path}")
    return 0


def _export_soft_labels(ws: Workspace, args: argparse.Namespace) -> int:
    from backend.jobs.evaluate_job import teacher_soft_labels
    from backend.storage.export import FORMATS, export_manifest

    if args.what != "manifest" or not args.subset:
        raise ValueError("--soft-labels goes with --what manifest and --subset NAME: the KD weight depends on "
                         "how much of its pool the subset keeps")
    if args.format not in FORMATS:
        raise ValueError(f"--soft-labels needs a table format ({', '.join(FORMATS)}), not {args.format}")
    soft = teacher_soft_labels(ws, args.subset)
    kd = {"kd_weight": float(soft["kd_weight"].iloc[0]), "kd_temperature": float(soft["kd_temperature"].iloc[0])}
    written = export_manifest(ws, args.format, args.out, subset=args.subset, include_dropped=args.include_dropped,
                              extra=soft, overwrite=args.overwrite, soft_labels=kd)
    print(f"wrote {written.rows} rows of subset {args.subset!r} with soft labels over {soft.shape[1] - 3} classes "
          f"(kd_weight {kd['kd_weight']:g}, kd_temperature {kd['kd_temperature']:g}) to {written.path}")
    print(f"provenance: {written.provenance_path}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from backend.jobs.score_job import score

    ws = Workspace.open(args.workspace)
    with _runner(args) as runner:
        result = score(ws, embedding_key=args.embedding, scorers=args.scorers, logits_name=args.logits,
                       classifier_name=args.classifier, device=args.device, runner=runner)
    print(f"scored {result.n_samples} samples of {result.embedding_key} in {result.seconds:.1f} s (run "
          f"{result.run_id}): {result.n_label_issues} flagged as label issues; scores: {', '.join(result.scorers)}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from backend.jobs.prune_job import prune

    ws = Workspace.open(args.workspace)
    result = prune(ws, name=args.name, ratio=args.ratio, method=args.method, per_class=args.per_class,
                   seed=args.seed, split=args.split, dedup=args.dedup, score_run=args.score_run,
                   overwrite=args.overwrite, method_options=dict(args.option), label_issues=args.label_issues)
    first = [f"{count} {what}" for count, what in ((result.n_label_issues_removed, "flagged label issues"),
                                                  (result.n_duplicates_removed, "near-duplicates")) if count]
    print(f"subset {result.subset!r}: kept {result.n_kept}, removed {result.n_removed} "
          f"(ratio {args.ratio} removed) with {result.method}"
          + (f", {' and '.join(first)} removed first" if first else "") + f" (run {result.run_id})")
    if result.verdict_missing:
        print("note: the score run stored no label-issue verdict, so no flagged sample was removed first; "
              "rerun `thresher score` to get one")
    if result.exclusions_fill_budget:
        print(f"note: the samples removed first fill the whole budget ({result.n_label_issues_flagged} flagged): "
              f"{result.method} chose nothing, the subset is every other sample; lower --ratio or pass "
              "--label-issues keep to let the method choose")
    if result.n_pinned or result.n_dropped_by_decision or result.n_relabeled:
        print(f"decisions: {result.n_pinned} samples pinned by keep decisions, {result.n_dropped_by_decision} dropped "
              f"by decisions" + (f", {result.n_relabeled} pruned under their new label" if result.n_relabeled else ""))
    if result.pinned_fill_budget:
        print(f"note: the samples pinned by keep decisions fill the whole budget: {result.method} chose nothing, "
              "the subset is the pinned samples; lower --ratio to keep more")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from backend.jobs.evaluate_job import evaluate, report

    ws = Workspace.open(args.workspace)
    with _runner(args) as runner:
        result = evaluate(ws, subset=args.subset, embedding_key=args.embedding, folds=args.folds, seed=args.seed,
                          kd_weight=args.kd_weight, temperature=args.temperature, device=args.device,
                          runner=runner)
    for line in report(result.summary):
        print(line)
    print(f"stored as run {result.run_id}")
    return 0


def _runner(args: argparse.Namespace):
    """The runner ``--ray [ADDRESS]`` / ``--ray-workers N`` ask for (a context manager that stops
    a Ray instance it started)."""
    from backend.jobs.runner import make_runner, parse_runner

    return make_runner(parse_runner(args.ray, args.ray_workers))


#: Where ``thresher app`` listens unless told otherwise: this machine only (the app has no login).
LOCAL_ADDRESS = "127.0.0.1"
LOOPBACK_NAMES = ("localhost", "::1", "ip6-localhost")
#: What ``thresher app`` tells the app through its environment (``app/state.py`` reads them).
WORKSPACE_ENV = "THRESHER_WORKSPACE"
ANY_WORKSPACE_ENV = "THRESHER_ANY_WORKSPACE"


def app_command(workspace: Path, *, address: str | None = None, export_dir: Path | None = None,
                any_workspace: bool = False) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and environment for the app on ``workspace``.

    It listens on ``address``, else on ``$STREAMLIT_SERVER_ADDRESS``, else on 127.0.0.1 only.
    ``export_dir``: the folder the Export page writes into (default ``W/exports``);
    ``any_workspace``: the sidebar may open any folder, not only those under the data root."""
    from backend.storage.export_paths import EXPORT_DIR_ENV

    spec = importlib.util.find_spec("app")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'app' package is not installed next to 'backend'; reinstall thresher")
    main_py = Path(list(spec.submodule_search_locations)[0]) / "main.py"
    env = dict(os.environ)
    env[WORKSPACE_ENV] = str(Path(workspace).expanduser().resolve())
    env["STREAMLIT_SERVER_ADDRESS"] = address or env.get("STREAMLIT_SERVER_ADDRESS") or LOCAL_ADDRESS
    if export_dir is not None:
        env[EXPORT_DIR_ENV] = str(Path(export_dir).expanduser().resolve())
    if any_workspace:
        env[ANY_WORKSPACE_ENV] = "1"
    env.setdefault("STREAMLIT_SERVER_HEADLESS", "true")
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    env.setdefault("STREAMLIT_CLIENT_TOOLBAR_MODE", "viewer")  # no "Deploy" button in a local tool
    return [sys.executable, "-m", "streamlit", "run", str(main_py)], env


def app_url(env: dict[str, str]) -> str:
    """The address the server listens on, as a URL (0.0.0.0 and :: mean every interface)."""
    address = listen_address(env)
    port = env.get("STREAMLIT_SERVER_PORT") or "8501"
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    return f"http://{host}:{port}"


def listen_address(env: dict[str, str]) -> str:
    """The address the server started with ``env`` listens on."""
    return env.get("STREAMLIT_SERVER_ADDRESS") or LOCAL_ADDRESS


def is_local_address(address: str) -> bool:
    """Whether ``address`` reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    return address.strip("[]").startswith("127.") or address.strip("[]") in LOOPBACK_NAMES


def open_warning(address: str) -> str | None:
    """What ``thresher app`` prints when it listens beyond this machine; None when it does not."""
    if is_local_address(address):
        return None
    return (f"warning: the app listens on {address} and has no login: anyone who can reach this port can read "
            "and change the workspace and write into its export folder. Put authentication in front of it "
            "(README: Running it for others), or listen on 127.0.0.1 (the default without --address).")


def run_app(workspace: Path, *, address: str | None = None, export_dir: Path | None = None,
            any_workspace: bool = False) -> int:
    Workspace.open(workspace)  # fail early, with the message, if it is not a workspace
    cmd, env = app_command(workspace, address=address, export_dir=export_dir, any_workspace=any_workspace)
    warning = open_warning(listen_address(env))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"Thresher app on {workspace}: {app_url(env)}  (Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(cmd, env=env)
    try:
        return _exit_status(_serve(server))
    finally:
        _stop(server)


def _serve(server: subprocess.Popen) -> int:
    """Wait for the server. SIGTERM to this process (a process manager, ``kill``) stops it too,
    instead of orphaning it; so does SIGINT, whether Ctrl-C sent it to the whole process group or
    ``kill -INT`` to this process only. Signal handlers can only be set from the main thread."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: server.terminate()) if main else None
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGINT)
        return 0
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _stop(server: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Make sure the server has exited: wait ``grace_s``, then terminate, then kill."""
    for step in (None, server.terminate, server.kill):
        if step is not None:
            step()
        try:
            server.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            continue


def _exit_status(code: int) -> int:
    """A child killed by signal n (negative code) -> 128 + n, as a shell reports it."""
    return 128 - code if code < 0 else code


def _app_options(args: argparse.Namespace) -> dict:
    return {"address": args.address, "export_dir": args.export_dir, "any_workspace": args.any_workspace}


def cmd_app(args: argparse.Namespace) -> int:
    return run_app(args.workspace, **_app_options(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from backend.jobs.embed_job import embed
    from backend.jobs.ingest_job import ingest
    from backend.jobs.project_job import project
    from backend.storage import runs

    ws = Workspace.open(args.workspace, create=True)
    result = ingest(ws, "demo")
    print(f"ingested {result.n_ingested} digits into {ws.root}")
    if args.label_noise:
        _demo_label_noise(ws, args.label_noise)
    embedded = embed(ws, EmbedSettings(model="pixels"))
    print(f"embedded {embedded.n_embedded} new images ({embedded.n_already} already stored) as {embedded.embedding_key}")
    projections = runs.list_runs(ws, "project")
    done = projections[(projections["status"] == "done") & (projections["embedding_key"] == embedded.embedding_key)]
    if done.empty or embedded.n_embedded:
        projected = project(ws, ProjectionSettings(), embedding_key=embedded.embedding_key)
        print(f"projected {projected.n_points} points with UMAP in {projected.seconds:.1f} s")
    else:
        print(f"projection {done.iloc[0]['run_id']} is up to date")
    if not args.no_score:
        _demo_score(ws, embedded.embedding_key, fresh=embedded.n_embedded > 0)
    if args.no_app:
        print(f"demo workspace ready: {ws.root}\nstart the app with: thresher app --workspace {ws.root}")
        return 0
    return run_app(ws.root, **_app_options(args))


def _demo_label_noise(ws: Workspace, fraction: float) -> None:
    """Move a seeded ``fraction`` of the train labels to a wrong digit, once per workspace (the
    manifest with the true labels stays in W/reports/ to check the review against)."""
    from backend.ingest.demo import noisy_manifest
    from backend.jobs.ingest_job import ingest

    manifest = ws.reports_dir / "demo-label-noise.csv"
    if manifest.exists():
        print(f"label noise already injected ({manifest})")
        return
    folder = ws.images_dir / "digits"  # the manifest sits beside its images (paths outside are refused)
    path, moved = noisy_manifest(folder, folder / "demo-label-noise.partial.csv", fraction=fraction)
    ingest(ws, path)
    os.replace(path, manifest)
    print(f"moved {moved} train labels to a wrong digit; the true labels are in {manifest}")


def _demo_score(ws: Workspace, embedding_key: str, *, fresh: bool) -> None:
    """Score the demo once (label issues, pruning scores, neural collapse) so that the Review,
    Prune and Collapse pages have something to show; a rerun keeps the stored score run."""
    from backend.jobs.score_job import score
    from backend.storage import runs

    scored = runs.list_runs(ws, "score")
    done = scored[(scored["status"] == "done") & (scored["embedding_key"] == embedding_key)]
    if not done.empty and not fresh:
        print(f"score run {done.iloc[0]['run_id']} is up to date")
        return
    result = score(ws, embedding_key=embedding_key)
    print(f"scored {result.n_samples} samples in {result.seconds:.1f} s: {result.n_label_issues} flagged as "
          f"possible label issues (run {result.run_id})")


def cmd_runs(args: argparse.Namespace) -> int:
    from backend.storage import runs

    ws = Workspace.open(args.workspace)
    runs.close_interrupted(ws)  # a run whose process died: failed, its rows removed
    if args.force and not args.delete:
        raise ValueError("--force only goes with --delete RUN_ID")
    if args.kind and (args.delete or args.compare):
        raise ValueError("--kind filters the list of runs; it does not go with --compare or --delete")
    if args.delete:
        runs.delete_run(ws, args.delete, force=args.force)
        print(f"deleted run {args.delete}")
        return 0
    if args.compare:
        from backend.jobs.run_compare import compare_runs, report

        print(report(compare_runs(ws, *args.compare)))
        return 0
    table = runs.list_runs(ws, args.kind)
    if table.empty:
        print("no runs yet")
        return 0
    cols = ["run_id", "kind", "status", "embedding_key", "created_at", "summary_json"]
    print(table[cols].to_string(index=False, max_colwidth=60))
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from backend.storage import maintenance, runs

    ws = Workspace.open(args.workspace)
    closed = runs.close_interrupted(ws)
    if closed:
        print(f"closed {len(closed)} interrupted run(s), their rows removed: {', '.join(closed)}")
    done = maintenance.maintain(ws, retain_versions=args.keep_versions)
    for upkeep in done:
        print(f"{upkeep.name}: {upkeep.versions_before} -> {upkeep.versions_after} versions, {upkeep.fragments_before}"
              f" -> {upkeep.fragments_after} fragments, {upkeep.bytes_before / 1e6:.2f} -> "
              f"{upkeep.bytes_after / 1e6:.2f} MB")
    before, after = sum(u.bytes_before for u in done), sum(u.bytes_after for u in done)
    print(f"tables: {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB")
    return 0


def cmd_subsets(args: argparse.Namespace) -> int:
    from backend.storage import subsets

    ws = Workspace.open(args.workspace)
    if args.delete:
        n = subsets.delete_subset(ws, args.delete)
        print(f"deleted subset {args.delete!r} ({n} ids)")
        return 0
    if args.rename:
        n = subsets.rename_subset(ws, *args.rename)
        print(f"renamed subset {args.rename[0]!r} to {args.rename[1]!r} ({n} ids)")
        return 0
    if args.compare:
        print(subsets.comparison_report(subsets.compare_subsets(ws, *args.compare)))
        return 0
    table = subsets.list_subsets(ws)
    print("no subsets yet" if table.empty else table.to_string(index=False))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from backend.jobs.search_job import image_search, like_search, text_search

    given = [name for name, value in (("TEXT", args.text), ("--like", args.like), ("--image", args.image)) if value]
    if len(given) != 1:
        raise ValueError("give exactly one of TEXT, --like ID or --image FILE"
                         + (f" (got {' and '.join(given)})" if given else ""))
    ws = Workspace.open(args.workspace)
    options = {"embedding_key": args.embedding, "top": args.top}
    if args.like:
        hits = like_search(ws, args.like, **options)
    elif args.image:
        hits = image_search(ws, args.image, **options)
    else:
        hits = text_search(ws, args.text, **options)
    print(hits.to_json(orient="records") if args.format == "json" else hits.to_string(index=False))
    return 0


COMMANDS = {
    "ingest": cmd_ingest,
    "embed": cmd_embed,
    "project": cmd_project,
    "app": cmd_app,
    "export": cmd_export,
    "demo": cmd_demo,
    "score": cmd_score,
    "prune": cmd_prune,
    "evaluate": cmd_evaluate,
    "runs": cmd_runs,
    "subsets": cmd_subsets,
    "maintain": cmd_maintain,
    "search": cmd_search,
}

from backend.decide_cli import COMMANDS as _DECISION_COMMANDS  # noqa: E402

COMMANDS.update(_DECISION_COMMANDS)
