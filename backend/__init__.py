"""Thresher: image-dataset curation. The backend computes; the app shows."""
