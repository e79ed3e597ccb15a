"""The CRI streaming server: Exec, Attach and PortForward behind one-time URLs."""
