"""schedulerx: distributed cron — each job started at most once, none silently missed.

Register commands, give the scheduler a fetcher of their schedules, run it on one machine
(embedded log) or as many pods over Kafka, and list every job.
"""

from schedulerx.api.command import Command, FunctionCommand
from schedulerx.api.context import current_job
from schedulerx.api.fetchers import (
    FileScheduleFetcher,
    LogScheduleFetcher,
    ScheduleFetcher,
    StaticScheduleFetcher,
)
from schedulerx.api.scheduler import Scheduler
from schedulerx.domain.cron import CronError
from schedulerx.domain.job import Job, JobStatus
from schedulerx.domain.schedule import Overlap, Policy, Schedule

__all__ = [
    "Command",
    "CronError",
    "FileScheduleFetcher",
    "FunctionCommand",
    "Job",
    "JobStatus",
    "LogScheduleFetcher",
    "Overlap",
    "Policy",
    "Schedule",
    "ScheduleFetcher",
    "Scheduler",
    "StaticScheduleFetcher",
    "current_job",
]

__version__ = "0.1.0"
