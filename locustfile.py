"""llm-locust's locustfile: stream a prompt file at an LLM endpoint and report TTFT, TPOT, ITL, tokens, cost.

    locust -f locustfile.py --headless -u 50 -r 10 -t 30s                    # embedded mock LLM server
    locust -f locustfile.py --headless -u 50 -r 10 -t 5m -H http://localhost:8000 --model mistral-7b   # vLLM
    locust -f locustfile.py -H http://localhost:11434 --llm-api ollama-chat --model llama3             # web UI

The user class and the plugin live in the package (llm_locust/locustfile.py), so `llm-benchmark` and installed
copies run exactly this. Options: `llm-benchmark --locust-options` (Locust's own help cannot show them).
"""

from llm_locust.locustfile import LLMUser  # noqa: F401  (Locust runs the User classes it finds here)
