"""The daemon side: settings and the wiring of storage and ingest."""
