"""The event exchange: publish, forward and subscribe, as containerd's events service."""
