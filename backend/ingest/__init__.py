"""Readers that turn a source (image folder, manifest, embeddings file, the demo) into candidate samples."""
