# The image the Helm chart runs: `bloop serve <service>` or `bloop worker <service>`. The default
# target has no ffmpeg, espeak-ng or Manim, so its processes that run AI jobs refuse narration
# and video (501 not_available); `--target media` adds them, as `make test` does.
# Bookworm: the Debian release infra/media.sh's packages and constraints.txt were tested on.
FROM python:3.11-slim-bookworm AS base
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY bloop ./bloop
# Within constraints.txt, as `make install`: the versions the suite last passed with.
RUN pip install --no-cache-dir -c constraints.txt . && useradd --create-home --uid 10001 bloop
ENV BLOOP_HTTP_HOST=0.0.0.0 BLOOP_DATA_DIR=/home/bloop/data
EXPOSE 8000
ENTRYPOINT ["bloop"]
CMD ["serve"]

# Narration and video, as the Makefile installs them: Debian's packages first (pycairo and
# manimpango build against them), then Manim.
FROM base AS media
COPY infra/lib.sh infra/media.sh ./infra/
RUN BLOOP_INFRA_RUN=/tmp/bloop-infra bash infra/media.sh \
    && pip install --no-cache-dir -c constraints.txt '.[video]' \
    && rm -rf /var/lib/apt/lists/* /tmp/bloop-infra
# A numeric user, so Kubernetes can check `runAsNonRoot`.
USER 10001

# The default target (last): the platform without narration and video.
FROM base AS platform
USER 10001
