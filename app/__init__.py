"""The web layer: a FastAPI server that runs training jobs and shows them in the browser."""
