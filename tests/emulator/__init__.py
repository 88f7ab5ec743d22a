"""The emulator's own tests (a package, so its conftest never shadows tests/conftest.py)."""
