"""The frozen configs of a model and of a training run. Importing this module imports no torch.

:class:`ModelConfig` is everything needed to rebuild a :class:`~lcpfn.model.PFN`;
:class:`TrainConfig` is a training run: the model's fields plus the prior, the optimisation and
the session's settings. Both check their values with ``problems(values, name=...)``, which words
each message with ``name(field)``: the field itself in the library's errors, the flag
(``--max-epochs``) in the command line's, from one set of rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from lcpfn import limits
from lcpfn.errors import InputError

if TYPE_CHECKING:
    from lcpfn.priors import Prior

__all__ = ["ModelConfig", "TrainConfig", "SESSION_FIELDS", "RUN_DEFINING"]

Namer = Callable[[str], str]


def _first(problems: Iterator[str]) -> str | None:
    return next(problems, None)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`~lcpfn.model.PFN`.

    ``seq_len`` is the native curve length: epochs are fed as ``t / seq_len`` and
    ``log t / log seq_len``. ``head_hidden`` > 0 makes the output head an MLP
    (``LayerNorm -> Linear(d_model, head_hidden) -> GELU -> Linear(head_hidden, num_bins)``, as in
    the original PFN decoder) instead of one linear layer; ``value_hidden`` > 0 does the same for
    the value encoder (``Linear(1, value_hidden) -> GELU -> Linear(value_hidden, d_model)``). Both
    default to 0 so checkpoints written before these options existed load unchanged.
    """

    seq_len: int = 100  # native curve length, epochs
    num_bins: int = 1000  # bars of the output distribution
    # the transformer
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 512  # hidden width of each block's MLP
    dropout: float = 0.0
    # encoder and head (0: one linear layer)
    head_hidden: int = 0
    value_hidden: int = 0

    def __post_init__(self) -> None:
        problem = _first(ModelConfig.problems(asdict(self)))
        if problem is not None:
            raise ValueError(problem)

    @staticmethod
    def problems(values: Mapping[str, Any], *, name: Namer = str) -> Iterator[str]:
        """What is wrong with the model fields in ``values``, worded with ``name(field)``.

        Besides the types and the lower bounds, every size is capped (:mod:`lcpfn.limits`,
        ``docs/limits.md``) and so is the parameter count the sizes imply
        (:meth:`count_parameters`), so a config read from a file can neither build a model of
        terabytes nor loop for minutes over layers before anything is checked.
        """
        wrong_type = False
        for f in _INT_FIELDS:
            v = values[f]
            if isinstance(v, bool) or not isinstance(v, int):
                wrong_type = True
                yield f"{name(f)} must be an integer but got {v!r}"
        dropout = values["dropout"]
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            wrong_type = True
            yield f"{name('dropout')} must be a number in [0, 1) but got {dropout!r}"
        if wrong_type:
            return
        in_range = True
        for f, top in _SIZE_LIMITS.items():
            if values[f] < 1:
                in_range = False
                yield f"{name(f)} must be at least 1 but got {values[f]}"
            elif values[f] > top:
                in_range = False
                yield f"{name(f)} must be at most {top} but got {values[f]}"
        for f in ("head_hidden", "value_hidden"):
            if values[f] < 0:
                in_range = False
                yield f"{name(f)} must be at least 0 (0 = a single linear layer) but got {values[f]}"
            elif values[f] > limits.MAX_HIDDEN:
                in_range = False
                yield f"{name(f)} must be at most {limits.MAX_HIDDEN} but got {values[f]}"
        if not 0 <= dropout < 1:
            yield f"{name('dropout')} must be in [0, 1) but got {dropout}"
        if values["n_heads"] >= 1 and values["d_model"] % values["n_heads"]:
            yield (
                f"{name('d_model')} ({values['d_model']}) must be divisible by {name('n_heads')} "
                f"({values['n_heads']})"
            )
        if in_range:
            n = ModelConfig.count_parameters(values)
            if n > limits.MAX_PARAMETERS:
                yield (
                    f"the model ({name('d_model')}={values['d_model']}, {name('n_layers')}={values['n_layers']}, "
                    f"{name('d_ff')}={values['d_ff']}, ...) would have {n:,} parameters, more than the "
                    f"{limits.MAX_PARAMETERS:,} lcpfn builds"
                )

    @staticmethod
    def count_parameters(values: Mapping[str, Any]) -> int:
        """The number of parameters of the :class:`~lcpfn.model.PFN` the fields in ``values`` build,
        computed without building it (``tests/test_checkpoint.py`` checks it against the model)."""
        d, ff, k = values["d_model"], values["d_ff"], values["num_bins"]
        vh, hh = values["value_hidden"], values["head_hidden"]
        epochs = 2 * d + d  # Linear(2, d)
        value = (vh + vh) + (vh * d + d) if vh else d + d  # Linear(1, vh) -> Linear(vh, d), or Linear(1, d)
        # ln1, q, kv, proj, ln2, mlp: 2d + (d^2 + d) + (2d^2 + 2d) + (d^2 + d) + 2d + (d ff + ff + ff d + d)
        block = 4 * d * d + 2 * d * ff + 9 * d + ff
        head = (d * hh + hh) + (hh * k + k) if hh else d * k + k
        return epochs + value + values["n_layers"] * block + 2 * d + head


