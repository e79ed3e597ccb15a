"""pycontainerd: a containerd-compatible container supervisor written in Python."""

__version__ = "0.1.0"
# The containerd API version we speak; clients such as ctr and dockerd check it.
CONTAINERD_COMPAT_VERSION = "1.6.20"
