"""Container entrypoint of the action: everything happens in rollback.cli.main_action()."""

import sys

from rollback.cli import main_action

sys.exit(main_action())
