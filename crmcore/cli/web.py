"""``crm serve``: the web app under uvicorn."""

from __future__ import annotations

import click

from crmcore.cli import get_crm


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, help="TCP port.")
def serve(host: str, port: int) -> None:
    """Serve the web app (forms, tracked links, plugin pages) with uvicorn.

    For several processes, run uvicorn itself on the factory, which builds the
    CRM from CRMCORE_* variables or crm.toml:
    `uvicorn --factory crmcore.web.app:factory --workers 4`.

    \b
    Example:
      crm serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    uvicorn.run(get_crm().asgi_app(), host=host, port=port, log_level="info", proxy_headers=True)


COMMANDS = [serve]
