"""Asynchronous generations as data: the job table with its leases, the queue port, and the
signed webhooks that report a job's end. The service that runs them is ``service.jobs``."""
