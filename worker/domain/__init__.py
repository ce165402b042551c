"""Pure rules of the product: the workflow and what a command does to an order."""
