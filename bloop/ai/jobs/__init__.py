"""AI jobs: requests become jobs in the `ai` database, queued on `ai.jobs`, run by `bloop worker
ai` processes under a lease, followed on `video.events` and through a server-sent event stream."""
