"""Exceptions of the speech package, so callers can catch speech failures without catching everything."""

from __future__ import annotations


class SpeechError(Exception):
    """Base class of every error raised by ``speech``."""


class ModelNotFoundError(SpeechError):
    """A model (STT, TTS, VAD) could not be found on disk; the message names the package or path to provide."""


class BackendUnavailableError(SpeechError):
    """An optional backend's library is not installed; the message names the package/extra to install."""


class SynthesisError(SpeechError):
    """Text-to-speech failed for a given text."""
