"""The measuring core: what llm-locust measures and how, with no Locust and no gevent in it.

Modules, in the order a request passes through them:

* :mod:`~llm_locust.measure.stream`  — the stream reader: ``read_response`` / ``read_stream`` read a body line by
  line (``perf_counter_ns()`` right after each ``readline``), frame and parse it into a ``StreamResult``;
* :mod:`~llm_locust.measure.framing` — SSE / NDJSON / whole-JSON decoders: lines into timed events;
* :mod:`~llm_locust.measure.metrics` — the definitions of every metric: ``StreamClock`` (token-event times),
  ``timing`` (TTFT, TPOT, ITL, E2E of one request), ``stats`` (run-level statistics);
* :mod:`~llm_locust.measure.build`   — ``build_record``: a ``StreamResult`` into the per-request record (token
  counts server-vs-local, cost, timing);
* :mod:`~llm_locust.measure.record`  — the one definition of the record (``Record``), and derived from it the
  ``requests.csv`` columns, the CSV row and the worker wire packing.

The Locust side (:mod:`llm_locust.users`) sends the request, owns the timeout and the cancellation, calls
``read_response`` and ``build_record``, and fires the request event. Anything else that reads a stream (the
parser tests, the benchmark) calls the same ``read_stream``. Import from the submodules.
"""
