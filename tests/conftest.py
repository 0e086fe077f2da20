"""Shared test set-up: quiet TensorFlow's C++ logging before anything imports it, and let the
in-process apps answer Starlette's TestClient, which sends ``Host: testserver``."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The servers bind to loopback and accept only the loopback names plus SSDBOARD_ALLOWED_HOSTS.
os.environ.setdefault("SSDBOARD_ALLOWED_HOSTS", "testserver")
