# syntax=docker/dockerfile:1.7
#
# The riskpipe pipeline image: the locked stack and riskpipe, run as a non-root
# user. Kubeflow Pipelines runs every TFX component of `riskpipe compile`'s spec
# in it (the spec's command is `python -m tfx...`, so the entrypoint below only
# matters for `docker run IMAGE <subcommand>`).
#
#   docker build -t REGISTRY/riskpipe:0.1.0 .
#   docker build --target beam-worker -t REGISTRY/riskpipe-beam:0.1.0 .
#
# The serving fleet does not use this image: it runs the upstream
# tensorflow/serving:2.16.1 image (TF Serving 2.16, the release matching
# tensorflow-serving-api 2.16.1 of the lock file), referenced in
# kubeflow/manifests/deployment.yaml, with kubeflow/config/* mounted from a
# ConfigMap and the ssl_config from a Secret.

# Wheels for every package of the lock file. A few of its packages (pyfarmhash,
# crcmod) ship only source archives and need a C/C++ toolchain, which stays in
# this stage.
FROM python:3.10.13-slim-bookworm AS wheels
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir pip==24.3.1 setuptools==75.8.0 wheel==0.45.1
WORKDIR /build
COPY requirements/constraints.txt requirements/constraints.txt
RUN pip wheel --no-deps --wheel-dir /wheels -r requirements/constraints.txt
COPY setup.py ./
COPY common/ common/
COPY datagen/ datagen/
COPY components/ components/
COPY pipeline/ pipeline/
COPY serving/ serving/
COPY engine/ engine/
COPY ledger/ ledger/
COPY monitor/ monitor/
COPY cli/ cli/
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels/riskpipe .

# What both images below share: the locked stack and riskpipe, a non-root user.
FROM python:3.10.13-slim-bookworm AS runtime
# TF_USE_LEGACY_KERAS must be set before TensorFlow is imported; the component
# containers start `python -m tfx...` directly, not through the riskpipe CLI.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2
RUN groupadd --system --gid 10001 riskpipe \
    && useradd --system --uid 10001 --gid riskpipe --create-home \
       --home-dir /home/riskpipe --shell /usr/sbin/nologin riskpipe
# Install the lock file, then riskpipe without dependencies, from the wheels
# built above; the wheels are mounted, not copied, so no layer keeps them.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    --mount=type=bind,source=requirements/constraints.txt,target=/tmp/constraints.txt \
    pip install --no-cache-dir --no-index --find-links=/wheels -r /tmp/constraints.txt \
    && pip install --no-cache-dir --no-index --no-deps /wheels/riskpipe/riskpipe-*.whl
# The curated schema that ImportSchemaGen reads (schema_path in
# kubeflow/config/pipeline.yaml).
COPY schema/ /opt/riskpipe/schema/
WORKDIR /home/riskpipe

# The Beam SDK worker image for distributed runners: the same stack behind
# Beam's boot program (the apache/beam SDK image of the locked Beam release).
# Dataflow takes it as --sdk_container_image; on Flink or Spark it runs as the
# worker pool beside each task manager (`--worker_pool`, environment EXTERNAL).
#   docker build --target beam-worker -t REGISTRY/riskpipe-beam:0.1.0 .
FROM runtime AS beam-worker
COPY --from=apache/beam_python3.10_sdk:2.59.0 /opt/apache/beam /opt/apache/beam
USER 10001:10001
ENTRYPOINT ["/opt/apache/beam/boot"]

# The image the pipeline's components run in (the default target).
FROM runtime AS pipeline
LABEL org.opencontainers.image.title="riskpipe" \
      org.opencontainers.image.description="riskpipe TFX pipeline image (TFX 1.16, TF 2.16, Beam 2.59)"
USER 10001:10001
ENTRYPOINT ["riskpipe"]
CMD ["--help"]
