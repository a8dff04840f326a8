"""Agent Container Toolkit: scaffold, build, push, deploy and smoke-test agent containers."""

__version__ = "0.1.0"
