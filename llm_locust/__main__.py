"""``python -m llm_locust``: the ``llm-benchmark`` command line (see :mod:`llm_locust.cli`)."""

import sys

from .cli import main

sys.exit(main())
