"""The use cases callers drive: the CLI today, the HTTP API and the web console next.

Each module holds one family of use cases as plain functions with typed inputs
and results (frozen dataclasses or the pydantic views), and the small store
interfaces (Protocols) they need. The adapters in `worker/db/` and
`worker/messaging/` implement those stores; the callers wire them and print or
serve the result. Nothing here parses options, prints, or imports a driver, so
every use case is unit-tested against in-memory fakes of its stores.

- `commands`: publish a command and optionally wait for its outcome.
- `orders`: list orders (filters, sort, keyset paging with a total), show one.
- `tasks`: list follow-up tasks, complete one.
"""
