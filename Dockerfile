# Thresher: the app and the CPU workers in one image.
#   docker build -t thresher .
#   docker run -p 127.0.0.1:8501:8501 -v thresher-data:/data thresher              # the digits demo
#   docker run -p 127.0.0.1:8501:8501 -v /my/ws:/data/ws thresher thresher app --workspace /data/ws
#   docker run --network host --shm-size 8g thresher ray start --head --block   # a Ray node (thresher ... --ray HEAD:6379)
# -p 127.0.0.1:8501:8501 publishes the app on the host's loopback only; -p 8501:8501 on every
# interface: the app has no login, so put authentication in front (README: Running it for others).
FROM python:3.11-slim

# STREAMLIT_SERVER_ADDRESS: inside the container the app must listen on 0.0.0.0, or the published
# port reaches nothing (`thresher app` defaults to 127.0.0.1 and honours an address set here; it
# prints a warning that the app has no authentication). Which host interfaces reach it is `-p`'s choice.
# THRESHER_DATA: the data root, whose workspaces the app's sidebar may open.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    THRESHER_DATA=/data \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

WORKDIR /opt/thresher

# CPU PyTorch first, from PyTorch's CPU index (PyPI's Linux wheels are CUDA builds of several GB);
# constraints.txt then holds those versions while the rest resolves from PyPI.
COPY constraints.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu -c constraints.txt torch torchvision

COPY pyproject.toml README.md ./
COPY backend ./backend
COPY app ./app
RUN pip install -c constraints.txt ".[ray]" \
    && useradd --create-home --uid 1000 thresher \
    && mkdir -p /data && chown thresher /data

USER thresher
VOLUME ["/data"]
EXPOSE 8501
# `thresher` runs as PID 1, which the kernel shields from signals it installs no handler for:
# SIGTERM would be ignored while the demo computes, so `docker stop` waited out its timeout and
# killed it. Python handles SIGINT (KeyboardInterrupt) everywhere, and `thresher app` passes it on
# to its Streamlit server (backend/commands.py: run_app).
STOPSIGNAL SIGINT
CMD ["thresher", "demo"]
