"""The worker kernel: the one consume → batch → handle → route failures → confirm → ack loop.

Every consuming worker is a handler (`BatchHandler`) plus a few lines of wiring;
the dangerous part (ack only after commit and confirm, restart after a lost
connection, stop gracefully) is written here once.
"""
