"""Fault runs shared by the quick tests (tests/acceptance/test_faults.py,
tests/integration/test_webhook_fuzz.py) and the long ones (bench/chaos.py)."""
