"""The save-as-subset form shared by Explore (a map selection) and Review (flagged samples).

Saving over an existing name needs the explicit overwrite box: curation is never lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app import data
from app.components.markdown_text import md
from app.components.wording import count
from backend.storage import ConflictError, StorageError


@dataclass(frozen=True)
class SaveFormKeys:
    """Widget keys of one page's form (names from :mod:`app.state`)."""

    form: str
    name: str
    overwrite: str


def save_subset_form(
    root: str,
    ids: list[str],
    *,
    keys: SaveFormKeys,
    run_id: str | None,
    origin: str = "selection",
    label: str = "Save the selection as subset",
    placeholder: str = "e.g. blurry-sevens",
    default_name: str | None = None,
) -> None:
    """Save ``ids`` as a named subset; a name clash needs the explicit overwrite box."""
    if default_name is not None and keys.name not in st.session_state:
        st.session_state[keys.name] = default_name
    with st.form(keys.form):
        name = st.text_input(label, key=keys.name, placeholder=placeholder)
        overwrite = st.checkbox("Replace an existing subset with this name", key=keys.overwrite)
        submitted = st.form_submit_button(f"Save {count(len(ids), 'sample')}")
    if not submitted:
        return
    try:
        saved = data.save_selection(
            root, name, ids, run_id=run_id, overwrite=overwrite, origin=origin
        )
    except ConflictError as exc:
        st.error(f"{md(exc)}. Nothing was saved: pick a new name, or tick the box above to replace it.")
        return
    except StorageError as exc:
        st.error(f"Nothing was saved: {md(exc)}")
        return
    verb = "Replaced" if saved.replaced else "Saved"
    st.success(f"{verb} subset '{saved.name}' ({saved.n} samples). Export it from the Export page.")
