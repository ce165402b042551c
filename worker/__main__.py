"""`python -m worker` is the same as the `order-status` command."""

from worker.cli import main

main(prog_name="order-status")
