"""Decision widgets shared by the pages: the review queue's button bar (one sample, with keyboard
shortcuts) and the actions on a set of samples (a selection, ticked rows, search results).

Every write happens in a button's callback, before the page reruns, and is acknowledged only
after :func:`app.curation_data.decide` returned, that is after the commit. A button carries the
decision id made when it was drawn, so a click delivered twice is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app import curation_data, state
from app.components.markdown_text import md
from app.components.wording import count
from backend.storage import StorageError
from backend.storage.decisions import new_decision_id

#: The review queue's buttons: (label, shortcut). "C" and "R" are reserved by Streamlit.
QUEUE_BUTTONS = (
    ("Accept suggestion", "A"),
    ("Keep label", "K"),
    ("Relabel…", "L"),
    ("Drop", "D"),
    ("Unsure", "U"),
    ("Skip", "S"),
    ("Undo", "Z"),
)
SHORTCUT = dict(QUEUE_BUTTONS)
PAST = {"relabel": "Relabeled", "keep": "Kept", "drop": "Dropped", "unsure": "Marked unsure", "tag": "Tagged",
        "untag": "Untagged"}


@dataclass(frozen=True)
class Target:
    """The sample a button bar decides on."""

    sample_id: str
    label: str
    suggested_label: str | None
    score_run: str | None


def _pending_id(prefix: str, sample_id: str, action: str) -> str:
    """The decision id this button will write with, fixed while the sample is on screen."""
    key = f"{prefix}.pending.{sample_id}.{action}"
    if key not in st.session_state:
        st.session_state[key] = new_decision_id()
    return st.session_state[key]


def acknowledge(message: str, *, error: bool = False) -> None:
    st.session_state[state.DECISION_ACK] = (message, error)


def show_acknowledgement() -> None:
    """The last decision's outcome (written by a callback, shown once)."""
    ack = st.session_state.pop(state.DECISION_ACK, None)
    if ack:
        message, error = ack
        (st.error if error else st.success)(message)


def _commit(root: str, action: str, ids: list[str], *, source: str, score_run: str | None, to: str | None = None,
            tag: str | None = None, prefix: str | None = None, pending: str | None = None,
            focus_next: bool = False, expected: dict[str, tuple[str | None, str | None]] | None = None) -> None:
    """Button callback: commit, remember for Undo, acknowledge. ``expected``: {id: (decision,
    current label)} as drawn; a sample changed since (another tab, a colleague) is not overwritten."""
    try:
        result = curation_data.decide(root, action, ids, source=source, score_run=score_run, to=to, tag=tag,
                                      decision_ids=[pending] if pending else None, expected=expected)
    except StorageError as exc:
        acknowledge(f"Not saved: {md(exc)}", error=True)
        return
    if prefix and pending:
        for key in [k for k in st.session_state if str(k).startswith(f"{prefix}.pending.{ids[0]}.")]:
            del st.session_state[key]
    written = result.entries["decision_id"].tolist()
    stack = st.session_state.setdefault(state.DECISION_UNDO_STACK, [])
    stack.extend(written)
    what = PAST[action] + (f" to {md(to)}" if to else "") + (f" '{md(tag)}'" if tag else "")
    if len(ids) == 1:
        detail = md(ids[0]) + (f" ({md(result.entries['old_value'].iloc[0])} → {md(to)})"
                               if action == "relabel" and written else "")
        text = (f"{what}: {detail}. Saved as {written[0]}." if written
                else f"{md(ids[0])} was already so; nothing to save.")
    else:
        text = (f"{what}: {count(len(written), 'sample')} saved"
                + (f", {len(result.unchanged)} already so" if result.unchanged else "") + ".")
    acknowledge(text)
    if focus_next:
        st.session_state.pop(state.REVIEW_FOCUS, None)
        st.session_state[state.REVIEW_RELABEL_OPEN] = False


