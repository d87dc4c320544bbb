"""Cluster autoscaling: cluster-autoscaler's externalgrpc cloud provider served by koral-play.

- :mod:`.settings`: per-cluster autoscaling record (enabled, min, max), validation.
- :mod:`.scaler`: the ``Scaler`` protocol the gRPC server drives, and its errors.
- :mod:`.state_scaler`: ``StateScaler``, a Scaler over koral's StateStore and pluggable scale calls.
- :mod:`.certs`: per-cluster CA, server and client certificates for mTLS.
- :mod:`.server`: the gRPC CloudProvider service and ``serve``.
- :mod:`.mainthread`: runs scale operations on the main thread (they install signal handlers).

Nothing here imports grpc at package import time: the CLI's ``autoscale`` command only needs
:mod:`.settings`.
"""
