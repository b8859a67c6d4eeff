"""Container entrypoint of the action: everything happens in rollback.cli.main_action()."""

import gc
import sys

from rollback.cli import main_action

code = main_action()
# Leave the objects of every imported module out of the collections run while the interpreter shuts down:
# about 0.3 s of a 1.2 s run (bench/cold_start.py, row h).
gc.freeze()
sys.exit(code)
