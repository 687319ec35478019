"""The pure core: events, jobs, schedules, cron and planning. No I/O, no clocks."""
