# ssdboard: the dashboard and the trainer in one image.
#   docker build -t ssdboard .                # CPU, with ONNX/TFLite export, PostgreSQL and Ray
#   docker build -t ssdboard:gpu --build-arg EXTRAS="[export,postgres,ray,gpu]" .  # TensorFlow's GPU build (tensorflow[and-cuda])
#   docker run -p 8000:8000 -v ssdboard-data:/data -e SSDBOARD_TOKEN=... ssdboard
# The same image is the server, a Ray head and a Ray worker in compose.yaml ("Running on a cluster").
# The project installs the way the README does (pip install . from the one pyproject.toml); the
# CUDA libraries of the GPU build come as pip wheels, so the same slim base serves both.
FROM python:3.11-slim

ARG EXTRAS="[export,postgres,ray]"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app

# Dependencies first, from pyproject.toml alone with empty packages, so that a code change does
# not reinstall TensorFlow; the second install below puts the real code in place.
COPY pyproject.toml README.md ./
RUN mkdir -p ssd app \
    && touch ssd/__init__.py app/__init__.py \
    && pip install --no-cache-dir "./${EXTRAS}" \
    && rm -rf ssd app build ./*.egg-info

COPY . .
RUN pip install --no-cache-dir --no-deps --force-reinstall . \
    && rm -rf build ./*.egg-info \
    && useradd --create-home --uid 10001 --user-group ssdboard \
    && mkdir -p /data \
    && chown ssdboard:ssdboard /data

USER 10001:10001
ENV SSDBOARD_DATA_DIR=/data
VOLUME /data
EXPOSE 8000

# No curl in the slim image: ask /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Listening on every interface needs SSDBOARD_TOKEN (docker run -e SSDBOARD_TOKEN=...); without
# one the server refuses to start unless "--insecure" is appended to this command.
CMD ["ssdboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
