"""The bundled LLM user plus one user that keeps its process's CPU busy (tests/test_answers.py: run validity).

``CPUBurner`` spins for 50 ms at a time without yielding (then rests 5 ms), as a locustfile doing heavy work per
task would: the process's event loop is late by up to that for every stream, which the run-validity check must flag.
"""

import time

from locust import User, constant, task

from llm_locust import plugin, users

plugin.register()


class LLMUser(users.LLMUser):
    pass


class CPUBurner(User):
    fixed_count = 1
    wait_time = constant(0.005)

    @task
    def burn(self) -> None:
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass
