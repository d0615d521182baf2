"""Test-suite settings shared by every test module.

Hypothesis profiles: ``ci`` (selected by ``HYPOTHESIS_PROFILE=ci``, which ``.ci/run`` exports) draws
the same examples on every run (``derandomize``) and keeps no example database, so a CI result can
be reproduced and never depends on an earlier run; the default profile draws new examples each run,
so local runs keep exploring.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
