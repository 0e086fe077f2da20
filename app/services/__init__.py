"""What the dashboard does, without HTTP: jobs, datasets, priors and detections.

Services take plain values and return plain values (dicts ready for JSON, NumPy arrays, bytes);
they raise the domain errors of :mod:`app.domain`, which ``app.api.errors`` maps to HTTP
statuses. ``create_app``'s lifespan builds one of each and keeps them on ``app.state``.
"""