_INT_FIELDS = ("seq_len", "num_bins", "d_model", "n_layers", "n_heads", "d_ff", "head_hidden", "value_hidden")
_SIZE_LIMITS = {
    "seq_len": limits.MAX_SEQ_LEN,
    "num_bins": limits.MAX_NUM_BINS,
    "d_model": limits.MAX_D_MODEL,
    "n_layers": limits.MAX_N_LAYERS,
    "n_heads": limits.MAX_N_HEADS,
    "d_ff": limits.MAX_HIDDEN,
}


# Settings a resumed run may change: they do not change what is trained (device, checkpoint
# cadence, threads). Every other field of TrainConfig but out_dir defines the run.
SESSION_FIELDS = frozenset({"device", "precision", "compile", "checkpoint_every", "log_every", "threads"})
# Run-defining fields added after runs already existed, with the value those runs used.
_ADDED_LATER = {"head_hidden": 0, "value_hidden": 0, "init_from": None, "prior_settings": None, "budget": None}


@dataclass(frozen=True, kw_only=True)
class TrainConfig(ModelConfig):
    """A training run: the fields of :class:`ModelConfig` (the architecture) and these.

    ``init_from``: a checkpoint directory whose weights and bin borders start this run (a second
    training stage, or fine-tuning on another prior); its architecture must match these fields.
    The optimizer and learning-rate schedule start fresh.

    ``prior_settings``: fields of the prior's dataclass to change from their defaults, e.g.
    ``{"p_step": 0.3, "step_width_range": (0.05, 0.3)}`` for ``prior="extended"``. Stored as JSON
    (pairs become lists); empty means none.

    ``budget``: train on runs of this many epochs (at most ``seq_len``) instead of ``seq_len``:
    prior curves are drawn with ``seq_len=budget``, so the components an extended prior ties to
    training progress (a late rise ending with the run, a step, overfitting, ...) happen within
    ``budget`` epochs, and only epochs up to ``budget`` are observed and predicted. Epochs are still
    embedded as ``t / seq_len``, so a budget run can start from (``init_from``) a ``seq_len`` model.
    The checkpoint records the budget and :class:`~lcpfn.LCPFN` reads it as the model's native
    length: a run of ``budget`` epochs is forecast as such, a longer one is subsampled onto it.
    ``None`` (the default) is ``seq_len``.

    The fields in :data:`SESSION_FIELDS` may change when a run is resumed; the others define it.
    """

    out_dir: str
    # what the model learns from
    prior: str = "reference"
    prior_settings: dict[str, Any] | None = None
    budget: int | None = None
    border_curves: int = 20_000  # prior curves whose quantiles are the bin borders
    init_from: str | None = None
    # optimisation: AdamW, linear warm-up, cosine decay to min_lr
    steps: int = 2000
    batch_size: int = 100
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 200
    weight_decay: float = 0.0
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0: no clipping
    seed: int = 0
    # this session (SESSION_FIELDS)
    device: str = "auto"
    precision: Literal["auto", "float32", "bf16"] = "auto"
    compile: bool = False
    checkpoint_every: int = 500
    log_every: int = 50
    threads: int | None = None

    def __post_init__(self) -> None:
        problem = _first(TrainConfig.problems(asdict(self)))
        if problem is not None:
            raise InputError(problem)
        settings = self.prior_settings
        if settings is not None:
            if not isinstance(settings, Mapping):
                raise InputError(f"prior_settings must be a mapping of prior fields to values but got {settings!r}")
            try:  # the JSON form, as stored in checkpoints (pairs become lists), so a resume compares alike
                settings = json.loads(json.dumps(dict(settings), allow_nan=False))
            except (TypeError, ValueError):
                raise InputError(f"prior_settings must hold finite JSON values but got {settings!r}") from None
            object.__setattr__(self, "prior_settings", settings or None)
        self.make_prior()  # validates the prior and its settings

    @staticmethod
    def problems(values: Mapping[str, Any], *, name: Namer = str) -> Iterator[str]:
        """What is wrong with ``values`` (every field but ``prior_settings``), worded with
        ``name(field)``; the prior and its settings are checked when the config is built."""
        for f in ("steps", "batch_size", "checkpoint_every", "log_every", "border_curves"):
            if values[f] < 1:
                yield f"{name(f)} must be at least 1 but got {values[f]}"
        if values["seq_len"] < 2:
            yield f"{name('seq_len')} must be at least 2 but got {values['seq_len']}"
        yield from ModelConfig.problems(values, name=name)
        budget, seq_len = values["budget"], values["seq_len"]
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int) or not 2 <= budget <= seq_len
        ):
            yield f"{name('budget')} must be an integer from 2 to {name('seq_len')} ({seq_len}) but got {budget!r}"
        lr, min_lr = values["lr"], values["min_lr"]
        if not lr > 0 or not math.isfinite(lr):
            yield f"{name('lr')} must be positive but got {lr}"
        elif not 0 <= min_lr <= lr:
            yield f"{name('min_lr')} must be between 0 and {name('lr')} ({lr}) but got {min_lr}"
        for f in ("warmup_steps", "weight_decay", "grad_clip"):
            if values[f] < 0:
                yield f"{name(f)} must be at least 0 but got {values[f]}"
        if not 0 <= values["beta2"] < 1:
            yield f"{name('beta2')} must be in [0, 1) but got {values['beta2']}"
        if values["threads"] is not None and values["threads"] < 1:
            yield f"{name('threads')} must be at least 1 but got {values['threads']}"
        if values["precision"] not in ("auto", "float32", "bf16"):
            yield f"{name('precision')} must be 'auto', 'float32' or 'bf16', but got {values['precision']!r}"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default (``out_dir`` has none and is left out)."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    @classmethod
    def recorded(cls, record: Mapping[str, Any]) -> dict[str, Any]:
        """The field values of a run as a checkpoint records them (``asdict`` of its config), but
        ``out_dir`` (the run may have moved), with run-defining fields added since then set as
        those runs used them and new session fields at their defaults. Unknown keys (a newer
        lcpfn's) raise :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise InputError(f"the recorded run has settings this lcpfn does not know: {unknown}; upgrade lcpfn")
        values = {**cls.defaults(), **_ADDED_LATER, **record}
        values.pop("out_dir", None)
        return values

    @property
    def run_length(self) -> int:
        """Epochs per training curve: ``budget``, or ``seq_len`` without one."""
        return self.seq_len if self.budget is None else self.budget

    def make_prior(self) -> Prior:
        """The prior ``prior`` with ``prior_settings`` applied (lists as tuples: the ranges)."""
        from lcpfn.priors import get_prior

        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in (self.prior_settings or {}).items()}
        try:
            return get_prior(self.prior, **settings)
        except (TypeError, ValueError) as exc:
            message = str(exc)
            if not message.startswith(("prior ", "unknown prior")):
                message = f"prior {self.prior!r}: {message}"
            raise InputError(message) from None

    def model_config(self) -> ModelConfig:
        """The architecture part of this run."""
        return ModelConfig(**{f.name: getattr(self, f.name) for f in fields(ModelConfig)})

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``steps``."""
        warm = min(self.warmup_steps, self.steps // 4)
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = (step - warm) / max(1, self.steps - warm)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


RUN_DEFINING = tuple(f.name for f in fields(TrainConfig) if f.name != "out_dir" and f.name not in SESSION_FIELDS)
