"""The orchestrators, above every domain: generation, controls, idempotency, the job service
and runner, readiness, settings, and the :class:`Gateway` that holds them. Nothing below
imports from here."""
