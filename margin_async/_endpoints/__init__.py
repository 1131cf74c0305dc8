"""Endpoint modules: the only code that knows paths, parameter names and weights."""
