"""The seeds' command: ``python llm_benchmark.py --endpoint URL --model NAME ...`` (seed 000) and
``python -m llm_benchmark --providers openai anthropic ...`` (seed 001), from the repository root or, once the
package is installed (``pip install -e .``, which installs this module too), from anywhere.

It is ``llm-benchmark`` (:mod:`llm_locust.cli`); ``python llm_benchmark.py --help`` lists its flags.
"""

import sys

from llm_locust.cli import main

if __name__ == "__main__":
    sys.exit(main())
