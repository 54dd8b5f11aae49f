import pytest


@pytest.fixture
def crm_plugins() -> list[str]:
    return ["email_marketing"]
