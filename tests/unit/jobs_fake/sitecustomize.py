"""Loaded by Python at start-up when this directory is on PYTHONPATH (the job tests put it
there for the worker they spawn): replaces the operations the worker calls with fakes."""

import os

if os.environ.get("KORAL_FAKE_JOB"):
    import fake_ops  # type: ignore[import-not-found]

    from koral_ansible import operations

    operations.scale = fake_ops.scale
    operations.create = fake_ops.create
