"""The test kit's helpers under their former name, for the notifications tests that still import
them from here. Only re-exports: the helpers live in `juniper_testkit`, which no image installs."""

from juniper_testkit import bearer, free_port, kafka_credentials, placed_order, serving, wait_until

__all__ = ["bearer", "free_port", "kafka_credentials", "placed_order", "serving", "wait_until"]
