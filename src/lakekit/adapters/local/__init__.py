"""The embedded local lake: files, a durable log and an in-process function runtime."""
