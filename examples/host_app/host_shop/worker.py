"""``python -m host_shop.worker [--once]``: the shop's worker, with the shop's CRM (same plugins, same settings)."""

from __future__ import annotations

import argparse
import logging

from host_shop.crm import make_crm


def main() -> None:
    """Run the CRM's due jobs and timers until SIGTERM (or once, from cron)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--once", action="store_true", help="run what is due, then exit")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    crm = make_crm()
    ran = crm.jobs.worker().run(once=options.once)
    print(f"ran {ran} jobs")


if __name__ == "__main__":
    main()
