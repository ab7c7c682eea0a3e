# The image the Helm chart runs: `bloop serve <service>` or `bloop worker <service>`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bloop ./bloop
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 bloop
# A numeric user, so Kubernetes can check `runAsNonRoot`.
USER 10001
ENV BLOOP_HTTP_HOST=0.0.0.0 BLOOP_DATA_DIR=/home/bloop/data
EXPOSE 8000
ENTRYPOINT ["bloop"]
CMD ["serve"]
