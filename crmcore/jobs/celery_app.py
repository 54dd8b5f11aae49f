"""The Celery backend: outbox rows run by Celery workers on any number of machines.

With ``jobs_backend = "celery"`` the ``crm worker`` process becomes a
dispatcher: it claims due rows (state ``queued``, with a lease) and publishes
one ``crmcore.run_jobs`` task per ``celery_chunk`` rows. A Celery worker started with ::

    celery -A crmcore.jobs.celery_app worker

claims the task's rows again (``queued`` → ``running``, so a duplicate message
is a no-op), runs their handlers and marks them done, retried or dead under
exactly the rules of the in-process worker (jobs of ``batch=True`` handlers
share a transaction). A lost message leaves its rows ``queued`` until their
lease ends; then the dispatcher publishes them again.

The worker process builds its CRM from ``CRMCORE_*`` settings, or by calling
the factory named in ``CRMCORE_CRM_FACTORY`` (``package.module:function``),
which is how a host application passes its own plugins.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery import Celery
from sqlalchemy.exc import OperationalError

from crmcore.settings import Settings

if TYPE_CHECKING:
    from crmcore.crm import CRM

TASK_NAME = "crmcore.run_jobs"
#: How long a Celery worker may hold a job before another may take it.
LEASE = timedelta(minutes=5)
#: Tries of a task's claim when it deadlocks with another.
CLAIM_ATTEMPTS = 5


def make_celery(settings: Settings) -> Celery:
    """A Celery app for *settings*: broker, queue, and the one task crmcore needs."""
    app = Celery("crmcore", broker=settings.broker_url)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK_NAME, bind=False)(run_jobs)
    app.task(name="crmcore.run_job", bind=False)(run_job)  # messages of earlier dispatchers, still queued
    return app


_process_crm: CRM | None = None
_process_lock = threading.Lock()


def process_crm() -> CRM:
    """The CRM of this worker process (engine and pool included), built once from the factory or the settings."""
    global _process_crm
    with _process_lock:  # the threads of a ``--pool threads`` worker share it
        if _process_crm is None:
            factory = os.environ.get("CRMCORE_CRM_FACTORY")
            if factory:
                module, _, name = factory.partition(":")
                _process_crm = getattr(importlib.import_module(module), name)()
            else:
                from crmcore.crm import CRM

                _process_crm = CRM()
        return _process_crm


def run_jobs(job_ids: list[int]) -> None:
    """The Celery task: claim the rows still queued, run their handlers, mark them."""
    from crmcore.jobs import outbox

    crm = process_crm()
    worker = f"celery:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"  # one per task: threads differ
    for attempt in range(1, CLAIM_ATTEMPTS + 1):
        try:
            claimed = outbox.claim(crm, worker, len(job_ids), LEASE, ids=job_ids)
            break
        except OperationalError:  # a deadlock with another claim (MariaDB): nothing was written, so try again
            if attempt == CLAIM_ATTEMPTS:
                raise  # the rows stay queued; the dispatcher publishes them again when their lease ends
            time.sleep(0.05 * attempt)
    if claimed:
        outbox.execute(crm, claimed, worker)


def run_job(job_id: int) -> None:
    """The task of one job, as earlier dispatchers published it."""
    run_jobs([job_id])


def publish(crm: CRM, job_ids: Sequence[int]) -> None:
    """Publish one task per ``celery_chunk`` job ids to the broker of *crm*'s settings."""
    app: Any = crm.jobs.celery
    size = max(crm.settings.celery_chunk, 1)
    with app.producer_or_acquire() as producer:
        for start in range(0, len(job_ids), size):
            chunk = list(job_ids[start : start + size])
            app.send_task(TASK_NAME, args=[chunk], queue=crm.settings.celery_queue, producer=producer)


#: The app ``celery -A crmcore.jobs.celery_app worker`` runs.
app = make_celery(Settings.load())
