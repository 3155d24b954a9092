"""Duplicate groups to resolve: each group's members side by side; pick the one to keep and the
others become ``drop`` decisions (source ``duplicates``), so they leave every prune and export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import curation_data, data
from app.components.decision_actions import acknowledge, show_acknowledgement
from app.components.markdown_text import md
from app.components.wording import count
from backend.jobs.duplicates_job import TRAIN_SPLITS
from backend.storage import StorageError

GROUPS_PER_PAGE = 8
THUMBNAIL = 72
#: Members drawn per group; a larger group shows this many and says how many more.
MAX_THUMBNAILS = 24
#: A near-duplicate group larger than this is a chain of similar samples (a ~ b ~ c ...), not copies
#: of one image: a manual threshold set too low joins most of a class. It cannot be resolved with
#: one click here (that would drop all but one of them).
MAX_NEAR_GROUP = 50


def _keep_one(root: str, group: str, members: list[str], radio_key: str, dropped: list[str], *,
              kept: list[str] | None = None) -> None:
    """Drop every member but the chosen one; the chosen one, if it was dropped, is kept again first
    (so a failure leaves nothing more dropped than before). ``kept``: members a keep decision
    held, which the message names when they are dropped now."""
    keep = st.session_state.get(radio_key)
    others = [m for m in members if m != keep]
    overridden = [m for m in kept or [] if m != keep]
    try:
        if keep in dropped:
            curation_data.decide(root, "keep", [keep], source="duplicates", reason=f"kept as the one of {group}")
        result = curation_data.decide(root, "drop", others, source="duplicates",
                                      reason=f"duplicate of {keep} ({group})")
    except StorageError as exc:
        acknowledge(f"Not saved: {md(exc)}", error=True)
        return
    acknowledge(f"Kept {md(keep)}" + (" (it was dropped: now kept)" if keep in dropped else "")
                + f"; dropped {count(result.n_written, 'duplicate')}"
                + (f" ({len(result.unchanged)} already dropped)" if result.unchanged else "")
                + (f"; {md(', '.join(overridden))} had a keep decision, now dropped" if overridden else "")
                + ". Saved.")


def groups_view(root: str, groups: pd.DataFrame, states: pd.DataFrame, *, set_apart_under: float | None = None
                ) -> None:
    """A page of groups, each with its members' thumbnails, labels and decisions.
    ``set_apart_under``: the data rule's threshold, when the groups follow that rule; a near group
    with a member under it was joined as a pair (or small group) set apart, and says so."""
    show_acknowledgement()
    names = groups["group"].drop_duplicates().tolist()
    decision_of = states.dropna(subset=["decision"]).set_index("id")["decision"].to_dict()
    dropped = {sample_id for sample_id, decision in decision_of.items() if decision == "dropped"}
    open_groups = [g for g in names if len(set(groups.loc[groups["group"] == g, "id"]) - dropped) > 1]
    hide = st.toggle("Hide resolved groups (at most one member not dropped)", value=True, key="dup.hide")
    shown = open_groups if hide else names
    st.caption(f"{count(len(names), 'group')} ({len(open_groups):,} unresolved); "
               f"{groups['id'].nunique():,} samples in them. \"sim\": cosine to the group's first member.")
    if not shown:
        st.success("Nothing left to resolve at this threshold.")
        return
    pages = max(1, -(-len(shown) // GROUPS_PER_PAGE))
    page = st.number_input("Page", 1, pages, 1, key="dup.page") if pages > 1 else 1
    for group in shown[(page - 1) * GROUPS_PER_PAGE: page * GROUPS_PER_PAGE]:
        members = groups[groups["group"] == group]
        ids = members["id"].tolist()
        # still standing, train members first: in a split leak the default keeps the train copy and
        # drops the val/test one (the usual remedy: the evaluation set loses the leaked copy)
        in_train = set(members.loc[members["split"].isin(TRAIN_SPLITS), "id"])
        standing = [m for m in ids if m not in dropped and m in in_train]
        standing += [m for m in ids if m not in dropped and m not in in_train]
        # a member a keep decision holds comes first: one click must not drop what a curator kept
        standing.sort(key=lambda m: decision_of.get(m) != "kept")
        with st.container(border=True):
            kind = members["kind"].iloc[0]
            resolved = f" · resolved: keeps {md(standing[0])}" if len(standing) == 1 else (
                " · resolved: all dropped" if not standing else "")
            apart = (kind == "near" and set_apart_under is not None
                     and float(members["similarity"].min()) < set_apart_under)
            st.markdown(f"**{group}** · {kind} {'copies' if kind == 'exact' else 'duplicates'} · "
                        f"{len(members)} samples{resolved}"
                        + (f" · set apart from the rest (cosine under {set_apart_under:.4f})" if apart else ""))
            chain = kind == "near" and len(members) > MAX_NEAR_GROUP
            if chain:
                st.warning(f"{len(members):,} samples joined through chains of similar pairs, not copies of one "
                           "image: raise the threshold (or use the threshold from the data). Resolving it here "
                           "would drop all but one, so this group has no Keep button; decide on its samples in "
                           "Explore or Review instead.")
            if len(members) > MAX_THUMBNAILS:
                st.caption(f"The first {MAX_THUMBNAILS} of {len(members):,}, most similar first.")
            columns = st.columns(min(len(members), 6))
            for k, row in enumerate(members.head(MAX_THUMBNAILS).itertuples()):
                with columns[k % len(columns)]:
                    picture = data.thumbnail(row.path, THUMBNAIL) if isinstance(row.path, str) else None
                    if picture is not None:
                        st.image(picture, width=THUMBNAIL)
                    status = decision_of.get(row.id, "")  # kept, relabeled, unsure or dropped
                    st.caption(f"{md(row.label)} · {md(row.split or '-')} · sim {row.similarity:.3f} {status}\n\n"
                               f"`{str(row.id).replace('`', '')}`")
            if chain:
                continue
            radio_key = f"dup.keep.{group}"
            with st.container(horizontal=True, vertical_alignment="bottom"):
                # the member still standing first: a resolved group's radio must not offer the dropped one
                st.radio("Keep", ids, index=ids.index(standing[0]) if standing else 0, key=radio_key,
                         horizontal=True)
                st.button("Keep it, drop the others", key=f"dup.apply.{group}", on_click=_keep_one,
                          args=(root, group, ids, radio_key, sorted(set(ids) & dropped)),
                          kwargs={"kept": sorted(m for m in ids if decision_of.get(m) == "kept")})
