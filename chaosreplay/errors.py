"""Errors a user can cause, reported by the CLI as one line and a nonzero exit."""


class ChaosReplayError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class KvmUnavailableError(ChaosReplayError):
    """/dev/kvm is missing or unusable on this host."""


class GuestProgramError(ChaosReplayError):
    """A node program that chaosreplay cannot load (not ELF, not static, wrong arch...)."""


class RecordingError(ChaosReplayError):
    """A .ccr recording that is damaged, truncated, hostile or of an unsupported version."""


class ConfigError(ChaosReplayError):
    """An invalid scenario file or fault plan; the message names the key path and the problem."""
