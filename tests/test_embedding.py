"""A host application embeds crmcore: its engine, its session, its transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from crmcore import CRM
from crmcore.models import Contact


class HostBase(DeclarativeBase):
    pass


class Order(HostBase):
    __tablename__ = "shop_order"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))


@pytest.fixture
def host(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    HostBase.metadata.create_all(engine)
    crm = CRM(engine=engine, plugins=[], environment="test")
    crm.db_upgrade()
    return engine, crm


def contacts(crm):
    with crm.transaction(readonly=True) as ctx:
        return ctx.session.scalar(select(func.count(Contact.id)))


def test_crm_writes_commit_with_the_host_transaction(host):
    engine, crm = host
    with Session(engine) as session, session.begin():
        session.add(Order(email="ada@example.com"))
        with crm.transaction(session=session):
            crm.leads.capture(email="ada@example.com", touch={"kind": "conversion", "value": "20"})
    assert contacts(crm) == 1
    with Session(engine) as session:
        assert session.scalar(select(func.count(Order.id))) == 1


def test_a_host_rollback_takes_the_crm_writes_with_it(host):
    engine, crm = host
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        session.add(Order(email="ada@example.com"))
        with crm.transaction(session=session):
            crm.leads.capture(email="ada@example.com")
            crm.jobs.enqueue("core.send_mail", {"to": "x"}, key="would-be-mail")
        raise RuntimeError("payment failed")
    assert contacts(crm) == 0
    assert crm.jobs.list(handler="core.send_mail") == []


def test_queued_work_wakes_the_worker_only_after_the_host_commits(host, monkeypatch):
    engine, crm = host
    woken = []
    monkeypatch.setattr(crm.jobs, "notify", lambda: woken.append(True))
    with Session(engine) as session, session.begin():
        with crm.transaction(session=session) as ctx:
            ctx.enqueue("core.dormancy_check", key="once")
        assert woken == []
    assert woken == [True]
