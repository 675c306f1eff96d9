"""The Train tab's seam under its first name: `pipeline.train.monitor` IS `pipeline.train.studio_api`
(the same module object, so code and tests that import or patch either name see one module).
New code imports `pipeline.train.studio_api`, as every stage's seam is named."""

import sys

from . import studio_api

sys.modules[__name__] = studio_api
