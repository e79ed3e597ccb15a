"""The CRI plugin (``io.containerd.grpc.v1.cri``): Kubernetes' runtime.v1 services.

It runs inside the daemon, as containerd's does: pods, containers and images
are kept in namespace ``k8s.io`` of the daemon's own stores, tasks run through
the runtime's Task interface, and pod networks come from CNI plugins.
"""
