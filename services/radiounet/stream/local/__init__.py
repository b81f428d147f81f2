"""Run the streaming stack's third-party servers on loopback, for ``make run`` and tests.

No container engine: Tansu (Kafka), SeaweedFS (S3) and Prometheus run as child
processes on free ``127.0.0.1`` ports, each with its own data directory and log.
:mod:`.processes` supervises any command (also the project's own services),
:mod:`.components` wraps the three servers, :mod:`.stack_state` records a
running stack so later commands can reuse or stop it.
"""
