# ssdboard: the dashboard and the trainer in one image.
#   docker build -t ssdboard .                # CPU, with ONNX/TFLite export, PostgreSQL and Ray
#   docker build -t ssdboard:gpu --build-arg EXTRAS="[export,postgres,ray,gpu]" .  # TensorFlow's GPU build (tensorflow[and-cuda])
#   docker run -p 8000:8000 -v ssdboard-data:/data -e SSDBOARD_TOKEN=... ssdboard
# The same image is the server, a Ray head and a Ray worker in compose.yaml ("Running on a cluster").
# The project installs the way the README does, from the one pyproject.toml; the CUDA libraries
# of the GPU build come as pip wheels, so the same slim base serves both.
#
# Two stages. "build" turns the source into the project's wheel; the image itself gets the
# dependencies (from pyproject.toml alone) and then that wheel, and no source tree: the package
# is imported from site-packages wherever the command runs.
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheel .


FROM python:3.11-slim

ARG EXTRAS="[export,postgres,ray]"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# The dependencies first, in their own layer, from pyproject.toml alone: a stand-in project with
# empty packages and an empty README installs them with the extras and is then uninstalled, so
# that neither a code change nor a README change reinstalls TensorFlow. TensorFlow's C++ headers
# (tensorflow/include, 415 MB) only serve to compile custom ops: nothing here does.
COPY pyproject.toml /tmp/deps/
RUN useradd --create-home --uid 10001 --user-group ssdboard \
    && mkdir -p /data /tmp/deps/ssd /tmp/deps/app \
    && chown ssdboard:ssdboard /data \
    && touch /tmp/deps/README.md /tmp/deps/ssd/__init__.py /tmp/deps/app/__init__.py \
    && pip install --no-cache-dir "/tmp/deps${EXTRAS}" \
    && pip uninstall --yes ssdboard \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf /tmp/deps "${site}/tensorflow/include"

# The code: the wheel from the build stage, nothing else of the source. --no-index: every
# dependency must already be in place from the layer above (pip check: and agree).
COPY --from=build /wheel/ /tmp/wheel/
RUN pip install --no-cache-dir --no-index /tmp/wheel/ssdboard-*.whl \
    && pip check \
    && rm -rf /tmp/wheel

USER 10001:10001
WORKDIR /home/ssdboard
ENV SSDBOARD_DATA_DIR=/data
VOLUME /data
EXPOSE 8000

# No curl in the slim image: ask /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Listening on every interface needs SSDBOARD_TOKEN (docker run -e SSDBOARD_TOKEN=...); without
# one the server refuses to start unless "--insecure" is appended to this command.
CMD ["ssdboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
