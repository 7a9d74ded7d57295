"""The built-in Python data plane: TCP, UDP and HTTP proxying driven by the IR."""
