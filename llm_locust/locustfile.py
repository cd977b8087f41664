"""llm-locust's bundled locustfile: stream a prompt file at an LLM endpoint and report TTFT, TPOT, ITL, tokens, cost.

    locust -f locustfile.py --headless -u 50 -r 10 -t 30s                    # embedded mock LLM server
    locust -f locustfile.py --headless -u 50 -r 10 -t 5m -H http://localhost:8000 --model mistral-7b   # vLLM
    locust -f locustfile.py -H http://localhost:11434 --llm-api ollama-chat --model llama3             # web UI

The repository's top-level ``locustfile.py`` is this module; ``llm-benchmark`` runs it too, so an installed package
needs no checkout. The protocol is chosen with ``--llm-api``; ``llm-benchmark --locust-options`` lists the options.
"""

from llm_locust import plugin, users

plugin.register()


class LLMUser(users.LLMUser):
    """Sends the prompt file's prompts back to back, with the protocol chosen by --llm-api."""
