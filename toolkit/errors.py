"""Every failure a user can act on has exactly one place in this tree.

    ToolkitError                 exit code 1   (base; never raised directly)
    ├── UsageError               exit code 2   a flag or argument that cannot work
    ├── ManifestError            exit code 3   agent.yaml is missing, malformed or invalid
    ├── ScaffoldError            exit code 4   `actk new` cannot render the template
    ├── DockerError              exit code 5   the engine is missing or a build/run failed
    │   └── ContainerError       exit code 5   a container exited or never became ready
    │                                          (carries the container's ``logs``)
    ├── SmokeError               exit code 6   `actk smoke`: one or more checks failed
    ├── InvokeError              exit code 7   the agent endpoint is unreachable or answered
    │                                          with an error
    ├── RegistryError            exit code 8   registry credentials or a push failed
    └── CloudError               exit code 9   a cloud control-plane call failed (remote
                                               build, deploy, status, delete)

Each error carries a one-line ``hint`` telling the user how to fix it. The CLI prints
``error: <message>`` and ``hint: <hint>`` and exits with the class's ``exit_code``; only
real bugs (anything not in this tree) show a traceback.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base class: a failure with a message for people and a hint with the fix."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, object]:
        """The machine-readable form printed by ``--json``."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class UsageError(ToolkitError):
    exit_code = 2


class ManifestError(ToolkitError):
    exit_code = 3


class ScaffoldError(ToolkitError):
    exit_code = 4


class DockerError(ToolkitError):
    exit_code = 5


class ContainerError(DockerError):
    """A container exited or did not become ready; ``logs`` holds what it printed."""

    def __init__(self, message: str, *, hint: str | None = None, logs: str = "") -> None:
        super().__init__(message, hint=hint)
        self.logs = logs

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "logs": self.logs}


class SmokeError(ToolkitError):
    exit_code = 6


class InvokeError(ToolkitError):
    exit_code = 7


class RegistryError(ToolkitError):
    exit_code = 8


class CloudError(ToolkitError):
    exit_code = 9
