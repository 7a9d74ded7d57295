"""Errors that end a mode with a clear message instead of a traceback."""


class DataPlaneError(RuntimeError):
    """The data plane cannot run (missing Envoy binary, port in use); the message says why."""
