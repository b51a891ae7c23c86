"""Integrations of lcpfn with other tools (installed as ``lcpfn.integrations``)."""
