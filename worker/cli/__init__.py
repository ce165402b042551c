"""The `order-status` command line."""

from worker.cli.app import main

__all__ = ["main"]
