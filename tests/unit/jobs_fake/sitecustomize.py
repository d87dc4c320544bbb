"""Loaded by Python at start-up when this directory is on PYTHONPATH (the job tests put it
there for the worker they spawn): replaces the operations the worker calls with fakes."""

import os

if os.environ.get("KORAL_FAKE_JOB"):
    import fake_ops  # type: ignore[import-not-found]

    from koral_ansible import operations
    from koral_ansible.autoscaler import change

    operations.scale = fake_ops.scale
    operations.create = fake_ops.create
    change.ON_CHANGE[:] = [fake_ops.autoscaler_hook]
