"""How crmcore's engines treat PostgreSQL connections: every statement is planned with its values.

The pool's handling of connections the server dropped is in ``test_db_pool.py``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text


@pytest.mark.databases("postgresql")
def test_postgresql_plans_every_statement_with_its_values(crm):
    with crm.engine.connect() as connection:
        assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
