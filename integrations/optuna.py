"""Optuna integration: :class:`LCPFNPruner`, a pruner that extrapolates learning curves.

Needs the ``optuna`` extra (``pip install 'lcpfn[optuna]'``).
"""

from lcpfn.integrations._optuna_pruner import ATTR_KEY, LCPFNPruner

__all__ = ["LCPFNPruner", "ATTR_KEY"]
