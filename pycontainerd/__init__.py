"""pycontainerd: a containerd-compatible container supervisor written in Python."""

__version__ = "0.1.0"
# The containerd API version we speak; clients such as ctr and dockerd check it.
# 2.x: nerdctl 2 pulls and pushes through Transfer only from 2.0.0 on; 1.6-era
# clients (ctr 1.6, dockerd 20.10) accept it and keep using the 1.x services.
CONTAINERD_COMPAT_VERSION = "2.0.0"
