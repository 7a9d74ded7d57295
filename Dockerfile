# kubelb: one image for the manager and the agent (`--mode=manager|agent`).
# Envoy is not in this image: in Kubernetes the manager runs the official Envoy image per tenant.
# Build: docker build -t kubelb .   Run: docker run kubelb --mode=manager --help

# --- build: a wheel and its dependencies, compiled where needed ---
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kubelb ./kubelb
# kubelb/api/gateway-api-crds links here: the vendored Gateway API CRDs are package data.
COPY configs/crds/gateway-api ./configs/crds/gateway-api
RUN python -m venv /opt/kubelb \
    && /opt/kubelb/bin/pip install --upgrade pip \
    && /opt/kubelb/bin/pip install .

# --- runtime: the venv only, as a non-root user ---
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="kubelb" \
      org.opencontainers.image.description="Centrally managed L4/L7 load balancing for Kubernetes cluster fleets" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kubelb/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/kubelb /opt/kubelb
# 65532 is the conventional "nonroot" uid, matching the upstream charts' securityContext.
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home nonroot
USER 65532:65532
WORKDIR /home/nonroot
# xDS (manager), probes, metrics (manager), metrics (agent)
EXPOSE 8001 8081 9443 9445
ENTRYPOINT ["kubelb"]
CMD ["--help"]
