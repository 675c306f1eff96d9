import os
import sys
import threading

from .cli import main

rc = main()
# A process that generated through the engine (pipeline/batching.py) still has its daemon worker
# thread parked inside torch at interpreter shutdown; finalising torch under it aborts the process
# ("terminate called without an active exception", exit 134) after the work is done and written,
# and the job is then recorded as failed. Everything is flushed and closed by now: leave at once.
if any(t.name == "engine-batcher" for t in threading.enumerate()):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc or 0)
sys.exit(rc)
