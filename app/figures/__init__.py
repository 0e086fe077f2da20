"""Plotly figure builders (``plotly.graph_objects``): figures leave the server as figure JSON."""
