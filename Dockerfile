# CUDA image the GPU benchmarks run in (`nox -s bench-a100` builds it through the docker SDK).
#   docker build -t vlmref:cuda .
#   docker run --gpus all --rm vlmref:cuda vlmref model-info --model_type qwen-vl-chat
# torch stays pinned to the version the project tests with; TORCH_INDEX picks its CUDA build.
# DeepSpeed on a GPU trains with its FusedAdam (ms-swift 2.2.0's default-zero2/3 configs; vlmref switches to torch's
# AdamW on CPU only), a CUDA kernel DeepSpeed otherwise JIT-compiles with nvcc on first use. A -runtime base has no
# nvcc, so that first DeepSpeed step would fail; this image uses the -devel base and builds the op while the image is
# built (DS_BUILD_FUSED_ADAM=1), for the GPU generations the seeds name (V100 7.0, A100 8.0, 3090/A10 8.6) and newer
# (8.9, 9.0). No GPU is needed to build it; a run never compiles.
FROM nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_CUDA_ARCH_LIST="7.0;8.0;8.6;8.9;9.0"
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# The distribution's Python (3.12 on 24.04); build-essential and python3-dev for DeepSpeed's prebuilt op.
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
# DeepSpeed at the locked version, built against the torch above with FusedAdam compiled in (no build isolation:
# the op build needs that torch); then the project itself with the versions CI tested (constraints.txt, the lock;
# its torch==2.13.0 is TORCH_VERSION's default and the CUDA build installed above satisfies it).
RUN pip install -c constraints.txt "setuptools==80.9.0" "wheel==0.45.1" ninja \
    && DS_BUILD_FUSED_ADAM=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}" \
       pip install --no-build-isolation -c constraints.txt deepspeed \
    && pip install -c constraints.txt ".[train]" \
    && useradd --create-home --uid 1001 vlmref

USER 1001
WORKDIR /home/vlmref
CMD ["vlmref", "--help"]