def undo_last(root: str, *, source: str) -> None:
    """Undo this session's last decision. With none (a new session, or all undone), the author's
    latest decision from before is only named, to be undone after a confirmation
    (:func:`undo_confirmation`): a stray key press must not reverse older work."""
    stack = st.session_state.setdefault(state.DECISION_UNDO_STACK, [])
    if not stack:
        earlier = curation_data.latest_own_decision(root)
        if earlier is None:
            acknowledge("Nothing to undo: you have no decision in effect.", error=True)
        else:
            st.session_state[state.DECISION_UNDO_CONFIRM] = earlier["decision_id"]
        return
    _undo(root, stack.pop(), source=source)


def undo_confirmation(root: str, *, source: str) -> None:
    """The question :func:`undo_last` asks before undoing a decision this session did not make."""
    pending = st.session_state.get(state.DECISION_UNDO_CONFIRM)
    if not pending:
        return
    entry = curation_data.history_entry(root, pending)
    if entry is None:
        st.session_state.pop(state.DECISION_UNDO_CONFIRM, None)
        return
    when = pd.Timestamp(entry["time"]).strftime("%Y-%m-%d %H:%M")
    change = (f" ({md(entry['old_value'])} → {md(entry['new_value'])})" if entry["action"] == "relabel" else "")
    st.warning(f"No decision of this session is left to undo. Undo your last one from before, "
               f"**{md(entry['action'])}** of {md(entry['sample_id'])}{change} at {when} UTC?")
    with st.container(horizontal=True):
        st.button("Undo it", key="q.undo_confirm", type="primary", on_click=_undo, args=(root, pending),
                  kwargs={"source": source, "confirmed": True})
        st.button("Keep it", key="q.undo_cancel", on_click=st.session_state.pop,
                  args=(state.DECISION_UNDO_CONFIRM, None))


def _undo(root: str, target: str, *, source: str, confirmed: bool = False) -> None:
    if confirmed:
        st.session_state.pop(state.DECISION_UNDO_CONFIRM, None)
    try:
        undone = curation_data.undo(root, target, source=source)
    except StorageError as exc:
        acknowledge(f"Nothing undone: {md(exc)}", error=True)
        return
    st.session_state[state.REVIEW_FOCUS] = undone["sample_id"]
    st.session_state.setdefault(state.REVIEW_SKIPPED, set()).discard(undone["sample_id"])
    acknowledge(f"Undid {undone['action']} of {md(undone['sample_id'])}"
                 + (f" ({md(undone['old_value'])} → {md(undone['new_value'])})" if undone["action"] == "relabel"
                    else "")
                 + f". Saved as {undone['undo_id']}.")


def _skip(sample_id: str) -> None:
    st.session_state.setdefault(state.REVIEW_SKIPPED, set()).add(sample_id)
    st.session_state.pop(state.REVIEW_FOCUS, None)
    st.session_state[state.REVIEW_RELABEL_OPEN] = False


def _toggle_relabel() -> None:
    st.session_state[state.REVIEW_RELABEL_OPEN] = not st.session_state.get(state.REVIEW_RELABEL_OPEN, False)


