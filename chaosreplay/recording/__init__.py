"""The .ccr recording: an append-only msgpack+zstd event log with checkpoints.

The byte layout is specified in docs/recording-format.md; `format` holds its constants.
"""

from chaosreplay.recording.checkpoint import Checkpoint
from chaosreplay.recording.format import FORMAT_MAJOR, FORMAT_MINOR
from chaosreplay.recording.model import CheckpointInfo, Event
from chaosreplay.recording.reader import RecordingReader
from chaosreplay.recording.verify import VerifyReport, verify_recording
from chaosreplay.recording.writer import RecordingWriter

__all__ = [
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "Checkpoint",
    "CheckpointInfo",
    "Event",
    "RecordingReader",
    "RecordingWriter",
    "VerifyReport",
    "verify_recording",
]
