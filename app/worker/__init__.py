"""What runs in a process of its own, away from the server: a job's worker (:mod:`.main`,
:mod:`.job`, :mod:`.memory`, :mod:`.reporter`, :mod:`.ray_peers`, :mod:`.peer_failures`) and a
dataset import (:mod:`.dataset_import`).

:mod:`.messages` is the wire contract between a worker and the server's runner, and :mod:`.text`
the rule for the text both hand the dashboard. This package imports nothing else from ``app``:
the server imports it, never the reverse (``tests/test_layout.py``).
"""
