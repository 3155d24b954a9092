"""Pruning scores and procedures (see the submodules; names are registered in ``registry``)."""
