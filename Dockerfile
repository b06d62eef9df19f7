# CUDA image the GPU benchmarks run in (`nox -s bench-a100` builds it through the docker SDK).
#   docker build -t vlmref:cuda .
#   docker run --gpus all --rm vlmref:cuda vlmref model-info --model_type qwen-vl-chat
# torch stays pinned to the version the project tests with; TORCH_INDEX picks its CUDA build.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# The distribution's Python (3.12 on 24.04); build-essential for DeepSpeed's JIT-built ops.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential git \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && pip install "pip==24.3.1" \
    && pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

WORKDIR /workspace/vlmref
COPY pyproject.toml README.md constraints.txt ./
COPY vlmref ./vlmref
# The project itself with the versions CI tested (constraints.txt, the lock; its torch==2.13.0 is TORCH_VERSION's
# default and the CUDA build installed above satisfies it).
RUN pip install -c constraints.txt ".[train]" \
    && useradd --create-home --uid 1001 vlmref

USER 1001
WORKDIR /home/vlmref
CMD ["vlmref", "--help"]
