"""Every size and range lcpfn accepts, in one place (the reasons: ``docs/limits.md``).

Each limit is checked before the work or the allocation it bounds, and a value beyond it raises
:class:`~lcpfn.errors.InputError` (a call's arguments) or :class:`~lcpfn.errors.CheckpointError`
(a checkpoint's config or weights) naming the value and the limit. Importing this module imports
nothing.
"""

from __future__ import annotations

# --- a predict call -------------------------------------------------------------------------
MAX_EPOCHS = 100_000
"""Largest ``max_epochs`` (the forecast horizon)."""

MAX_OBSERVED = 100_000
"""Most observed epochs of one curve."""

MAX_CURVES = 1_000_000
"""Most curves in one ``predict`` call (a stream of chunks may hold more in all)."""

MAX_INPUT_VALUES = 100_000_000
"""Most cells of a call's curves as one NaN-padded ``(n, T_max)`` array (800 MB of float64)."""

MAX_MARGINALS = 100_000_000
"""Most marginals one forecast holds: ``n`` curves times the ``H`` epochs forecast."""

MAX_ABS_VALUE = 1e150
"""Largest ``|value|`` of an observed value or a known bound, in the caller's units."""

MIN_SPAN = 1e-150
"""Smallest width of a known range ``high - low`` and of an inferred span (caller units)."""

# --- a checkpoint ---------------------------------------------------------------------------
MAX_SEQ_LEN = MAX_EPOCHS
"""Largest native curve length ``seq_len`` of a model."""

MAX_NUM_BINS = 10_000
"""Most bins of the output distribution."""

MAX_D_MODEL = 16_384
"""Largest transformer width ``d_model``."""

MAX_N_LAYERS = 256
"""Most transformer blocks ``n_layers``."""

MAX_N_HEADS = 1_024
"""Most attention heads ``n_heads``."""

MAX_HIDDEN = 65_536
"""Largest hidden width of the MLPs: ``d_ff``, ``head_hidden``, ``value_hidden``."""

MAX_PARAMETERS = 1_000_000_000
"""Most parameters a checkpoint's config may describe (4 GB of float32)."""

MAX_CONFIG_BYTES = 1_000_000
"""Largest ``config.json`` read (a shipped one is about 3 KB)."""
