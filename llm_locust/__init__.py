"""llm-locust: load testing and benchmarking of LLM inference endpoints, the Locust way.

* :mod:`llm_locust.users` — the Locust users (one abstract class per wire protocol);
* :mod:`llm_locust.plugin` — the event listeners that add options, record requests and write reports (state held
  per Locust environment);
* :mod:`llm_locust.cli` — ``llm-benchmark``, the seeds' command line, running the bundled locustfile;
* :mod:`llm_locust.measure` — the measuring core, no Locust in it: stream reader, metric definitions, the record;
* :mod:`llm_locust.mockserver` — the embedded mock LLM server.
"""

__version__ = "0.1.0"
