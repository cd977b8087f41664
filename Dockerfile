# llm-locust on the official Locust image: the locustfile, the llm_locust package and its dependencies baked in
# (workers cannot fetch a package from the master).
FROM locustio/locust:2.47.0

USER root
WORKDIR /opt/llm-locust
COPY pyproject.toml requirements.txt README.md ./
COPY llm_locust ./llm_locust
RUN pip install --no-cache-dir -r requirements.txt .
COPY locustfile.py prompts.yaml ./
RUN mkdir -p /opt/llm-locust/reports && chown -R locust /opt/llm-locust
USER locust

ENTRYPOINT ["locust", "-f", "/opt/llm-locust/locustfile.py"]
