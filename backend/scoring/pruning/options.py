"""``thresher prune --option KEY=VALUE``: a procedure's settable parameters and their text read
into the ``options`` that :func:`backend.scoring.pruning.registry.prune` takes.

Each value is read as the type of the parameter's default and range-checked with the
procedure's own check, so a bad value is refused before a prune run starts.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from backend.scoring.pruning import procedures
from backend.scoring.pruning.registry import parse_method


def method_parameters(method: str) -> dict[str, Any]:
    """The settable parameters of a procedure with their defaults (``thresher prune --option``):
    SIMS's sampling shape, CCS's cut-off and strata, D2's graph; the others have none."""
    spec, _ = parse_method(method)
    if spec.name == "sims":
        from backend.scoring.pruning.sims_sampling import DEFAULT_SIMS_SAMPLING

        return DEFAULT_SIMS_SAMPLING.to_dict()
    if spec.name == "ccs":
        target = procedures.ccs_prune
    elif spec.name == "d2":
        from backend.scoring.pruning.d2 import d2_select as target
    else:
        return {}
    fixed = {"labels", "per_class", "seed", "exclude", "embeddings"}
    return {
        p.name: p.default for p in inspect.signature(target).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        and p.name not in fixed
    }  # fmt: skip


def method_options(method: str, given: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``KEY=VALUE`` settings (text, as typed) -> the ``options`` ``registry.prune`` takes.

    Each value is read as the type of the parameter's default (int, float or bool); unknown
    keys and unreadable values raise ValueError naming the procedure's parameters. The ranges
    are checked here with the procedures' own checks (``SimsSampling``, ``check_ccs_parameters``,
    ``check_d2_parameters``), so a bad value is refused before a prune run starts.
    """
    spec, _ = parse_method(method)
    known = method_parameters(method)
    listing = ", ".join(f"{k} (default {v})" for k, v in known.items()) or "none"
    typed: dict[str, Any] = {}
    for key, text in given.items():
        if key not in known:
            raise ValueError(f"method {spec.name!r} has no option {key!r}; its options: {listing}")
        typed[key] = _read_as(type(known[key]), key, str(text))
    settings = {**known, **typed}
    if spec.name == "sims":  # stored as a plain dict (the run config is JSON), checked here
        from backend.scoring.pruning.sims_sampling import SimsSampling

        return {"sims": {"params": SimsSampling(**settings).to_dict()}}
    if spec.name == "ccs":
        procedures.check_ccs_parameters(**settings)
    elif spec.name == "d2":
        from backend.scoring.pruning.d2 import check_d2_parameters

        check_d2_parameters(**settings)
    return {spec.name: typed} if typed else {}


def _read_as(kind: type, key: str, text: str) -> Any:
    try:
        if kind is bool:
            if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.strip().lower() in ("true", "1", "yes")
        value = kind(text) if kind is not int else int(text.strip())
        if kind is float and not np.isfinite(value):
            raise ValueError(text)
        return value
    except ValueError:
        expected = {int: "an integer", float: "a finite number", bool: "true or false"}.get(kind, kind.__name__)
        raise ValueError(f"option {key}={text!r}: expected {expected}") from None
