"""``python -m rl`` (and ``torchrun -m rl``) runs the CLI."""

import contextlib
import logging
import os
import sys

from rl.cli import main

code = main()
if "TORCHELASTIC_RUN_ID" in os.environ:
    # Under torchrun, end the process here, everything written and flushed: the Gloo process
    # group outlives destroy_process_group() (its worker threads were still running at exit)
    # and its destruction during interpreter shutdown aborted a rank now and then ("terminate
    # called without an active exception", SIGABRT), which made torchrun kill the others,
    # rank 0 before its evaluation. Seen in 2 of 10 four-rank runs on a loaded 2-core machine.
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError, OSError):  # closed (`rl ... | head`)
            stream.flush()
    os._exit(code)
sys.exit(code)
