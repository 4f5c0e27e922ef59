"""``python -m services.screening``: run the screening worker.

The configured rule set (``MASH_SCREENING_RULE_SET``) is loaded first: an invalid file
stops the service at once with a one-line message (exit code 2), before it touches Kafka
or the database. Then the worker runs; the history table's compacted changelog topic is
created with the product's topics.
"""

from __future__ import annotations

import sys

from services.common.main import run_service
from services.common.settings import settings_or_exit
from services.screening.app import SERVICE, build, history_changelog_topic
from services.screening.ruleset import RuleSetError, load_rule_set


def main() -> None:
    """Check the rule set, then run the worker."""
    settings = settings_or_exit(SERVICE)
    try:
        load_rule_set(settings.screening_rule_set)
    except RuleSetError as exc:
        print(f"screening: invalid rule set: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    run_service(SERVICE, build, lambda settings: [history_changelog_topic(settings)])


if __name__ == "__main__":
    main()
