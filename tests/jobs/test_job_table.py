"""The job state machine: at most one completion, whatever the deliveries."""

import sqlite3

import pytest

from fluxgate.jobs.table import FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobTable


@pytest.fixture
def table():
    db = sqlite3.connect(":memory:", isolation_level=None)
    return JobTable(lambda sql, params: db.execute(sql, tuple(params)).fetchall())


def job(job_id="job_1"):
    return Job(job_id, "key_1", QUEUED, {"params": {}}, None, None, None, None, 0, 100, 100)


def test_a_claim_runs_once_and_a_second_claim_waits(table):
    table.create(job())
    first = table.claim("job_1", now=1000)
    assert first.outcome == "run" and first.job.status == RUNNING and first.job.attempts == 1
    second = table.claim("job_1", now=1001)
    assert second.outcome == "busy" and second.retry_in > 0


def test_only_the_lease_holder_completes(table):
    table.create(job())
    claim = table.claim("job_1", now=1000)
    assert table.succeed("job_1", "not-the-lease", {"r": 1}, now=1001) is None
    done = table.succeed("job_1", claim.lease, {"r": 1}, now=1002)
    assert done.status == SUCCEEDED and done.result == {"r": 1}
    assert table.succeed("job_1", claim.lease, {"r": 2}, now=1003) is None  # once only
    assert table.claim("job_1", now=1004).outcome == "done"


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses(table):
    table.create(job())
    old = table.claim("job_1", now=1000, lease_seconds=10)
    new = table.claim("job_1", now=1011)
    assert new.outcome == "run" and new.job.attempts == 2
    assert table.fail("job_1", old.lease, {"code": "x"}, now=1012) is None
    assert table.fail("job_1", new.lease, {"code": "y"}, now=1013).status == FAILED


def test_release_puts_it_back_in_the_queue(table):
    table.create(job())
    claim = table.claim("job_1", now=1000)
    table.release("job_1", claim.lease, now=1001)
    assert table.get("job_1").status == QUEUED
    assert table.claim("job_1", now=1002).outcome == "run"


def test_unknown_jobs_are_missing(table):
    assert table.claim("job_nope", now=1).outcome == "missing"
