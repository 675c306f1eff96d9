"""What the Train tab calls, under the name every stage's seam has (`pipeline/<stage>/studio_api.py`).

The code lives in `pipeline/train/monitor.py` (its first name, which the tab and older code import);
this name IS that module (the same object), so importing or patching either sees one module.
"""

import sys

from . import monitor

sys.modules[__name__] = monitor
