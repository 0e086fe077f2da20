"""Running jobs, the server's side: the queue and concurrency limit (:mod:`.runner`), the executors
that place workers (:mod:`.executors`), the listener local workers report to
(:mod:`.report_listener`), and the live events each report becomes (:mod:`.events`).

What runs inside a worker's own process is :mod:`app.worker`.
"""
