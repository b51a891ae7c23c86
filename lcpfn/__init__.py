"""lcpfn: Bayesian learning-curve extrapolation with Prior-data Fitted Networks."""

from lcpfn.errors import CheckpointError, InputError, LCPFNError, UnknownModelError

__version__ = "0.2.0.dev0"

__all__ = ["LCPFN", "Forecast", "Predictor", "LCPFNError", "InputError", "CheckpointError", "UnknownModelError",
           "__version__"]


def __getattr__(name: str):
    # LCPFN pulls in torch and Forecast numpy; keep `import lcpfn` light for `lcpfn --help`.
    if name == "LCPFN":
        from lcpfn.predictor import LCPFN

        return LCPFN
    if name in ("Forecast", "Predictor"):
        import lcpfn.forecast

        return getattr(lcpfn.forecast, name)
    raise AttributeError(f"module 'lcpfn' has no attribute {name!r}")
