"""lcpfn: Bayesian learning-curve extrapolation with Prior-data Fitted Networks."""

from lcpfn.errors import CheckpointError, InputError, LCPFNError, UnknownModelError
from lcpfn.forecast import Forecast

__version__ = "0.2.0.dev0"

__all__ = ["LCPFN", "Forecast", "LCPFNError", "InputError", "CheckpointError", "UnknownModelError", "__version__"]


def __getattr__(name: str):
    # LCPFN pulls in torch; keep `import lcpfn` light for the CLI's --help and the errors.
    if name == "LCPFN":
        from lcpfn.predictor import LCPFN

        return LCPFN
    raise AttributeError(f"module 'lcpfn' has no attribute {name!r}")
