"""Carrying events out: settings, storage, ingest, queue, workers, actions, signatures."""
