"""A worker process for bench/jobs.py: a CRM with no-op handlers.

``bench.noop`` is declared ``batch=True`` (its jobs share transactions);
``bench.noop_each`` runs each job in its own transaction.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from crmcore import CRM, hookimpl
from crmcore.registry import JobHandler


class NoOp:
    @hookimpl
    def crm_register_jobs(self):
        return [
            JobHandler(name="bench.noop", func=lambda call: None, batch=True),
            JobHandler(name="bench.noop_each", func=lambda call: None),
        ]


def make_crm() -> CRM:
    """The CRM of a bench worker (also the Celery factory)."""
    return CRM(database_url=os.environ["CRMCORE_DATABASE_URL"], plugins=[NoOp()], environment="test")


if __name__ == "__main__":
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    make_crm().jobs.worker(batch_size=batch, poll_interval=0.05, lease=timedelta(minutes=5)).run()  # until SIGTERM
