"""The restart monitor: containers labelled to keep running are restarted by the daemon."""
