"""The Celery backend: outbox rows run by Celery workers on any number of machines.

With ``jobs_backend = "celery"`` the ``crm worker`` process becomes a
dispatcher: it claims due rows (state ``queued``, with a lease) and publishes
one ``crmcore.run_job`` task per row. A Celery worker started with ::

    celery -A crmcore.jobs.celery_app worker

claims the row again (``queued`` → ``running``, so a duplicate message is a
no-op), runs the handler and marks it done, retried or dead under exactly the
rules of the in-process worker. A lost message leaves the row ``queued``
until its lease ends; then the dispatcher publishes it again.

The worker process builds its CRM from ``CRMCORE_*`` settings, or by calling
the factory named in ``CRMCORE_CRM_FACTORY`` (``package.module:function``),
which is how a host application passes its own plugins.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery import Celery

from crmcore.settings import Settings

if TYPE_CHECKING:
    from crmcore.crm import CRM

TASK_NAME = "crmcore.run_job"
#: How long a Celery worker may hold a job before another may take it.
LEASE = timedelta(minutes=5)


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
    app.task(name=TASK_NAME, bind=False)(run_job)
    return app


_process_crm: CRM | None = None


def process_crm() -> CRM:
    """The CRM of this worker process, built once from the factory or the settings."""
    global _process_crm
    if _process_crm is None:
        factory = os.environ.get("CRMCORE_CRM_FACTORY")
        if factory:
            module, _, name = factory.partition(":")
            _process_crm = getattr(importlib.import_module(module), name)()
        else:
            from crmcore.crm import CRM

            _process_crm = CRM()
    assert _process_crm is not None
    return _process_crm


def run_job(job_id: int) -> None:
    """The Celery task: claim the queued row, run its handler, mark it."""
    from crmcore.jobs import outbox

    crm = process_crm()
    worker = f"celery:{socket.gethostname()}:{os.getpid()}"
    claimed = outbox.claim_one(crm, job_id, worker, LEASE)
    if claimed is not None:
        outbox.execute(crm, [claimed], worker)


def publish(crm: CRM, job_ids: Sequence[int]) -> None:
    """Publish one task per job id to the broker of *crm*'s settings."""
    app: Any = crm.jobs.celery
    with app.producer_or_acquire() as producer:
        for job_id in job_ids:
            app.send_task(TASK_NAME, args=[job_id], queue=crm.settings.celery_queue, producer=producer)


#: The app ``celery -A crmcore.jobs.celery_app worker`` runs.
app = make_celery(Settings.load())
