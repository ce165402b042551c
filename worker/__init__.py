"""The order-status engine: domain rules, PostgreSQL and RabbitMQ adapters, workers, CLI."""
