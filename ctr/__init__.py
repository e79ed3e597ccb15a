"""pyctr: a ctr-shaped command line over the pycontainerd Python SDK."""
