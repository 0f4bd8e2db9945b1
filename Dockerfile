# One image for every Nexus process; docker-compose.yml picks the command (serve user, worker, …).
# The project is installed as its wheel (code, migrations and the seed catalog), not from the tree.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
# Dependencies first: this layer is rebuilt only when the pins change.
COPY requirements.lock .
RUN pip install -r requirements.lock

COPY --from=wheel /dist/ /tmp/dist/
# /data/artifacts exists (owned by nexus) so the runtime's named volume mounted there starts
# writable: Docker copies a mount point's ownership from the image into a new volume.
RUN pip install --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist \
    && useradd --system --uid 10001 --home-dir /data nexus \
    && mkdir -p /data/keys /data/artifacts /run/nexus \
    && chown -R nexus /data /run/nexus

USER nexus
# Containers listen on all interfaces; `nexus up` on a workstation stays on loopback.
ENV NEXUS_DATA_DIR=/data \
    NEXUS_HOST=0.0.0.0
EXPOSE 50050 50051 50052 50053
ENTRYPOINT ["nexus"]
CMD ["--help"]
