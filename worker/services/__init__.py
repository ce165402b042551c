"""The use cases callers drive (CLI, HTTP API), with plain typed inputs and results."""
