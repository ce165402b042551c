"""PostgreSQL adapters: connections, migrations, the apply step, reads and the outbox."""
