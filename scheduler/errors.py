"""Exceptions of the scheduler package."""

from __future__ import annotations


class SchedulerError(Exception):
    """Base of every error raised by the scheduler package."""


class CampaignNotFound(SchedulerError):
    """No campaign has the given id."""


class CampaignStateError(SchedulerError):
    """The campaign cannot make the requested transition (e.g. resume a cancelled campaign)."""


class ServiceNotRunning(SchedulerError):
    """A persisted job fired but no SchedulerService with its instance name is running in this process."""
