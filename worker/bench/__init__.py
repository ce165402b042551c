"""`order-status bench`: end-to-end throughput and latency, checked for correctness."""
