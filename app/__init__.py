"""The web layer: a FastAPI server that runs training jobs and shows them in the browser.

From the top down (an arrow only points down; ``tests/test_layout.py`` checks it):

- :mod:`app.cli` and :mod:`app.main`: the ``ssdboard`` console script and ``create_app``, which
  builds the services and includes the routers.
- :mod:`app.api`: the routes per resource, their dependencies and the HTTP schemas.
- :mod:`app.services`: what the dashboard does, one module per resource (jobs, datasets,
  detections, priors, sweeps, ...), without HTTP.
- The core the services stand on: :mod:`app.store` (the database), :mod:`app.execution` (the
  runner and executors, the server's side of a job), :mod:`app.worker` (what runs in a job's or
  an import's own process, importing nothing else of ``app``), :mod:`app.http` (security,
  connection limits, SSE), :mod:`app.figures`, :mod:`app.settings` and :mod:`app.domain`.
"""
