"""The project's internals, imported by its commands, scripts and tests."""
