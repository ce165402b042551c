"""RabbitMQ adapters: topology, decoding commands, dead-lettering, publishing."""