def queue_buttons(root: str, target: Target, classes: list[str], *, source: str = "review") -> None:
    """The seven review buttons, exactly labelled, each with its shortcut; then, after
    "Relabel…", the class picker."""
    prefix = "review"
    # the queue shows undecided samples: a decision another tab made since is not overwritten
    common = {"source": source, "score_run": target.score_run, "prefix": prefix, "focus_next": True,
              "expected": {target.sample_id: (None, target.label)}}
    sid = target.sample_id
    can_accept = target.suggested_label not in (None, "", target.label)
    with st.container(horizontal=True, gap="small"):
        st.button("Accept suggestion", shortcut=SHORTCUT["Accept suggestion"], type="primary", key="q.accept",
                  disabled=not can_accept, on_click=_commit,
                  args=(root, "relabel", [sid]),
                  kwargs={**common, "to": target.suggested_label, "pending": _pending_id(prefix, sid, "accept")},
                  help="Relabel to the suggested label")
        st.button("Keep label", shortcut=SHORTCUT["Keep label"], key="q.keep", on_click=_commit,
                  args=(root, "keep", [sid]), kwargs={**common, "pending": _pending_id(prefix, sid, "keep")},
                  help="The given label is right; a prune never removes this sample")
        st.button("Relabel…", shortcut=SHORTCUT["Relabel…"], key="q.relabel", on_click=_toggle_relabel,
                  help="Pick another class")
        st.button("Drop", shortcut=SHORTCUT["Drop"], key="q.drop", on_click=_commit,
                  args=(root, "drop", [sid]), kwargs={**common, "pending": _pending_id(prefix, sid, "drop")},
                  help="Leave this sample out of every subset and export")
        st.button("Unsure", shortcut=SHORTCUT["Unsure"], key="q.unsure", on_click=_commit,
                  args=(root, "unsure", [sid]), kwargs={**common, "pending": _pending_id(prefix, sid, "unsure")})
        st.button("Skip", shortcut=SHORTCUT["Skip"], key="q.skip", on_click=_skip, args=(sid,),
                  help="Next sample, no decision (comes back in a new session)")
        st.button("Undo", shortcut=SHORTCUT["Undo"], key="q.undo", on_click=undo_last, args=(root,),
                  kwargs={"source": source}, help="Undo your last decision")
    if st.session_state.get(state.REVIEW_RELABEL_OPEN):
        others = [c for c in classes if c != target.label]
        default = others.index(target.suggested_label) if target.suggested_label in others else 0
        with st.container(horizontal=True, vertical_alignment="bottom"):
            choice = st.selectbox("New label", others, index=default, key=f"q.relabel_to.{sid}")
            st.button(f"Relabel to {choice}", key="q.relabel_apply", shortcut="Ctrl+Enter", on_click=_commit,
                      args=(root, "relabel", [sid]),
                      kwargs={**common, "to": choice, "pending": _pending_id(prefix, sid, f"relabel-{choice}")})


def bulk_actions(root: str, ids: list[str], *, source: str, score_run: str | None, key: str,
                 expected: dict[str, tuple[str | None, str | None]] | None = None) -> None:
    """Tag, drop, keep or relabel every sample of ``ids`` (a selection, ticked rows, results).
    ``expected``: {id: (decision, current label)} as the page shows them (the sample view): a
    sample changed since is refused, not overwritten."""
    if not ids:
        return
    classes = curation_data.class_names(root)
    with st.container(horizontal=True, vertical_alignment="bottom"):
        # no action chosen at first: one careless click on Apply must not drop or relabel anything
        action = st.selectbox("Action", ["drop", "keep", "unsure", "relabel", "tag", "untag"], index=None,
                              placeholder="choose an action", key=f"{key}.action",
                              format_func=lambda a: {"keep": "keep (confirm label)"}.get(a, a))
        if action == "relabel":
            st.selectbox("to", classes, key=f"{key}.to")
        elif action in ("tag", "untag"):
            st.text_input("tag", key=f"{key}.tag", placeholder="e.g. blurry")
        st.button(f"Apply to {count(len(ids), 'sample')}", key=f"{key}.apply", on_click=_commit_bulk,
                  disabled=action is None, args=(root, list(ids), key),
                  kwargs={"source": source, "score_run": score_run, "expected": expected})
    show_acknowledgement()


def _commit_bulk(root: str, ids: list[str], key: str, *, source: str, score_run: str | None,
                 expected: dict[str, tuple[str | None, str | None]] | None = None) -> None:
    """The bulk Apply button's callback. It reads the action, class and tag from the widgets' state
    now: arguments bound when the button was drawn miss a tag typed just before the click (the
    text box commits as the click lands), which applied the previous tag, or none."""
    action = st.session_state.get(f"{key}.action")
    if action is None:
        acknowledge("Not saved: choose an action first.", error=True)
        return
    to = st.session_state.get(f"{key}.to") if action == "relabel" else None
    tag = ((st.session_state.get(f"{key}.tag") or "").strip() or None) if action in ("tag", "untag") else None
    _commit(root, action, ids, source=source, score_run=score_run, to=to, tag=tag, expected=expected)
