"""Everything that persists: catalog, vault, keys, events."""
