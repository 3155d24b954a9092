"""``thresher decide`` and ``thresher decisions``: the decisions log from the command line.

The parsers live here (``add_parsers``) and so do the commands, so that scripting a curation
(relabel, keep, drop, tag, accept the engine's suggestions, undo) uses exactly the functions the
app's buttons call (:mod:`backend.storage.decisions`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.config import DEFAULT_WORKSPACE

LOG_FORMATS = ("csv", "parquet", "jsonl")


def _workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", "-w", type=Path, default=DEFAULT_WORKSPACE,
                   help=f"workspace folder (default {DEFAULT_WORKSPACE})")


def _common(p: argparse.ArgumentParser) -> None:
    _workspace(p)
    p.add_argument("--reason", default="", help="why (kept in the log)")
    p.add_argument("--author", default=None, help="who decides (default: $THRESHER_AUTHOR, else your OS user)")
    p.add_argument("--score-run", default=None, help="the score run the decision was made from (kept in the log)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decide", help="record label decisions: relabel, keep, drop, unsure, tag, untag, accept-suggestions, undo",
        description="Append decisions to the workspace's decisions log (nothing is ever deleted from it; the "
        "current label, drop and tags of every sample are derived from it). Unknown ids or labels are refused "
        "before anything is written. Dropped samples are left out of prunes and exports; samples marked keep are "
        "never removed by a prune.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("relabel", help="give samples a new label")
    _common(a)
    a.add_argument("ids", nargs="+", metavar="ID")
    a.add_argument("--to", required=True, metavar="LABEL", help="the new label (an existing class)")
    for name, what in (("keep", "confirm the given label (a prune never removes it)"),
                       ("drop", "leave the samples out of every subset and export"),
                       ("unsure", "mark for a second look")):
        a = actions.add_parser(name, help=what)
        _common(a)
        a.add_argument("ids", nargs="+", metavar="ID")
    for name in ("tag", "untag"):
        a = actions.add_parser(name, help=f"{name} samples")
        _common(a)
        a.add_argument("ids", nargs="+", metavar="ID")
        a.add_argument("--tag", required=True, metavar="NAME")
    a = actions.add_parser("accept-suggestions", help="relabel every flagged sample at or above a score to its "
                           "suggested label (one bulk entry per sample)")
    _common(a)
    a.add_argument("--min-score", type=float, default=0.0, metavar="S", help="label_issue_score at least S")
    a.add_argument("--label", default=None, metavar="L", help="only samples whose given label is L")
    a.add_argument("--dry-run", action="store_true", help="list what would be relabeled, write nothing")
    a = actions.add_parser("undo", help="reverse one decision: the latest by default, or DECISION_ID")
    _common(a)
    a.add_argument("decision_id", nargs="?", default=None, metavar="DECISION_ID")

    p = sub.add_parser("decisions", help="print or write the decisions log",
                       description="The decisions log, oldest first: decision_id, sample_id, action, old_value, "
                       "new_value, reason, author, time, source, score_run. With --out, written as csv, parquet or "
                       "jsonl; without, printed.")
    _workspace(p)
    p.add_argument("--format", choices=LOG_FORMATS, default="csv")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: print)")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    p.add_argument("--state", action="store_true", help="the current state per decided sample instead of the log")


def _shown(value: object) -> str:
    """A log value as printed: '-' for none (None, NaN or empty; a tag has no old value)."""
    return "-" if value is None or value != value or value == "" else str(value)


def cmd_decide(args: argparse.Namespace) -> int:
    from backend.storage import Workspace, decisions

    ws = Workspace.open(args.workspace)
    if args.action == "undo":
        target = decisions.undo(ws, args.decision_id, author=args.author, source="cli", reason=args.reason)
        print(f"undid {target['decision_id']}: {target['action']} of {target['sample_id']} "
              f"({_shown(target['old_value'])} -> {_shown(target['new_value'])})")
        return 0
    if args.action == "accept-suggestions":
        return _accept(ws, args)
    result = decisions.decide(ws, args.action, args.ids, to=getattr(args, "to", None), tag=getattr(args, "tag", None),
                              reason=args.reason, source="cli", score_run=args.score_run, author=args.author)
    print(f"{args.action}: {result.n_written} decision(s) written"
          + (f", {len(result.unchanged)} unchanged (already so): {', '.join(result.unchanged[:10])}"
             if result.unchanged else ""))
    for row in result.entries.itertuples():
        print(f"  {row.decision_id}  {row.sample_id}  {_shown(row.old_value)} -> {_shown(row.new_value)}")
    return 0


def _accept(ws, args: argparse.Namespace) -> int:
    from backend.jobs.prune_job import latest_score_run
    from backend.storage import decisions, runs

    score_run = runs.get_run(ws, args.score_run)["run_id"] if args.score_run else latest_score_run(ws)["run_id"]
    if args.dry_run:
        candidates = decisions.suggestion_candidates(ws, score_run, min_score=args.min_score, label=args.label)
        print(f"{len(candidates)} sample(s) of {score_run} would be relabeled to their suggested label")
        if len(candidates):
            print(candidates.to_string(index=False, max_rows=50))
        return 0
    result = decisions.accept_suggestions(ws, score_run, min_score=args.min_score, label=args.label,
                                          author=args.author, reason=args.reason)
    print(f"accepted {result.n_written} suggestion(s) of {score_run} (label_issue_score >= {args.min_score:g}"
          + (f", given label {args.label}" if args.label else "") + "); samples a reviewer already decided on "
          "were left as they are")
    return 0


def cmd_decisions(args: argparse.Namespace) -> int:
    from backend.storage import Workspace, decisions
    from backend.storage.export import to_bytes, write_atomic

    ws = Workspace.open(args.workspace)
    frame = decisions.decided_states(ws) if args.state else decisions.read_log(ws)
    if args.out is None:
        print("no decisions yet" if frame.empty else frame.to_string(index=False, max_colwidth=40))
        return 0
    out = write_atomic(lambda: to_bytes(frame, args.format), args.out, example=f"decisions.{args.format}",
                       overwrite=args.overwrite)
    print(f"wrote {len(frame)} rows to {Path(out).resolve()}")
    return 0


COMMANDS = {"decide": cmd_decide, "decisions": cmd_decisions}
