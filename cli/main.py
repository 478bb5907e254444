"""The ``hookwise`` command line: one group, its commands in ``cli.processes``,
``cli.rule_files`` and ``cli.admin``.

Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input (with a one-line
error naming the file, field and reason).
"""

from __future__ import annotations

import click

from cli import admin, processes, rule_files


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Hookwise: webhooks in, rules matched, actions run."""


for command in (processes.serve, processes.web, processes.worker, processes.db,
                rule_files.apply, rule_files.export, rule_files.test_cmd, rule_files.send,
                admin.secrets, admin.replay, admin.user, admin.token, admin.events,
                admin.destinations):
    main.add_command(command)
